"""Learned depth from focus: FocalStackNet's weights from models/weights, applied to a stack.

The weight file (``dff_<config>.pt``) is a plain dict (loadable with ``weights_only=True``):
``format``, ``config`` (the network's hyper-parameters), ``state_dict``, and ``meta`` (what it was
trained on, steps, metrics). Only the network definition (core.focal_stack.nets, torch only) is
imported, never the training code.

Large frames run the network on a copy reduced to ``max_side`` pixels; its per-slice focus
weights are then upsampled and applied at full resolution (depth as their expectation in
dioptres, the all-in-focus image as their blend of the full-resolution slices), so no detail of
the slices is lost to the reduction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import check, check_image
from ..weights import WEIGHTS_DIR, load_state, read_weights, save_weights
from ..weights import default_weights as _default_weights
from .depth_from_focus import FocusResult, inverse_to_metres, spread_over
from .slices import check_focus_distances, depth_from_dioptres

WEIGHT_FILES = ("dff_full.pt", "dff_guided.pt", "dff_tiny.pt")  # preference order
WHAT = "FocalStackNet"


def default_weights() -> Path:
    """The shipped weights, in :data:`WEIGHT_FILES` order (``dff_guided.pt`` ships today)."""
    return _default_weights(WEIGHT_FILES, WHAT, f"python -m models.dff.train --config tiny --data synthetic --out {WEIGHTS_DIR}")


def save_model(path: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Write a model's weights and description atomically (format: core.weights)."""
    save_weights(path, model, meta)


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A StereoNet in eval mode with the weights at ``path`` (default :func:`default_weights`)."""
    from .nets import FocalStackNet, NetConfig

    path = path if path is not None else default_weights()
    payload = read_weights(path, WHAT)
    model = load_state(FocalStackNet, NetConfig, payload, path, WHAT)  # one line for any mismatch
    return model.to(device).eval()


def learned_depth(
    stack: torch.Tensor,
    focus_distances: Sequence[float] | torch.Tensor,
    model: torch.nn.Module | None = None,
    *,
    max_side: int = 1024,
) -> FocusResult:
    """Depth, all-in-focus image and confidence from an aligned focal stack, by FocalStackNet.

    Args:
        stack: (N, C, H, W) aligned slices, scene-linear (RGB; alpha is ignored).
        focus_distances: (N,) metres, distinct and positive (any order).
        model: a loaded model (default: :func:`load_model` of the shipped weights), on the
            device the computation should run on.
        max_side: frames larger than this run the network reduced (see the module doc).

    Returns:
        :class:`core.focal_stack.depth_from_focus.FocusResult`; confidence is how far the
        largest slice weight exceeds the uniform 1 / N, scaled to [0, 1].
    """
    check_image(stack, "focal stack")
    n, c, h, w = stack.shape
    check(n >= 2, f"a focal stack needs at least 2 slices, got {n}")
    check(c >= 3, f"the learned method needs RGB slices, got {c} channel(s)")
    distances = check_focus_distances(focus_distances, n)
    net = model if model is not None else load_model()
    device = next(net.parameters()).device
    rgb = stack[:, :3].to(device=device, dtype=torch.float32)
    fd = distances.to(device=device, dtype=torch.float32).nan_to_num(posinf=1e9)[None]
    scale = min(1.0, max_side / max(h, w))
    with torch.no_grad():
        if scale < 1.0:
            small = F.interpolate(rgb, scale_factor=scale, mode="area")
            out = net(small[None], fd)
            weights = F.interpolate(out["weights"][0], size=(h, w), mode="bilinear", align_corners=False)
            weights = weights / weights.sum(dim=0, keepdim=True).clamp_min(1e-12)  # (N, 1, H, W)
            inverse = (weights * (1.0 / fd[0]).view(n, 1, 1, 1)).sum(dim=0, keepdim=True)
            aif = (weights * rgb).sum(dim=0, keepdim=True)
        else:
            out = net(rgb[None], fd)
            weights, inverse, aif = out["weights"][0], out["inverse_depth"], out["aif"]
        confidence = ((weights.amax(dim=0, keepdim=True) - 1.0 / n) / (1.0 - 1.0 / n)).clamp(0.0, 1.0)
        # The spread of the slice weights about the depth they average to, in dioptres.
        spread = spread_over(weights, (1.0 / fd[0]).nan_to_num(posinf=0.0), inverse)
    dtype = stack.dtype
    return FocusResult(depth=depth_from_dioptres(inverse).to(dtype), all_in_focus=aif.to(dtype),
                       confidence=confidence.to(dtype), uncertainty=inverse_to_metres(spread, inverse).to(dtype),
                       inverse_uncertainty=spread.to(dtype))
