"""The learned Stereo Depth model (SteReFo section 3.1): network, loss, synthetic data, training, evaluation.

The network definitions live in core (core.stereo.nets, core.stereo.refiner_net), so core loads weights without this package.
"""
