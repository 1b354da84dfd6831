"""Synthetic focal stacks with exact ground truth, rendered by the project's own layered defocus.

Layered defocus (core.defocus) is the thin-lens model of Blender's camera, so a stack made here
is what Cycles would render for a textured surface, without the noise: the depth from focus tests
and the learned model's first trainings use it. Textures are band-limited noise summed over
octaves (every scale has detail to be sharp or blurred), in scene-linear [0.02, 1].
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..defocus import refocus
from ..optics import Lens


def noise_texture(height: int, width: int, generator: torch.Generator | None = None, channels: int = 3,
                  octaves: int = 5, base: int = 4) -> torch.Tensor:
    """(1, C, H, W) multi-octave value noise, scene-linear in [0.02, 1].

    Each octave doubles the frequency from ``base`` cells across and halves the amplitude, so the
    spectrum falls like natural images' and there is texture at every blur size.
    """
    out = torch.zeros(1, channels, height, width)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2 ** o
        grid = torch.rand(1, channels, cells + 1, cells + 1, generator=generator)
        out += amp * F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=True)
        total += amp
        amp *= 0.6
    out = out / total
    lo = out.amin(dim=(2, 3), keepdim=True)
    hi = out.amax(dim=(2, 3), keepdim=True)
    srgb = (out - lo) / (hi - lo).clamp_min(1e-6)
    return (0.02 + 0.98 * srgb.clamp(0, 1) ** 2.2).contiguous()


def slanted_plane(height: int, width: int, near: float, far: float, axis: int = 1) -> torch.Tensor:
    """(1, 1, H, W) planar depth of a plane slanting from ``near`` to ``far`` metres.

    Inverse depth varies linearly across the frame (a plane seen by a pinhole camera has inverse
    depth affine in the pixel coordinates), along x (``axis=1``) or y (``axis=0``).
    """
    n = width if axis == 1 else height
    t = torch.linspace(0.0, 1.0, n)
    inv = 1.0 / near + t * (1.0 / far - 1.0 / near)
    depth = 1.0 / inv
    if axis == 1:
        return depth.view(1, 1, 1, n).expand(1, 1, height, n)
    return depth.view(1, 1, n, 1).expand(1, 1, n, width)


def render_stack(image: torch.Tensor, depth: torch.Tensor, lens: Lens, focus_distances: Sequence[float],
                 k_max: int = 31) -> torch.Tensor:
    """Render an (N, C, H, W) focal stack of an all-in-focus (1, C, H, W) image and its depth.

    One layered-defocus render per focus distance with ``lens`` (no breathing: Blender's camera).
    ``k_max`` is high so that small test images are blurred at full resolution.
    """
    slices = [refocus(image, depth.contiguous(), lens.with_focus(float(f)), k_max=k_max) for f in focus_distances]
    return torch.cat(slices, dim=0)


def dioptre_spaced(near: float, far: float, count: int) -> list[float]:
    """``count`` focus distances from ``far`` to ``near`` metres, evenly spaced in dioptres."""
    inv = torch.linspace(1.0 / far, 1.0 / near, count)
    return [1.0 / float(v) if v > 0 else math.inf for v in inv]
