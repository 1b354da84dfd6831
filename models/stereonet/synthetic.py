"""A synthetic stand-in for the Cycles ``stereo`` data: textured planes seen by a rectified pair.

Each pair is a background plane and a few foreground patches (ellipses and rectangles), each a
slanted plane with its own random texture. Disparity is affine on each plane, ``d(x, y) = a + b x
+ c y`` in left-view pixels, so a plane point seen at left column x appears in the right view at
``x - d``. Both views are rendered exactly from that rule, with the nearer plane (larger
disparity) in front, so the pair has true occlusions, texture-less patches (some textures are
nearly flat) and slanted surfaces, and the left disparity is known to float precision.

Items are dicts like :class:`models.data.StereoDataset`'s: ``left``, ``right`` (3, H, W)
scene-linear, ``disparity_left`` (1, H, W) pixels. The same index always gives the same pair.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from core.colour import srgb_to_linear


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=g))


def random_texture(g: torch.Generator, height: int, width: int) -> torch.Tensor:
    """(3, height, width) sRGB-encoded texture in [0, 1]: coloured noise over several octaves.

    A random octave weighting and contrast give anything from busy to nearly flat surfaces.
    """
    base = torch.rand(3, generator=g).view(3, 1, 1)
    out = torch.zeros(3, height, width)
    contrast = _uniform(g, 0.02, 0.5) if torch.rand((), generator=g) < 0.85 else _uniform(g, 0.0, 0.02)
    for octave in (1, 2, 4, 8, 16, 32):
        weight = float(torch.rand((), generator=g))
        coarse = torch.rand(1, 3, max(height // octave, 2), max(width // octave, 2), generator=g) - 0.5
        out += weight * F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    out = out / out.abs().amax().clamp_min(1e-6)
    return (base + contrast * out).clamp(0.0, 1.0)


def _layer_params(g: torch.Generator, h: int, w: int, d_low: float, d_high: float, background: bool) -> dict:
    d0 = _uniform(g, d_low, d_high)
    slope = 0.15 if background else 0.08
    return {
        "a": d0, "b": _uniform(g, -slope, slope) * d0 / max(w, 1), "c": _uniform(g, -slope, slope) * d0 / max(h, 1),
        "cx": _uniform(g, 0.1, 0.9) * w, "cy": _uniform(g, 0.1, 0.9) * h,
        "rx": _uniform(g, 0.06, 0.3) * w, "ry": _uniform(g, 0.06, 0.3) * h,
        "ellipse": bool(torch.rand((), generator=g) < 0.5), "angle": _uniform(g, 0.0, math.pi),
        "background": background,
    }


def _disparity(p: dict, x: torch.Tensor, y: torch.Tensor, w: int, h: int) -> torch.Tensor:
    return p["a"] + p["b"] * (x - 0.5 * w) + p["c"] * (y - 0.5 * h)


def _covers(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if p["background"]:
        return torch.ones_like(x, dtype=torch.bool)
    ca, sa = math.cos(p["angle"]), math.sin(p["angle"])
    u = ((x - p["cx"]) * ca + (y - p["cy"]) * sa) / p["rx"]
    v = (-(x - p["cx"]) * sa + (y - p["cy"]) * ca) / p["ry"]
    return (u * u + v * v <= 1.0) if p["ellipse"] else ((u.abs() <= 1.0) & (v.abs() <= 1.0))


def _sample(texture: torch.Tensor, x: torch.Tensor, y: torch.Tensor, margin: int) -> torch.Tensor:
    """Texture (3, Ht, Wt) that spans left columns [-margin, w + margin) at (x, y), bilinear."""
    ht, wt = texture.shape[-2:]
    gx = (x + margin + 0.5) / wt * 2.0 - 1.0
    gy = (y + 0.5) / ht * 2.0 - 1.0
    grid = torch.stack([gx, gy], dim=-1)[None]
    return F.grid_sample(texture[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def make_pair(g: torch.Generator, height: int, width: int, max_disparity: float, objects: int | None = None
              ) -> dict[str, torch.Tensor]:
    """One synthetic pair (module doc) drawn from generator ``g``."""
    h, w = height, width
    n = int(torch.randint(1, 5, (), generator=g)) if objects is None else objects
    back_high = 0.4 * max_disparity
    layers = [_layer_params(g, h, w, 1.0, back_high, background=True)]
    for _ in range(n):
        layers.append(_layer_params(g, h, w, min(back_high + 2.0, 0.8 * max_disparity), 0.85 * max_disparity,
                                    background=False))
    margin = int(math.ceil(max_disparity)) + 2
    textures = [random_texture(g, h, w + 2 * margin) for _ in layers]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")

    def render(right: bool) -> tuple[torch.Tensor, torch.Tensor]:
        best = torch.full((h, w), -math.inf)
        colour = torch.zeros(3, h, w)
        for p, tex in zip(layers, textures):
            if right:
                # Solve x_r = x_l - d(x_l): d is affine in x_l, so x_l = (x_r + a - b w/2 + c (y - h/2)) / (1 - b).
                xl = (xs + p["a"] - p["b"] * 0.5 * w + p["c"] * (ys - 0.5 * h)) / (1.0 - p["b"])
            else:
                xl = xs
            d = _disparity(p, xl, ys, w, h)
            front = _covers(p, xl, ys) & (d > best)
            best = torch.where(front, d, best)
            colour = torch.where(front, _sample(tex, xl, ys, margin), colour)
        return colour, best

    left, disparity_left = render(False)
    right, disparity_right = render(True)
    # A slight exposure difference and sensor noise, as real and path-traced pairs have.
    gain = _uniform(g, 0.95, 1.05)
    right = right * gain
    noise = 0.004
    left = left + noise * torch.randn(left.shape, generator=g)
    right = right + noise * torch.randn(right.shape, generator=g)
    return {"left": srgb_to_linear(left.clamp(0, 1)), "right": srgb_to_linear(right.clamp(0, 1)),
            "disparity_left": disparity_left[None], "disparity_right": disparity_right[None]}


class SyntheticStereo(Dataset):
    """``count`` synthetic pairs of ``size`` (H, W) with disparities below ``max_disparity``."""

    def __init__(self, count: int, size: tuple[int, int] = (128, 192), max_disparity: float = 48.0,
                 seed: int = 0) -> None:
        self.count, self.size, self.max_disparity, self.seed = count, size, max_disparity, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return make_pair(g, self.size[0], self.size[1], self.max_disparity)
