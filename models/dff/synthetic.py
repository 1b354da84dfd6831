"""Random synthetic focal stacks for developing and smoke-training FocalStackNet, no Blender needed.

Each sample is a small scene: a textured background plane at a random slant and a few textured
foreground shapes (discs, boxes, stars) standing in front of it, each at its own depth, occluding
by depth. The focal stack is rendered by core's layered defocus (the thin-lens model of Blender's
camera, with correct occlusion at depth edges), at N focus distances spread over the scene's range
in inverse depth with jitter, as the DefocusNet data places them. Every sample is a pure function
of its seed.

This is a stand-in for the Cycles ``defocusnet`` data (issue 5), which the shipped weights are
trained on: it lacks lighting, materials and noise, and is meant for tests and quick checks.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from core.defocus import layered_defocus
from core.focal_stack.synthetic import noise_texture


def _shape_mask(kind: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """(H, W) bool mask of a random disc, box or star somewhere in the frame."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    cx, cy = float(torch.rand(1, generator=g)) * w, float(torch.rand(1, generator=g)) * h
    r = (0.12 + 0.25 * float(torch.rand(1, generator=g))) * min(h, w)
    dx, dy = xs - cx, ys - cy
    if kind == 0:
        aspect = 0.5 + float(torch.rand(1, generator=g))
        return (dx / r) ** 2 + (dy / (r * aspect)) ** 2 <= 1.0
    if kind == 1:
        angle = float(torch.rand(1, generator=g)) * math.pi
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = -dx * math.sin(angle) + dy * math.cos(angle)
        return (u.abs() <= r) & (v.abs() <= r * (0.3 + 0.7 * float(torch.rand(1, generator=g))))
    points = 3 + int(torch.randint(0, 5, (1,), generator=g))
    theta = torch.atan2(dy, dx)
    radius = r * (0.6 + 0.4 * torch.cos(points * theta))
    return dx * dx + dy * dy <= radius * radius


def make_sample(seed: int, size: int = 128, slices: int = 5) -> dict[str, torch.Tensor]:
    """One synthetic focal stack.

    Returns:
        ``stack`` (N, 3, S, S) scene-linear slices; ``focus_distances`` (N,) metres, far to near;
        ``depth`` (1, S, S) planar metres; ``aif`` (3, S, S) scene-linear all-in-focus;
        ``defocus_scale`` () pixels of CoC diameter per dioptre of defocus (A f_px), so the
        defocus of slice n is defocus_scale |1/F_n - 1/depth|.
    """
    g = torch.Generator().manual_seed(int(seed))
    h = w = size

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand(1, generator=g))

    inv_far = uniform(0.2, 1.5)              # farthest scene point, dioptres
    span = uniform(1.5, 6.0)                 # scene depth range, dioptres
    inv_near = inv_far + span
    # Background: a plane whose inverse depth is affine in the pixel coordinates (a pinhole view).
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    gx, gy = uniform(-1, 1), uniform(-1, 1)
    tilt = gx * xs + gy * ys
    tilt = (tilt - tilt.min()) / (tilt.max() - tilt.min()).clamp_min(1e-6)
    bg_inv_lo = inv_far
    bg_inv_hi = inv_far + span * uniform(0.0, 0.5)
    inv_depth = bg_inv_lo + tilt * (bg_inv_hi - bg_inv_lo)
    image = noise_texture(h, w, g, base=int(torch.randint(2, 6, (1,), generator=g)))[0]
    for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
        mask = _shape_mask(int(torch.randint(0, 3, (1,), generator=g)), h, w, g)
        obj_inv = inv_far + span * uniform(0.3, 1.0)
        nearer = mask & (obj_inv > inv_depth)
        inv_depth = torch.where(nearer, torch.full_like(inv_depth, obj_inv), inv_depth)
        texture = noise_texture(h, w, g, base=int(torch.randint(2, 8, (1,), generator=g)))[0]
        image = torch.where(nearer.unsqueeze(0), texture, image)
    depth = 1.0 / inv_depth

    # Focus distances: spread over the range in dioptres, jittered by up to a third of a step.
    step = span / (slices - 1)
    focus_inv = torch.tensor([inv_far + i * step + uniform(-step / 3, step / 3) for i in range(slices)])
    focus_inv = focus_inv.clamp(inv_far * 0.5, inv_near + step / 3)
    defocus_scale = uniform(2.0, 8.0) * size / 128  # px of CoC per dioptre
    slices_out = []
    for f_inv in focus_inv.tolist():
        coc = defocus_scale * (f_inv - inv_depth)  # signed: > 0 behind focus (core.optics)
        # Layers 2 px of CoC apart past 12 px of blur: a tenth of the render time, and a blur
        # error well under what a 12 px disc can show.
        layer_step = 1.0 if float(coc.abs().max()) < 12 else 2.0
        slices_out.append(layered_defocus(image[None], coc[None, None], k_max=9, step=layer_step)[0])
    return {
        "stack": torch.stack(slices_out),
        "focus_distances": (1.0 / focus_inv).to(torch.float32),
        "depth": depth[None].to(torch.float32),
        "aif": image,
        "defocus_scale": torch.tensor(float(defocus_scale)),
    }


class SyntheticFocalStacks(Dataset):
    """``count`` synthetic samples; sample i is :func:`make_sample` of ``seed * 1_000_003 + i``."""

    def __init__(self, count: int, seed: int = 0, size: int = 128, slices: int = 5) -> None:
        self.count, self.seed, self.size, self.slices = count, seed, size, slices

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return make_sample(self.seed * 1_000_003 + index, self.size, self.slices)
