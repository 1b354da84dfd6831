"""Bokeh kernels: the aperture shape a defocused point spreads into.

A kernel is a (K, K) float tensor that sums to one, anti-aliased by supersampled pixel coverage so
that a 3.4 px disc differs from a 3.6 px one. Shapes follow Blender's camera so that a layered
render matches Cycles' depth of field:

* ``blades == 0``: a disc of the given diameter.
* ``blades >= 3``: a regular polygon inscribed in that disc (its corners on the circle), as Cycles
  samples it; ``rotation`` in radians turns it counter-clockwise as seen in the image.
* ``ratio``: Blender's anamorphic ``aperture_ratio``; the shape is squeezed horizontally by
  1 / ratio, so ratio > 1 gives tall bokeh and ratio < 1 wide bokeh.
* ``flip``: rotates the shape by 180 degrees. Cycles images the aperture upright for points behind
  the focus plane and turned for points in front of it (measured with a five-blade aperture); the
  layered renderer sets this from the sign of the CoC.

The returned kernel is the point-spread function (PSF) in image coordinates: row 0 is the top.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

_SUPERSAMPLE = 8


def kernel_size(diameter: float, ratio: float = 1.0) -> int:
    """Smallest odd side length whose pixels cover a shape of this diameter, centred on a pixel.

    The pixel at offset n spans [n - 1/2, n + 1/2], so it is touched only when n - 1/2 < radius.
    """
    radius = 0.5 * diameter * max(1.0, 1.0 / ratio)
    return 2 * max(int(math.ceil(radius - 0.5)), 0) + 1


def _inside(x: torch.Tensor, y: torch.Tensor, radius: float, blades: int, rotation: float) -> torch.Tensor:
    """Mask of points (x right, y up, pixels) inside the aperture of circumradius ``radius``."""
    if blades < 3:
        return x * x + y * y <= radius * radius
    # Cycles puts the polygon's edge normals at rotation + 2 pi k / n; corners lie between them.
    apothem = radius * math.cos(math.pi / blades)
    inside = torch.ones_like(x, dtype=torch.bool)
    for k in range(blades):
        angle = rotation + 2.0 * math.pi * k / blades
        inside &= x * math.cos(angle) + y * math.sin(angle) <= apothem
    return inside


@lru_cache(maxsize=512)
def _bokeh_kernel_cached(diameter: float, blades: int, rotation: float, ratio: float, flip: bool) -> torch.Tensor:
    if diameter <= 1.0:
        # A disc no wider than a pixel lies inside its own pixel: the identity.
        return torch.ones(1, 1)
    size, x, y = _aperture_samples(diameter, ratio, flip)
    inside = _inside(x, y, 0.5 * diameter, blades, rotation).to(torch.float64)
    coverage = inside.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(dim=(1, 3))
    return (coverage / coverage.sum()).to(torch.float32)


def _aperture_samples(diameter: float, ratio: float, flip: bool) -> tuple[int, torch.Tensor, torch.Tensor]:
    """The kernel's side and the aperture coordinates (x right, y up, pixels) of its sub-pixel
    samples, (size * S, size * S) each, pixel centres at integers."""
    size = kernel_size(diameter, ratio)
    half = size // 2
    s = _SUPERSAMPLE
    offsets = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    fine = (coords[:, None] + offsets[None, :]).reshape(-1)
    row, col = torch.meshgrid(fine, fine, indexing="ij")
    x = col * ratio  # undo the horizontal squeeze before the round-aperture test
    y = -row  # image rows go down, the aperture's y goes up
    if flip:
        x, y = -x, -y
    return size, x, y


def bokeh_kernel(
    diameter: float,
    blades: int = 0,
    rotation: float = 0.0,
    ratio: float = 1.0,
    flip: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """PSF of a defocused point: a (K, K) kernel summing to 1.

    Args:
        diameter: circumscribed diameter in pixels (the CoC); at most 1 gives the 1x1 identity.
        blades: 0 for a disc, else the number of aperture blades (>= 3).
        rotation: blade rotation in radians, counter-clockwise in the image.
        ratio: anamorphic ratio (Blender's ``aperture_ratio``), 1 for none.
        flip: rotate the shape by 180 degrees (points in front of the focus plane).

    Example:
        >>> k = bokeh_kernel(5.0)
        >>> k.shape, round(float(k.sum()), 6)
        (torch.Size([7, 7]), 1.0)
    """
    key = (round(float(diameter), 4), int(blades), round(float(rotation), 6), round(float(ratio), 6), bool(flip))
    return _bokeh_kernel_cached(*key).to(device=device, dtype=dtype)


# ------------------------------------------------------------------------------- bokeh from an image
class ImageBokeh:
    """Bokeh from any kernel image: the image's frame is the aperture's circumscribed square.

    At each layer the image is resampled (supersampled bilinear, so small kernels keep their
    energy in the right place) to the layer's diameter at the layer's own resolution, and
    normalised to sum to one. In front of the focus plane it turns 180 degrees, as the aperture
    polygon does (:func:`bokeh_kernel`'s ``flip``).

    Args:
        image: (h, w) or (C, h, w) non-negative kernel image, row 0 at the top (channels are
            averaged: the shape, not its colour); it need not be square, it is fitted into the
            square by its longer side.
        ratio: anamorphic squeeze as for :func:`bokeh_kernel` (>1 tall).

    Call ``bokeh(layer, device, dtype)`` (a :data:`core.defocus.KernelFn`).
    """

    def __init__(self, image: torch.Tensor, ratio: float = 1.0) -> None:
        from .errors import check

        img = torch.as_tensor(image, dtype=torch.float32).detach().cpu()
        if img.dim() == 3:
            img = img.mean(dim=0)
        check(img.dim() == 2 and img.shape[0] > 0 and img.shape[1] > 0, "the bokeh image must be (h, w) or (C, h, w)")
        check(bool(torch.isfinite(img).all()) and float(img.min()) >= 0.0, "the bokeh image must be finite and non-negative")
        check(float(img.sum()) > 0.0, "the bokeh image is black: nothing to spread a point into")
        side = max(img.shape)
        # Centre it in a square canvas, so that the shape keeps its proportions.
        canvas = torch.zeros(side, side)
        y0, x0 = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
        canvas[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
        self.image = canvas
        self.ratio = float(ratio)
        self._cache: dict[tuple[float, bool], torch.Tensor] = {}

    def kernel(self, diameter: float, flip: bool = False) -> torch.Tensor:
        """(K, K) PSF of this shape at ``diameter`` pixels, summing to one (1x1 below 1 px)."""
        key = (round(float(diameter), 4), bool(flip))
        if key in self._cache:
            return self._cache[key]
        if diameter <= 1.0:
            out = torch.ones(1, 1)
        else:
            import torch.nn.functional as F

            size, x, y = _aperture_samples(diameter, self.ratio, flip)
            s = _SUPERSAMPLE
            # Normalised image coordinates in [-1, 1] across the diameter; the image's rows go down.
            grid = (torch.stack([x, -y], dim=-1)[None] / (0.5 * diameter)).to(torch.float32)
            sampled = F.grid_sample(self.image[None, None], grid, mode="bilinear", padding_mode="zeros",
                                    align_corners=False)[0, 0]
            coverage = sampled.reshape(size, s, size, s).mean(dim=(1, 3)).clamp_min(0.0)
            total = float(coverage.sum())
            out = coverage / total if total > 0 else torch.ones(1, 1)
        self._cache[key] = out
        return out

    def __call__(self, layer, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return self.kernel(layer.diameter / layer.scale, flip=layer.centre < 0).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------- cat's eye
def cats_eye_kernel(diameter: float, offset: tuple[float, float], blades: int = 0, rotation: float = 0.0,
                    ratio: float = 1.0, flip: bool = False) -> torch.Tensor:
    """The aperture clipped by a second disc of the same size: optical vignetting's cat's eye.

    ``offset`` (x right, y up, in aperture radii) is where the clipping disc's centre sits
    relative to the aperture's: the bokeh keeps the part of the aperture near it and loses the
    side opposite. (0, 0) gives :func:`bokeh_kernel` back. ``flip`` turns the clipped shape by
    180 degrees, as for points in front of the focus plane.
    """
    if diameter <= 1.0:
        return torch.ones(1, 1)
    size, x, y = _aperture_samples(diameter, ratio, flip)
    s = _SUPERSAMPLE
    radius = 0.5 * diameter
    inside = _inside(x, y, radius, blades, rotation)
    ox, oy = offset[0] * radius, offset[1] * radius
    inside &= (x - ox) ** 2 + (y - oy) ** 2 <= radius * radius
    coverage = inside.to(torch.float64).reshape(size, s, size, s).mean(dim=(1, 3))
    total = float(coverage.sum())
    if total <= 0.0:
        return torch.ones(1, 1)
    return (coverage / total).to(torch.float32)


class CatsEye:
    """A PSF that changes across the frame: the bokeh clipped more towards the corners.

    A lens barrel (front rim) that clips an off-axis bundle cuts the side of the aperture towards
    the object, so (with Cycles' orientation, :func:`bokeh_kernel`) a point behind the focus plane
    at a frame corner loses the side of its disc facing that corner, and one in front of the focus
    plane, whose shape is turned, loses the side facing the frame centre. The clipping disc's
    offset grows linearly with the distance from the frame centre: ``amount * rho`` aperture radii,
    rho = 1 at the corners (``amount`` 1: the corner bokeh is half as wide as it is tall).

    The frame is covered by a ``grid`` x ``grid`` lattice of bilinear hat weights (a partition of
    unity); each pixel's light is scattered by the kernels of its lattice points in proportion.
    """

    def __init__(self, amount: float, blades: int = 0, rotation: float = 0.0, ratio: float = 1.0,
                 grid: int = 7, kernel_fn=None) -> None:
        from .errors import check

        check(0.0 <= amount <= 2.0, f"the cat's eye amount must be 0 to 2, got {amount}")
        check(grid >= 2, f"the cat's eye grid must be at least 2, got {grid}")
        self.amount, self.blades, self.rotation, self.ratio, self.grid = float(amount), blades, rotation, ratio, grid
        self.kernel_fn = kernel_fn
        self._cache: dict[tuple, torch.Tensor] = {}

    def offset_at(self, x: float, y: float, width: int, height: int) -> tuple[float, float]:
        """Clipping-disc offset (aperture radii, x right, y up) for image position (x, y) pixels."""
        cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
        dx, dy = x - cx, y - cy
        corner = math.hypot(cx, cy) or 1.0
        # Towards the frame centre, in the aperture's axes (y up).
        return (-self.amount * dx / corner, self.amount * dy / corner)

    def _kernel(self, diameter: float, offset: tuple[float, float], flip: bool) -> torch.Tensor:
        key = (round(diameter, 4), round(offset[0], 4), round(offset[1], 4), flip)
        if key not in self._cache:
            self._cache[key] = cats_eye_kernel(diameter, offset, self.blades, self.rotation, self.ratio, flip)
        return self._cache[key]

    def blur(self, x: torch.Tensor, layer, origin: tuple[int, int], frame: tuple[int, int]) -> torch.Tensor:
        """Scatter a (B, C, h, w) crop of ``layer`` (reduced by ``layer.scale``) whose top-left
        pixel sits at full-resolution ``origin`` (y, x) of a ``frame`` (H, W)."""
        import torch.nn.functional as F

        from .convolution import _RECONSTRUCTION, convolve

        height, width = frame
        s = layer.scale
        h, w = x.shape[-2:]
        g = self.grid
        # Lattice points spread evenly over the frame; hats in full-resolution pixel units.
        ys = torch.linspace(0.0, height - 1.0, g, dtype=torch.float64)
        xs = torch.linspace(0.0, width - 1.0, g, dtype=torch.float64)
        py = origin[0] + (torch.arange(h, dtype=torch.float64) + 0.5) * s - 0.5
        px = origin[1] + (torch.arange(w, dtype=torch.float64) + 0.5) * s - 0.5

        def hats(points: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
            spacing = float(lattice[1] - lattice[0]) if len(lattice) > 1 else 1.0
            return (1.0 - (points[None, :] - lattice[:, None]).abs() / spacing).clamp_min(0.0)

        wy, wx = hats(py, ys), hats(px, xs)
        out = torch.zeros_like(x)
        diameter = layer.diameter / s
        for i in range(g):
            rows = wy[i].nonzero().flatten()
            if rows.numel() == 0:
                continue
            for j in range(g):
                cols = wx[j].nonzero().flatten()
                if cols.numel() == 0:
                    continue
                kernel = self._kernel(diameter, self.offset_at(float(xs[j]), float(ys[i]), width, height),
                                      layer.centre < 0)
                if s > 1 and kernel.numel() > 1:
                    kernel = F.conv2d(F.pad(kernel[None, None], (2, 2, 2, 2)), _RECONSTRUCTION[None, None])[0, 0]
                kernel = kernel.to(device=x.device, dtype=x.dtype)
                reach = kernel.shape[-1] // 2
                y0, y1 = max(int(rows[0]) - reach, 0), min(int(rows[-1]) + 1 + reach, h)
                x0, x1 = max(int(cols[0]) - reach, 0), min(int(cols[-1]) + 1 + reach, w)
                weight = (wy[i, y0:y1, None] * wx[j, None, x0:x1]).to(device=x.device, dtype=x.dtype)
                out[..., y0:y1, x0:x1] += convolve(x[..., y0:y1, x0:x1] * weight, kernel)
        return out
