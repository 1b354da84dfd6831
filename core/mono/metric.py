"""From relative to metric: normalised inverse depth to planar depth in metres, three ways.

A mono-depth prediction n (1 = nearest, 0 = farthest) is relative: it fixes inverse depth only up to
a scale and a shift, 1/D = s n + t. The ways on:

* **near/far** (:func:`inverse_depth_near_far`): the user says how far the nearest and the farthest
  points are; n maps linearly between 1/far (n = 0) and 1/near (n = 1).
* **a fit to known distances** (:func:`fit_scale_shift`, :func:`fit_to_points`): least squares in
  inverse depth to pixels whose distance is known (picked pixels, the focus object). One known
  point fixes only one of the two unknowns, so a single point needs ``far_m`` as well (the shift
  1/far is kept and the scale fitted). The dense form is also the MiDaS evaluation protocol.
* **pass-through**: Layered Defocus's optics take normalised inverse depth as it is, the CoC being
  linear in inverse depth (:func:`core.optics.coc_from_inverse_depth`: focus as a value of n in
  [0, 1], the aperture as a CoC scale), so no metric depth is needed at all.

All maps are (B, 1, H, W) torch tensors; inverse depth in 1/metres, depth in metres (planar, along
the camera's view axis, as Blender's Z pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import check

MAX_DEPTH_M = 1.0e4  # where a fitted inverse depth reaches zero or below (past infinity), depth is clamped here


@dataclass(frozen=True)
class ScaleShift:
    """Inverse depth (1/m) = ``scale`` * n + ``shift``."""

    scale: float
    shift: float

    def inverse_depth(self, n: torch.Tensor) -> torch.Tensor:
        return self.scale * n + self.shift


def near_far_scale_shift(near_m: float, far_m: float) -> ScaleShift:
    """The map that sends n = 1 to ``near_m`` and n = 0 to ``far_m`` metres."""
    check(near_m == near_m and far_m == far_m and near_m > 0, f"near must be positive, got {near_m:g} m")
    check(near_m < far_m, f"near ({near_m:g} m) must be closer than far ({far_m:g} m)")
    return ScaleShift(1.0 / near_m - 1.0 / far_m, 1.0 / far_m)


def inverse_depth_near_far(n: torch.Tensor, near_m: float, far_m: float) -> torch.Tensor:
    """(B, 1, H, W) normalised inverse depth -> inverse depth in 1/m, linear between 1/far and 1/near."""
    return near_far_scale_shift(near_m, far_m).inverse_depth(n)


def depth_from_inverse(inverse_depth: torch.Tensor, max_depth_m: float = MAX_DEPTH_M) -> torch.Tensor:
    """Planar depth in metres from inverse depth in 1/m; zero or negative inverse depth clamps to ``max_depth_m``."""
    return 1.0 / inverse_depth.clamp_min(1.0 / max_depth_m)


def fit_scale_shift(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                    shift: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``scale``, ``shift`` per image minimising sum over mask of (scale p + shift - t)^2.

    The MiDaS alignment, in whatever space ``prediction`` and ``target`` are (here: inverse depth).

    Args:
        prediction, target: (B, 1, H, W) or (B, N) values.
        mask: same shape, True where ``target`` is known (default: everywhere).
        shift: keep this shift and fit the scale only (one known value is then enough).

    Returns:
        ``scale``, ``shift``: (B,) tensors. Images whose prediction is constant over the mask get
        scale 0 and the target's mean as shift.
    """
    p = prediction.flatten(1).double()
    t = target.flatten(1).double()
    w = torch.ones_like(p) if mask is None else mask.flatten(1).to(p.dtype)
    count = w.sum(dim=1)
    check(bool((count > 0).all()), "a scale-and-shift fit needs at least one known value per image")
    if shift is not None:
        denominator = (w * p * p).sum(dim=1)
        scale = torch.where(denominator > 0, (w * p * (t - shift)).sum(dim=1) / denominator.clamp_min(1e-30),
                            torch.zeros_like(denominator))
        return scale.to(prediction.dtype), torch.full_like(scale, shift).to(prediction.dtype)
    mean_p = (w * p).sum(dim=1) / count
    mean_t = (w * t).sum(dim=1) / count
    var = (w * (p - mean_p[:, None]) ** 2).sum(dim=1)
    cov = (w * (p - mean_p[:, None]) * (t - mean_t[:, None])).sum(dim=1)
    scale = torch.where(var > 1e-24, cov / var.clamp_min(1e-24), torch.zeros_like(var))
    return scale.to(prediction.dtype), (mean_t - scale * mean_p).to(prediction.dtype)


@dataclass(frozen=True)
class KnownPoint:
    """A pixel whose planar distance is known: column ``x``, row ``y`` (pixels of the full image,
    0 at the top-left pixel's centre), ``distance_m`` metres."""

    x: float
    y: float
    distance_m: float


def sample_at(n: torch.Tensor, points: Sequence[KnownPoint], radius: int = 2) -> torch.Tensor:
    """Median of the (1, 1, H, W) map in a (2 radius + 1)^2 window around each point -> (len(points),).

    A median rather than the pixel: a point picked on an object's edge must not read the backdrop.
    """
    h, w = n.shape[-2:]
    values = []
    for point in points:
        x, y = int(round(point.x)), int(round(point.y))
        check(0 <= x < w and 0 <= y < h, f"known point ({point.x:g}, {point.y:g}) lies outside the {w}x{h} image")
        window = n[0, 0, max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]
        values.append(window.median())
    return torch.stack(values)


def fit_to_points(n: torch.Tensor, points: Sequence[KnownPoint], far_m: float | None = None,
                  radius: int = 2) -> ScaleShift:
    """Scale and shift in inverse depth that put the (1, 1, H, W) map ``n`` at the known distances.

    Two or more points: a least-squares fit of both. One point (the focus object): ``far_m`` must
    be given; n = 0 stays at ``far_m`` and the scale is fitted so that the point lands at its
    distance. Raises :class:`~core.errors.InputError` when the points contradict the prediction's
    ordering (a nearer point predicted farther: the fitted scale is not positive).
    """
    check(len(points) >= 1, "a fit to known distances needs at least one point")
    for point in points:
        check(point.distance_m == point.distance_m and point.distance_m > 0,
              f"known distance must be positive, got {point.distance_m:g} m")
    if far_m is not None:
        check(far_m > 0, f"far must be positive, got {far_m:g} m")
    check(len(points) >= 2 or far_m is not None,
          "one known distance fixes only the scale; give far as well, or two or more points")
    values = sample_at(n, points, radius)[None]
    target = torch.tensor([1.0 / p.distance_m for p in points], dtype=values.dtype)[None]
    shift = 1.0 / far_m if far_m is not None and len(points) == 1 else None
    scale, offset = fit_scale_shift(values, target, shift=shift)
    fit = ScaleShift(float(scale[0]), float(offset[0]))
    if len(points) == 1:
        check(fit.scale > 0, f"the known point ({points[0].distance_m:g} m) is not nearer than far "
                             f"({far_m:g} m) where the prediction puts it; check the distance or far")
    else:
        check(fit.scale > 0, "the known distances contradict the predicted depth order (the fitted scale "
                             "is not positive); pick points on clearly nearer and farther surfaces")
    return fit
