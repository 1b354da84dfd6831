"""Mono Depth: normalised inverse depth from a single image (DeepLens, seed 003, section 3.1).

``network`` holds the built-in encoder-decoder (:class:`~core.mono.network.MonoDepthNet`) and its
weight-file loading; the inference side (ONNX backend, metric fit, upsampling, sequences) lives in
sibling modules.
"""
