"""Learned stereo: the StereoNet-style network's weights from models/weights, applied to a pair.

The weight file (``stereonet_<config>.pt``) is a plain dict, loadable with ``weights_only=True``:
``format``, ``config`` (the network's hyper-parameters), ``state_dict`` and ``meta`` (what it was
trained on, steps, metrics). Only the network definition (models.stereonet.network, torch only)
is imported here, never the training code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import check, check_image
from ..weights import WEIGHTS_DIR, read_weights, save_weights
from ..weights import default_weights as _default_weights
from .confidence import cost_volume_confidence, upsample_confidence
from .result import StereoResult

WEIGHT_FILES = ("stereonet_full.pt", "stereonet_tiny.pt")  # preference order
WHAT = "Stereo Depth"


def default_weights() -> Path:
    """The shipped weights: the full model when present, else the tiny one."""
    retrain = f"python -m models.stereonet.train --config tiny --data synthetic --out {WEIGHTS_DIR / WEIGHT_FILES[1]}"
    return _default_weights(WEIGHT_FILES, WHAT, retrain)


def save_model(path: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Write a model's weights and description atomically (format: core.weights)."""
    save_weights(path, model, meta)


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A StereoNet in eval mode with the weights at ``path`` (default :func:`default_weights`)."""
    from models.stereonet.network import NetConfig, StereoNet

    payload = read_weights(path if path is not None else default_weights(), WHAT)
    model = StereoNet(NetConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.meta = payload.get("meta", {})
    return model.to(device).eval()


def learned_disparity(left: torch.Tensor, right: torch.Tensor, model: torch.nn.Module | None = None,
                      max_disparity: int | None = None) -> StereoResult:
    """Disparity and confidence of the left view by the network.

    Args:
        left, right: (B, 3+, H, W) scene-linear, same size; any H, W (the network pads).
        model: a loaded model (default: :func:`load_model` of the shipped weights on the inputs'
            device).
        max_disparity: search range in pixels (default: the model's); rounded up to whole
            cost-volume bins (8 px for the 1/8 tower).

    Returns:
        :class:`StereoResult` (B, 1, H, W) on the inputs' device: dense disparity in pixels,
        confidence from the matching distribution, every pixel ``valid`` (the network estimates
        all of them) and no pixel flagged ``occluded`` (it does not tell).
    """
    check_image(left, "left image")
    check_image(right, "right image")
    check(left.shape == right.shape, f"left image is {left.shape[-1]}x{left.shape[-2]} but right image is "
                                     f"{right.shape[-1]}x{right.shape[-2]}")
    check(left.shape[1] >= 3, f"the network needs RGB images, got {left.shape[1]} channel(s)")
    if model is None:
        model = load_model(device=left.device)
    if max_disparity is not None:
        check(max_disparity > 0, f"max disparity must be positive, got {max_disparity}")
    with torch.no_grad():
        out = model(left.float(), right.float(), max_disparity)
    h, w = left.shape[-2:]
    probabilities, expected = out["probabilities"], out["expected_bin"]
    confidence = upsample_confidence(cost_volume_confidence(probabilities, expected), out["padded_size"])
    disparity = out["disparity"]
    return StereoResult(disparity=disparity, confidence=confidence[..., :h, :w],
                        valid=torch.ones_like(disparity, dtype=torch.bool),
                        occluded=torch.zeros_like(disparity, dtype=torch.bool))
