"""Learned stereo: the StereoNet-style network's weights from models/weights, applied to a pair.

The weight file (``stereonet_<config>.pt``) is a plain dict, loadable with ``weights_only=True``:
``format``, ``config`` (the network's hyper-parameters), ``state_dict`` and ``meta`` (what it was
trained on, steps, metrics). Only the network definitions (core.stereo.nets and
core.stereo.refiner_net, torch only) are imported here, never the training code.

Two kinds of network, told apart by ``config["kind"]``:

* the pure StereoNet (no ``kind``; ``stereonet_full.pt``, ``stereonet_tiny.pt``): its own 1/8
  cost volume over the whole range, soft-argmin and refinement;
* ``sgbm_refine`` (``stereonet_refined.pt``, :mod:`core.stereo.refiner_net`): **SGBM + learned
  refinement**. :func:`learned_disparity` runs :func:`core.stereo.sgbm.stereo_sgbm` first and the
  network corrects its dense disparity with StereoNet's image-guided hierarchical refinement
  over a local cost volume around SGBM's estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import check, check_image
from ..weights import WEIGHTS_DIR, load_state, read_weights, save_weights
from ..weights import default_weights as _default_weights
from .confidence import cost_volume_confidence, upsample_confidence
from .result import StereoResult

WEIGHT_FILES = ("stereonet_full.pt", "stereonet_tiny.pt")  # preference order
REFINED_WEIGHT_FILES = ("stereonet_refined.pt",)  # SGBM + learned refinement
WHAT = "Stereo Depth"
REFINED_KIND = "sgbm_refine"


def default_weights() -> Path:
    """The shipped weights: the full model when present, else the tiny one."""
    retrain = f"python -m models.stereonet.train --config tiny --data synthetic --out {WEIGHTS_DIR / WEIGHT_FILES[1]}"
    return _default_weights(WEIGHT_FILES, WHAT, retrain)


def default_refined_weights() -> Path:
    """The shipped SGBM + learned refinement weights (``stereonet_refined.pt``)."""
    retrain = (f"python -m models.stereonet.train_guided --data data/stereo/train --cache data/stereo/cache "
               f"--out {WEIGHTS_DIR / REFINED_WEIGHT_FILES[0]}")
    return _default_weights(REFINED_WEIGHT_FILES, WHAT, retrain)


def is_refiner(model: torch.nn.Module) -> bool:
    """Whether ``model`` is the SGBM-guided refinement network (it needs SGBM's result)."""
    return getattr(getattr(model, "config", None), "kind", None) == REFINED_KIND


def save_model(path: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Write a model's weights and description atomically (format: core.weights)."""
    save_weights(path, model, meta)


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The network in eval mode with the weights at ``path`` (default :func:`default_weights`): a
    StereoNet, or the SGBM-guided refiner when the file holds one (module doc)."""
    from .nets import NetConfig, StereoNet

    path = path if path is not None else default_weights()
    payload = read_weights(path, WHAT)
    if payload["config"].get("kind") == REFINED_KIND:
        from .refiner_net import GuidedConfig, GuidedStereoNet

        model = load_state(GuidedStereoNet, GuidedConfig, payload, path, WHAT)
    else:
        model = load_state(StereoNet, NetConfig, payload, path, WHAT)  # one line for any mismatch
    return model.to(device).eval()


def _check_rgb_pair(left: torch.Tensor, right: torch.Tensor) -> None:
    """Both views (B, 3+, H, W) of one size: what the networks take."""
    check_image(left, "left image")
    check_image(right, "right image")
    check(left.shape == right.shape, f"left image is {left.shape[-1]}x{left.shape[-2]} but right image is "
                                     f"{right.shape[-1]}x{right.shape[-2]}")
    check(left.shape[1] >= 3, f"the network needs RGB images, got {left.shape[1]} channel(s)")


def learned_disparity(left: torch.Tensor, right: torch.Tensor, model: torch.nn.Module | None = None,
                      max_disparity: int | None = None) -> StereoResult:
    """Disparity and confidence of the left view by the network.

    Args:
        left, right: (B, 3+, H, W) scene-linear, same size; any H, W (the network pads).
        model: a loaded model (default: :func:`load_model` of the shipped weights on the inputs'
            device).
        max_disparity: search range in pixels (default: the model's); rounded up to whole
            cost-volume bins (8 px for the 1/8 tower). For the SGBM-guided refiner, SGBM's range
            (rounded up to a multiple of 16; default an eighth of the width, as the CLI's SGBM).

    Returns:
        :class:`StereoResult` (B, 1, H, W) on the inputs' device: dense disparity in pixels,
        confidence from the matching distribution, every pixel ``valid`` (the network estimates
        all of them) and no pixel flagged ``occluded`` (it does not tell). For the refiner see
        :func:`refined_disparity`.
    """
    _check_rgb_pair(left, right)
    if model is None:
        model = load_model(device=left.device)
    if max_disparity is not None:
        check(max_disparity > 0, f"max disparity must be positive, got {max_disparity}")
    if is_refiner(model):
        return refined_disparity(left, right, model, max_disparity)
    with torch.no_grad():
        out = model(left.float(), right.float(), max_disparity)
    h, w = left.shape[-2:]
    probabilities, expected = out["probabilities"], out["expected_bin"]
    confidence = upsample_confidence(cost_volume_confidence(probabilities, expected), out["padded_size"])
    disparity = out["disparity"]
    return StereoResult(disparity=disparity, confidence=confidence[..., :h, :w],
                        valid=torch.ones_like(disparity, dtype=torch.bool),
                        occluded=torch.zeros_like(disparity, dtype=torch.bool))


def refined_disparity(left: torch.Tensor, right: torch.Tensor, model: torch.nn.Module | None = None,
                      max_disparity: int | None = None) -> StereoResult:
    """SGBM + learned refinement: :func:`core.stereo.sgbm.stereo_sgbm`, then the guided network.

    Args:
        left, right: (B, 3+, H, W) scene-linear, same size, any H, W.
        model: a loaded refiner (default: ``stereonet_refined.pt`` on the inputs' device).
        max_disparity: SGBM's search range, pixels, rounded up to a multiple of 16 (default an
            eighth of the width, 16 to 256, as ``python -m core stereo-depth --method sgbm``).

    Returns:
        :class:`StereoResult` (B, 1, H, W): the refined dense disparity; SGBM's confidence, lowered
        where the network moved the disparity (``exp(-|change| / 2 px)``); ``valid`` where SGBM's
        left-right check passed and the network changed the value by at most 1 px; SGBM's
        ``occluded`` mask.
    """
    from .sgbm import SGBMParams, default_max_disparity, round_disparity_range, stereo_sgbm

    _check_rgb_pair(left, right)
    if model is None:
        model = load_model(default_refined_weights(), device=left.device)
    check(is_refiner(model), "this model is not an SGBM-guided refiner (stereonet_refined.pt)")
    limit = default_max_disparity(left.shape[-1]) if max_disparity is None else max_disparity
    check(limit > 0, f"max disparity must be positive, got {limit}")
    num, _ = round_disparity_range(limit)
    sgbm = stereo_sgbm(left, right, SGBMParams(num_disparities=num)).to(left.device)
    with torch.no_grad():
        out = model(left[:, :3].float(), right[:, :3].float(), sgbm.disparity, sgbm.confidence, sgbm.valid,
                    sgbm.occluded, float(num))
    disparity = out["disparity"]
    change = (disparity - sgbm.disparity).abs()
    return StereoResult(disparity=disparity, confidence=(sgbm.confidence * torch.exp(-change / 2.0)).clamp(0, 1),
                        valid=sgbm.valid & (change <= 1.0), occluded=sgbm.occluded)
