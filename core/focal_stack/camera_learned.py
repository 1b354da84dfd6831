"""Camera-aware learned depth from focus: CameraNet's shipped weights over the physical cost volume.

The stack and its camera go through core.focal_stack.defocus_volume.physical_volume (the thin-lens
blur of every slice at every depth hypothesis), CameraNet (core.focal_stack.camera_net) reads that
evidence out at half resolution, and the depth and its spread come back to full resolution by the
same edge-aware guided filter as the physical method's. Any focal length, f-number, sensor, focus
range and slice count: nothing here depends on the camera the weights were trained with.

The weight file (``dff_camera.pt``) is core.weights' plain dict (``weights_only`` loadable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ..optics import Lens
from ..weights import WEIGHTS_DIR, load_state, read_weights, save_weights
from ..weights import default_weights as _default_weights
from .camera_net import CameraNet, CameraNetConfig, volume_features
from .defocus_volume import physical_volume
from .depth_from_focus import FocusResult

WEIGHT_FILES = ("dff_camera.pt",)
WHAT = "CameraNet"


def default_weights() -> Path:
    """The shipped weights, ``dff_camera.pt``."""
    return _default_weights(WEIGHT_FILES, WHAT, f"python -m models.dff.train_camera --config tiny --out {WEIGHTS_DIR}")


def save_model(path: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Write a model's weights and description atomically (format: core.weights)."""
    save_weights(path, model, meta)


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> CameraNet:
    """A CameraNet in eval mode with the weights at ``path`` (default :func:`default_weights`)."""
    path = path if path is not None else default_weights()
    payload = read_weights(path, WHAT)
    model = load_state(CameraNet, CameraNetConfig, payload, path, WHAT)
    return model.to(device).eval()


def camera_learned_depth(
    stack: torch.Tensor,
    focus_distances: Sequence[float] | torch.Tensor,
    lens: Lens | None = None,
    model: CameraNet | None = None,
    *,
    coc_per_dioptre_px: float | Sequence[float] | torch.Tensor | None = None,
) -> FocusResult:
    """Depth, all-in-focus image, confidence and uncertainty from a focal stack and its camera.

    Args:
        stack: (N, C, H, W) aligned slices, scene-linear, N >= 2.
        focus_distances: (N,) metres, distinct, positive, any order.
        lens: the camera (focal length, f-number, sensor), or instead ``coc_per_dioptre_px`` (one
            or one per slice, pixels of CoC diameter per dioptre of defocus).
        model: a loaded CameraNet on the device to run on (default: the shipped weights, on the
            stack's device).

    Returns:
        :class:`FocusResult`: depth in metres within the focus range, the uncertainty one
        standard deviation in metres (``inverse_uncertainty`` in dioptres).
    """
    net = model if model is not None else load_model(device=stack.device)
    device = next(net.parameters()).device
    volume = physical_volume(stack.to(device), focus_distances, lens, coc_per_dioptre_px=coc_per_dioptre_px)
    with torch.no_grad():
        t, spread_t = net.position(volume_features(volume, net.config.bins, net.config.focus_evidence))
    lo, span = volume.focus_range
    inverse, spread = volume.read_out(lo + span * t, span * spread_t)
    return volume.result(inverse, spread, stack.dtype)
