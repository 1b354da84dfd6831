"""Thin-lens optics: the signed circle of confusion of a camera, in pixels.

Conventions used throughout Refocus:

* Depth is *planar* depth in metres, the distance along the optical axis (Blender's Z pass), not the
  distance along the ray.
* The circle of confusion (CoC) is a *diameter in pixels* and *signed*: positive behind the focus
  plane, negative in front of it, zero in focus. The sign tells the renderer which way to composite
  and which way up the bokeh is.
* Focal length, sensor size: millimetres. Focus distance, baseline: metres.

The thin-lens CoC on the sensor (Video Depth-from-Defocus, seed 001, Eq. 1) is

    c = f^2 |D - F| / (N D (F - f)),

with the sensor at the image distance v = F f / (F - f) of the focused plane. A real lens therefore
magnifies the whole frame by v / f = F / (F - f) as it focuses closer ("focus breathing", seed 004's
s_n). Blender's camera does not breathe: it projects with the sensor at f and puts an aperture of
diameter f / N at the pinhole (measured with Cycles: a point at 0.3 m seen with focus at 0.2 m,
50 mm f/1.4 renders a 42 px disc at 512 px, not the 56 px of Eq. 1). Relative to the frame the two
agree up to that breathing factor, so with ``breathing=False`` (the default, Cycles' camera)

    c = (f / N) * f_px * (1 / F - 1 / D)            (signed, pixels),

which is linear in inverse depth: layers evenly spaced in CoC are evenly spaced in disparity, as
SteReFo's Algorithm 1 sweeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Sequence

import torch

from .errors import check, check_positive

SensorFit = Literal["AUTO", "HORIZONTAL", "VERTICAL"]


def focal_length_pixels(
    focal_length_mm: float,
    width: int,
    height: int,
    sensor_width_mm: float = 36.0,
    sensor_height_mm: float | None = None,
    sensor_fit: SensorFit = "AUTO",
    pixel_aspect: float = 1.0,
) -> float:
    """Focal length in pixels (horizontal) for Blender's sensor-fit rules.

    ``AUTO`` fits the sensor width to the larger image side; ``HORIZONTAL`` to the width;
    ``VERTICAL`` fits ``sensor_height_mm`` (default: ``sensor_width_mm``) to the height.
    ``pixel_aspect`` is Blender's pixel_aspect_x / pixel_aspect_y.

    Example:
        >>> round(focal_length_pixels(50.0, 1920, 1080, 36.0), 2)
        2666.67
    """
    check_positive(focal_length_mm, "focal length (mm)")
    check_positive(sensor_width_mm, "sensor width (mm)")
    check(width > 0 and height > 0, f"image size must be positive, got {width}x{height}")
    fit = sensor_fit.upper()
    check(fit in ("AUTO", "HORIZONTAL", "VERTICAL"), f"unknown sensor fit {sensor_fit!r}")
    if fit == "AUTO":
        fit = "HORIZONTAL" if width * pixel_aspect >= height else "VERTICAL"
        sensor_height_mm = sensor_width_mm  # AUTO uses the width for whichever side is larger
    if fit == "HORIZONTAL":
        return focal_length_mm / sensor_width_mm * width
    sensor_h = sensor_width_mm if sensor_height_mm is None else sensor_height_mm
    check_positive(sensor_h, "sensor height (mm)")
    # Vertical fit: the height spans the sensor; horizontal pixels are pixel_aspect times wider.
    return focal_length_mm / sensor_h * height / pixel_aspect


@dataclass(frozen=True)
class Lens:
    """A camera as Blender describes it, enough to compute the circle of confusion.

    Attributes:
        focal_length_mm: lens focal length, millimetres.
        f_stop: aperture f-number N (aperture diameter f / N).
        focus_distance: planar focus distance, metres.
        sensor_width_mm, sensor_height_mm, sensor_fit: Blender's sensor settings.
        breathing: ``False`` for Blender's camera (sensor at f), ``True`` for a real lens whose
            frame magnifies by F / (F - f) as it focuses (Eq. 1 of seed 001 exactly).
        blades, rotation, ratio: aperture shape (0 blades: a disc; rotation in radians;
            ratio as Blender's anamorphic ``aperture_ratio``).
    """

    focal_length_mm: float = 50.0
    f_stop: float = 2.8
    focus_distance: float = 2.0
    sensor_width_mm: float = 36.0
    sensor_height_mm: float | None = None
    sensor_fit: SensorFit = "AUTO"
    breathing: bool = False
    blades: int = 0
    rotation: float = 0.0
    ratio: float = 1.0

    def validate(self) -> None:
        check(self.f_stop == self.f_stop and self.f_stop > 0.0, f"f-stop must be positive, got {self.f_stop}")
        check_positive(self.focal_length_mm, "focal length (mm)")
        check_positive(self.sensor_width_mm, "sensor width (mm)")
        check(
            self.focus_distance * 1000.0 > self.focal_length_mm,
            f"focus distance {self.focus_distance} m must be beyond the focal length "
            f"({self.focal_length_mm} mm)",
        )
        check(self.blades == 0 or self.blades >= 3, f"blades must be 0 (a disc) or at least 3, got {self.blades}")
        check_positive(self.ratio, "aperture ratio")

    def with_focus(self, focus_distance: float) -> "Lens":
        return replace(self, focus_distance=focus_distance)

    def focal_length_pixels(self, width: int, height: int, pixel_aspect: float = 1.0) -> float:
        return focal_length_pixels(
            self.focal_length_mm, width, height, self.sensor_width_mm, self.sensor_height_mm,
            self.sensor_fit, pixel_aspect,
        )

    def coc_scale(self, width: int, height: int, pixel_aspect: float = 1.0) -> float:
        """Pixels of CoC diameter per dioptre (1/m) of defocus, without breathing: A * f_px."""
        aperture_m = self.focal_length_mm / self.f_stop * 1e-3
        return aperture_m * self.focal_length_pixels(width, height, pixel_aspect)

    def circle_of_confusion(self, depth: torch.Tensor, focus_distance: torch.Tensor | float | None = None,
                            pixel_aspect: float = 1.0) -> torch.Tensor:
        """Signed CoC diameter in pixels for a (B, 1, H, W) planar depth map in metres."""
        focus = self.focus_distance if focus_distance is None else focus_distance
        h, w = depth.shape[-2:]
        return circle_of_confusion(
            depth, focus, self.f_stop, self.focal_length_mm,
            self.focal_length_pixels(w, h, pixel_aspect), breathing=self.breathing,
        )


def circle_of_confusion(
    depth: torch.Tensor,
    focus_distance: torch.Tensor | float,
    f_stop: float,
    focal_length_mm: float,
    focal_length_px: float,
    breathing: bool = False,
) -> torch.Tensor:
    """Signed circle-of-confusion diameter in pixels from planar depth.

    Args:
        depth: planar depth in metres, any shape (typically (B, 1, H, W)), strictly positive.
        focus_distance: planar focus distance in metres, a float or a tensor broadcastable to
            ``depth`` (e.g. (B, 1, 1, 1) for one focus distance per image). Differentiable.
        f_stop: f-number N.
        focal_length_mm: focal length f in millimetres.
        focal_length_px: the same focal length expressed in pixels (see :func:`focal_length_pixels`).
        breathing: ``True`` applies Eq. 1 of seed 001 exactly (sensor at the focused image
            distance); ``False`` matches Blender/Cycles, whose camera keeps the sensor at f.

    Returns:
        Tensor like ``depth``: CoC diameter in pixels, > 0 behind focus, < 0 in front of it.

    Example:
        >>> d = torch.tensor([1.0, 2.0, 4.0])
        >>> circle_of_confusion(d, 2.0, 2.0, 50.0, 2000.0)
        tensor([-25.0000,   0.0000,  12.5000])
    """
    aperture_m = focal_length_mm * 1e-3 / f_stop
    c = aperture_m * focal_length_px * (1.0 / focus_distance - 1.0 / depth)
    if breathing:
        f_m = focal_length_mm * 1e-3
        c = c * focus_distance / (focus_distance - f_m)
    return c


def depth_from_coc(
    coc: torch.Tensor, focus_distance: float, f_stop: float, focal_length_mm: float, focal_length_px: float
) -> torch.Tensor:
    """Inverse of :func:`circle_of_confusion` (no breathing): planar depth in metres."""
    aperture_m = focal_length_mm * 1e-3 / f_stop
    inv = 1.0 / focus_distance - coc / (aperture_m * focal_length_px)
    return 1.0 / inv


def disparity_to_depth(disparity: torch.Tensor, baseline_m: float, focal_length_px: float) -> torch.Tensor:
    """Planar depth (metres) from rectified-stereo disparity (pixels): D = B f_px / d."""
    return baseline_m * focal_length_px / disparity


def depth_to_disparity(depth: torch.Tensor, baseline_m: float, focal_length_px: float) -> torch.Tensor:
    """Disparity in pixels from planar depth in metres: d = B f_px / D."""
    return baseline_m * focal_length_px / depth


def coc_from_disparity(
    disparity: torch.Tensor,
    focus_disparity: torch.Tensor | float,
    baseline_m: float,
    f_stop: float,
    focal_length_mm: float,
) -> torch.Tensor:
    """Signed CoC diameter in pixels straight from disparity, as SteReFo sweeps it.

    With 1/D = d / (B f_px), the CoC becomes linear in disparity and the focal length in pixels
    cancels: c = (A / B) (d_F - d), A = f / N the aperture diameter in metres. That is
    SteReFo's r = a (d - d^f) with a = A / B (sign flipped so that far is positive).

    Args:
        disparity: (B, 1, H, W) disparity in pixels, larger is nearer.
        focus_disparity: disparity of the focus plane, pixels.
        baseline_m: stereo baseline in metres.
    """
    check_positive(baseline_m, "baseline (m)")
    aperture_m = focal_length_mm * 1e-3 / f_stop
    return aperture_m / baseline_m * (focus_disparity - disparity)


def coc_from_inverse_depth(
    inverse_depth: torch.Tensor,
    focus_inverse_depth: torch.Tensor | float,
    coc_scale: float | None = None,
    *,
    lens: Lens | None = None,
    near_m: float | None = None,
    far_m: float | None = None,
) -> torch.Tensor:
    """Signed CoC in pixels from DeepLens-style normalised inverse depth (seed 003).

    Normalised inverse depth n is 1 at the nearest point and 0 at the farthest. As CoC is linear in
    inverse depth, c = K (n_F - n) for a scale K in pixels. Give K directly (``coc_scale``, the CoC
    between the nearest and the farthest point, as DeepLens' maximum blur size), or a ``lens`` with
    the ``near_m``/``far_m`` distances that n = 1 and n = 0 stand for; then K = A f_px (1/near - 1/far).

    Args:
        inverse_depth: (B, 1, H, W) normalised inverse depth in [0, 1].
        focus_inverse_depth: n of the focus plane.
    """
    if coc_scale is None:
        check(lens is not None and near_m is not None and far_m is not None,
              "give coc_scale, or a lens with near_m and far_m")
        assert lens is not None and near_m is not None and far_m is not None
        check(0 < near_m < far_m, f"need 0 < near ({near_m}) < far ({far_m})")
        h, w = inverse_depth.shape[-2:]
        coc_scale = lens.coc_scale(w, h) * (1.0 / near_m - 1.0 / far_m)
    return coc_scale * (focus_inverse_depth - inverse_depth)


def focus_distance_at(depth: torch.Tensor, x: int, y: int, radius: int = 0) -> float:
    """Focus distance picked at a pixel, as a focus picker does: the median depth in a window.

    Args:
        depth: (H, W) or (B, 1, H, W) planar depth in metres (first image of a batch is used).
        x, y: pixel column and row.
        radius: half-size of the square window (0: the pixel itself).
    """
    d = depth.reshape(-1, *depth.shape[-2:])[0]
    h, w = d.shape
    check(0 <= x < w and 0 <= y < h, f"focus pixel ({x}, {y}) lies outside the {w}x{h} depth map")
    return focus_distance_in_box(depth, (x - radius, y - radius, x + radius + 1, y + radius + 1))


def focus_distance_in_box(depth: torch.Tensor, box: Sequence[float]) -> float:
    """Median planar depth inside a box (x0, y0, x1, y1), pixels, end-exclusive; clipped to the image.

    The median, not the mean: a box around an object always catches some background, and the
    median ignores it as long as the object fills most of the box (SteReFo's focus tracking).
    """
    d = depth.reshape(-1, *depth.shape[-2:])[0]
    h, w = d.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    check(x1 > x0 and y1 > y0, f"focus box {tuple(box)} does not overlap the {w}x{h} depth map")
    window = d[y0:y1, x0:x1]
    window = window[torch.isfinite(window) & (window > 0)]
    check(window.numel() > 0, f"focus box {tuple(box)} holds no valid depth")
    return float(window.median())


def shape_coc(
    coc: torch.Tensor,
    near_multiplier: float = 1.0,
    far_multiplier: float = 1.0,
    sharp_band_px: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Artistic control over a signed CoC map: a sharp depth-of-field band and separate blur
    multipliers in front of and behind it (Nuke ZDefocus's depth of field, foreground and
    background sizes).

    Args:
        coc: signed CoC diameter in pixels, any shape.
        near_multiplier, far_multiplier: scale the blur in front of (CoC < 0) and behind (> 0)
            the sharp band; 0 keeps that side sharp, 1 leaves it physical.
        sharp_band_px: (lower, upper) signed CoC of the band's near and far edges (lower <= 0 <=
            upper, see :func:`sharp_band`); everything between stays sharp, and the blur grows
            from zero at each edge as the lens would grow it from the focus plane.

    Returns:
        Tensor like ``coc``.

    Example:
        >>> shape_coc(torch.tensor([-8.0, -2.0, 0.0, 3.0, 10.0]), 0.5, 2.0, (-4.0, 4.0))
        tensor([-2.,  0.,  0.,  0., 12.])
    """
    check(near_multiplier >= 0.0 and far_multiplier >= 0.0,
          f"blur multipliers must be non-negative, got {near_multiplier} and {far_multiplier}")
    out = coc
    if sharp_band_px is not None:
        lower, upper = sharp_band_px
        check(lower <= 0.0 <= upper, f"the sharp band ({lower}, {upper}) px must hold the focus plane (CoC 0)")
        out = torch.where(out > upper, out - upper, torch.where(out < lower, out - lower, torch.zeros_like(out)))
    if near_multiplier != 1.0 or far_multiplier != 1.0:
        out = torch.where(out < 0, out * near_multiplier, out * far_multiplier)
    return out


def sharp_band(lens: Lens, near_m: float, far_m: float, width: int, height: int,
               pixel_aspect: float = 1.0) -> tuple[float, float]:
    """Signed CoC (pixels) at the near and far edges of a depth band kept sharp, metres.

    ``near_m <= lens.focus_distance <= far_m``; ``far_m`` may be ``math.inf`` (sharp to infinity).
    """
    check(0.0 < near_m <= lens.focus_distance <= far_m,
          f"the sharp band {near_m}-{far_m} m must hold the focus distance {lens.focus_distance} m")
    edges = torch.tensor([near_m, far_m], dtype=torch.float64).view(1, 1, 1, 2)
    scale = lens.coc_scale(width, height, pixel_aspect)
    inv = 1.0 / edges
    c = scale * (1.0 / lens.focus_distance - inv)
    if lens.breathing:
        f_m = lens.focal_length_mm * 1e-3
        c = c * lens.focus_distance / (lens.focus_distance - f_m)
    return float(c[..., 0]), float(c[..., 1])
