"""Disparity (pixels) to planar depth (metres) and back, for Blender's stereo camera and for rigs
described by baseline, focal length and a principal-point offset (Middlebury's ``doffs``).

Conventions: disparity is measured in the *left* view, ``d = x_left - x_right`` in pixels, larger
is nearer. Depth is planar depth along the left camera's optical axis (Blender's Z pass of the
left view), in metres.

Blender's stereo camera (``Camera.stereo``) places two eyes ``interocular_distance`` apart along
the camera's x axis, centred on the camera or with one eye on it (``pivot``), and

* ``PARALLEL``: parallel axes, no shift: ``d = I f_px / Z`` (rectified).
* ``OFFAXIS``: parallel axes, each eye's lens shifted so the views coincide at the convergence
  distance C: Blender adds ``(I / sensor_width) (f / C)`` (split between the eyes) to the shift,
  in units of the fitted frame side, so ``d = I f_px / Z - o`` with the constant offset
  ``o = I f_px / C`` for a horizontally fitted sensor. Still rectified; disparity is negative
  behind C. This is the same algebra as Middlebury's ``Z = B f / (d + doffs)`` with doffs = o.
* ``TOE``: the eyes turn inwards to meet at C. The pair is not rectified (keystone); depth comes
  from intersecting the two pixel rays in the horizontal plane, which needs the pixel column as
  well as the disparity (:func:`toe_in_depth`).

All functions take torch tensors (any shape, broadcasting) unless said otherwise; arithmetic-only
functions also work on numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import check, check_positive
from ..optics import SensorFit, focal_length_pixels

ConvergenceMode = Literal["OFFAXIS", "PARALLEL", "TOE"]
Pivot = Literal["LEFT", "RIGHT", "CENTER"]


def disparity_to_depth(disparity, baseline_m: float, focal_length_px: float, offset_px: float = 0.0):
    """Planar depth in metres from rectified disparity in pixels: ``Z = B f_px / (d + offset)``.

    ``offset_px`` is the principal-point offset between the views (Middlebury's ``doffs``;
    ``I f_px / C`` for Blender's OFFAXIS camera). Pixels at or behind infinity
    (``d + offset <= 0``) come back as ``inf``.

    Example:
        >>> disparity_to_depth(torch.tensor([10.0, 0.0]), 0.1, 1000.0)
        tensor([10., inf])
    """
    check_positive(baseline_m, "baseline (m)")
    check_positive(focal_length_px, "focal length (px)")
    total = disparity + offset_px
    if isinstance(total, torch.Tensor):
        return torch.where(total > 0, baseline_m * focal_length_px / total.clamp_min(1e-12),
                           torch.full_like(total, math.inf))
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, baseline_m * focal_length_px / np.maximum(total, 1e-12), np.inf)


def depth_to_disparity(depth, baseline_m: float, focal_length_px: float, offset_px: float = 0.0):
    """Rectified disparity in pixels from planar depth in metres: ``d = B f_px / Z - offset``."""
    check_positive(baseline_m, "baseline (m)")
    check_positive(focal_length_px, "focal length (px)")
    return baseline_m * focal_length_px / depth - offset_px


@dataclass(frozen=True)
class StereoCamera:
    """Blender's stereo camera: enough to turn the left view's disparity into its depth.

    Attributes:
        interocular_distance: baseline between the eyes, metres (Blender default 0.065).
        convergence_distance: where OFFAXIS and TOE views meet, metres (Blender default 1.95).
        convergence_mode: ``OFFAXIS`` (Blender's default), ``PARALLEL`` or ``TOE``.
        pivot: which eye sits on the camera (``CENTER``: both offset by half the baseline).
        focal_length_mm, sensor_width_mm, sensor_height_mm, sensor_fit: the camera's lens and
            sensor, as in :class:`core.optics.Lens`.
    """

    interocular_distance: float = 0.065
    convergence_distance: float = 1.95
    convergence_mode: ConvergenceMode = "OFFAXIS"
    pivot: Pivot = "CENTER"
    focal_length_mm: float = 50.0
    sensor_width_mm: float = 36.0
    sensor_height_mm: float | None = None
    sensor_fit: SensorFit = "AUTO"

    def validate(self) -> None:
        check_positive(self.interocular_distance, "interocular distance (m)")
        check_positive(self.convergence_distance, "convergence distance (m)")
        check_positive(self.focal_length_mm, "focal length (mm)")
        check_positive(self.sensor_width_mm, "sensor width (mm)")
        check(self.convergence_mode in ("OFFAXIS", "PARALLEL", "TOE"),
              f"unknown convergence mode {self.convergence_mode!r}; use OFFAXIS, PARALLEL or TOE")
        check(self.pivot in ("LEFT", "RIGHT", "CENTER"), f"unknown pivot {self.pivot!r}; use LEFT, RIGHT or CENTER")

    @property
    def rectified(self) -> bool:
        return self.convergence_mode != "TOE"

    def focal_length_pixels(self, width: int, height: int) -> float:
        return focal_length_pixels(self.focal_length_mm, width, height, self.sensor_width_mm,
                                   self.sensor_height_mm, self.sensor_fit)

    def disparity_offset(self, width: int, height: int) -> float:
        """Pixels to add to disparity before ``Z = B f_px / (d + offset)`` (zero unless OFFAXIS).

        Blender shifts the eyes by ``(I / sensor_width) (f / C)`` of the *fitted* frame side in
        total, whatever the fit; with a horizontal fit that is ``I f_px / C`` pixels.
        """
        if self.convergence_mode != "OFFAXIS":
            return 0.0
        fit = self.sensor_fit.upper()
        if fit == "AUTO":
            fit = "HORIZONTAL" if width >= height else "VERTICAL"
        fitted_side = width if fit == "HORIZONTAL" else height
        shift = self.interocular_distance / self.sensor_width_mm * self.focal_length_mm / self.convergence_distance
        return shift * fitted_side

    def to_depth(self, disparity: torch.Tensor) -> torch.Tensor:
        """Planar depth (m) of the left view from its disparity (px), (B, 1, H, W)."""
        self.validate()
        h, w = disparity.shape[-2:]
        f_px = self.focal_length_pixels(w, h)
        if self.convergence_mode == "TOE":
            return toe_in_depth(disparity, self.interocular_distance, self.convergence_distance, f_px, self.pivot)
        return disparity_to_depth(disparity, self.interocular_distance, f_px, self.disparity_offset(w, h))

    def to_disparity(self, depth: torch.Tensor) -> torch.Tensor:
        """Disparity (px) of the left view from its planar depth (m), (B, 1, H, W)."""
        self.validate()
        h, w = depth.shape[-2:]
        f_px = self.focal_length_pixels(w, h)
        if self.convergence_mode == "TOE":
            return toe_in_disparity(depth, self.interocular_distance, self.convergence_distance, f_px, self.pivot)
        return depth_to_disparity(depth, self.interocular_distance, f_px, self.disparity_offset(w, h))


# ----------------------------------------------------------------------------------------- toe-in
def toe_in_poses(interocular_m: float, convergence_m: float, pivot: Pivot = "CENTER"
                 ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The two eyes of Blender's TOE camera in the horizontal plane of the camera's frame.

    Returns ``((x, z, yaw), (x, z, yaw))`` for the left and right eye: position in metres (x to the
    right, z forward) and the yaw in radians of each optical axis (positive turns it to the right).
    Blender turns each eye by ``atan(I / 2 / C)`` with the centre pivot; with an eye on the pivot,
    that eye stays and the other moves along a chord of length I and turns twice as far.
    """
    a = math.atan(0.5 * interocular_m / convergence_m)
    if pivot == "CENTER":
        return (-0.5 * interocular_m, 0.0, a), (0.5 * interocular_m, 0.0, -a)
    # The moving eye is first turned by a, moved I along its own x axis, then turned by a again.
    if pivot == "LEFT":
        return (0.0, 0.0, 0.0), (interocular_m * math.cos(a), interocular_m * math.sin(a), -2.0 * a)
    return (-interocular_m * math.cos(a), interocular_m * math.sin(a), 2.0 * a), (0.0, 0.0, 0.0)


def _pixel_columns(like: torch.Tensor) -> torch.Tensor:
    """Column of each pixel centre relative to the image centre, pixels, shaped to broadcast."""
    w = like.shape[-1]
    return torch.arange(w, dtype=like.dtype, device=like.device) + 0.5 - 0.5 * w


def toe_in_depth(disparity: torch.Tensor, interocular_m: float, convergence_m: float, focal_length_px: float,
                 pivot: Pivot = "CENTER") -> torch.Tensor:
    """Planar depth of the left view (metres) for Blender's TOE camera, by ray intersection.

    The left pixel at column u (from the image centre) and its match at ``u - d`` in the right view
    define two rays in the horizontal plane; their intersection, projected on the left eye's axis,
    is the depth. Rotation about the vertical axis leaves the image row out of it.

    Args:
        disparity: (..., H, W) pixels, ``x_left - x_right``.
    """
    (xl, zl, yl), (xr, zr, yr) = toe_in_poses(interocular_m, convergence_m, pivot)
    u = _pixel_columns(disparity)
    # Ray angles in the rig frame, measured from the forward axis (tan = x / z).
    tl = torch.tan(torch.atan(u / focal_length_px) + yl)
    tr = torch.tan(torch.atan((u - disparity) / focal_length_px) + yr)
    # Solve xl + tl s = xr + tr t and zl + s = zr + t for the forward distance s from the left eye.
    s = ((xr - xl) - tr * (zr - zl)) / (tl - tr)
    x, z = xl + tl * s - xl, s  # relative to the left eye
    depth = x * math.sin(yl) + z * math.cos(yl)
    return torch.where(tl > tr, depth, torch.full_like(depth, math.inf))


def toe_in_disparity(depth: torch.Tensor, interocular_m: float, convergence_m: float, focal_length_px: float,
                     pivot: Pivot = "CENTER") -> torch.Tensor:
    """Left-view disparity (pixels) of Blender's TOE camera from the left view's planar depth (m)."""
    (xl, zl, yl), (xr, zr, yr) = toe_in_poses(interocular_m, convergence_m, pivot)
    u = _pixel_columns(depth)
    # Point in the left eye's frame, then in the rig frame.
    px, pz = u / focal_length_px * depth, depth
    x = xl + px * math.cos(yl) + pz * math.sin(yl)
    z = zl - px * math.sin(yl) + pz * math.cos(yl)
    # Into the right eye's frame and onto its image.
    dx, dz = x - xr, z - zr
    rx = dx * math.cos(yr) - dz * math.sin(yr)
    rz = dx * math.sin(yr) + dz * math.cos(yr)
    return u - focal_length_px * rx / rz
