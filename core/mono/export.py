"""Export the built-in Mono Depth network to ONNX, to run it in any ONNX runtime (and to check the ONNX backend).

The exported graph takes ``image`` (N, 3, H, W) sRGB in [0, 1] (the ImageNet normalisation is inside
the network, so the ONNX backend runs it with ``normalisation="unit"``, ``multiple=32``) and returns
``inverse_depth`` (N, 1, H, W), the sigmoid head's output. The size is fixed at export: the
TorchScript exporter cannot write the pyramid pooling's adaptive average pooling for a dynamic
input size, and the ONNX backend resizes every image to a model's fixed size anyway. ONNX's
AveragePool also needs the 1/32 feature map to split evenly into the 8x8 pyramid bins, so both
sides must be multiples of 256 (:data:`EXPORT_MULTIPLE`): 256, 512, 768, ...
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import check
from ..imageio import atomic_write

EXPORT_MULTIPLE = 256  # the network's stride 32 times the largest pyramid bin, 8


class _InverseDepthOnly(torch.nn.Module):
    """The network's depth head alone: ONNX outputs are tensors, not dicts."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)["inverse_depth"]


def export_onnx(model: torch.nn.Module, path: str | Path, height: int = 512, width: int = 512,
                opset: int = 17) -> None:
    """Write ``model`` (a MonoDepthNet) to ``path`` as ONNX for (1, 3, ``height``, ``width``) input (multiples of 256)."""
    check(height > 0 and width > 0 and height % EXPORT_MULTIPLE == 0 and width % EXPORT_MULTIPLE == 0,
          f"ONNX export size must be multiples of {EXPORT_MULTIPLE}, got {width}x{height}")
    was_training = model.training
    wrapped = _InverseDepthOnly(model.cpu()).eval()  # the exporter restores the wrapper's mode: make it eval
    example = torch.rand(1, 3, height, width)
    with atomic_write(path) as tmp, warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) needs no onnxscript; its deprecation notice is noise here.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (example,), str(tmp), input_names=["image"], output_names=["inverse_depth"],
                          opset_version=opset, dynamo=False)
    model.train(was_training)
