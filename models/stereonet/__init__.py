"""The learned Stereo Depth model (SteReFo section 3.1): network, loss, synthetic data, training, evaluation.

``network`` imports torch only, so core.stereo.learned can load weights without the training code.
"""
