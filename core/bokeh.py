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
    size = kernel_size(diameter, ratio)
    half = size // 2
    s = _SUPERSAMPLE
    # Sub-pixel sample positions, pixel centres at integers.
    offsets = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
    coords = torch.arange(-half, half + 1, dtype=torch.float64)
    fine = (coords[:, None] + offsets[None, :]).reshape(-1)
    row, col = torch.meshgrid(fine, fine, indexing="ij")
    x = col * ratio  # undo the horizontal squeeze before the round-aperture test
    y = -row  # image rows go down, the aperture's y goes up
    if flip:
        x, y = -x, -y
    inside = _inside(x, y, 0.5 * diameter, blades, rotation).to(torch.float64)
    coverage = inside.reshape(size, s, size, s).mean(dim=(1, 3))
    return (coverage / coverage.sum()).to(torch.float32)


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
