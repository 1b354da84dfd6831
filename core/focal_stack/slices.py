"""What makes a valid focal stack, checked once for the classical and the learned method alike.

A focal stack is N >= 2 images of one view, each focused at its own distance. Both methods work in
*dioptres* (1 / metres): blur is linear in inverse depth (core.optics), so slices evenly spaced in
dioptres are evenly spaced in blur, and a focus at infinity is simply 0.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import check, fail

# Depth is reported no farther than this: a pixel whose focus peaks at the infinity slice is "far",
# and 1 / 0 would make every metric and every later refocus meaningless.
MAX_DEPTH_M = 1e4


def check_slices(slices: Sequence[torch.Tensor] | torch.Tensor) -> None:
    """At least two slices, all (C, H, W) of one size and channel count."""
    check(len(slices) >= 2, f"a focal stack needs at least 2 slices, got {len(slices)}")
    first = slices[0]
    for i, s in enumerate(slices):
        check(s.shape[-2:] == first.shape[-2:],
              f"slice {i} is {s.shape[-1]}x{s.shape[-2]} but slice 0 is {first.shape[-1]}x{first.shape[-2]}")
        check(s.shape[-3] == first.shape[-3],
              f"slice {i} has {s.shape[-3]} channels but slice 0 has {first.shape[-3]}")


def check_focus_distances(focus_distances: Sequence[float] | torch.Tensor, count: int) -> torch.Tensor:
    """Validate per-slice focus distances in metres and return them as a float64 (N,) tensor.

    Each must be positive (``inf`` for a lens focused at infinity is fine), one per slice, and no
    two alike: two slices focused at one distance carry no depth information between them, and the
    sub-slice fit would divide by zero.
    """
    d = torch.as_tensor(focus_distances, dtype=torch.float64).flatten()
    check(d.numel() == count, f"got {d.numel()} focus distance(s) for {count} slice(s); give one per slice")
    check(not bool(torch.isnan(d).any()), "focus distances must be numbers, got NaN")
    check(bool((d > 0).all()), f"focus distances must be positive, got {min(d.tolist()):g} m")
    if torch.unique(d).numel() != d.numel():
        dup = next(v for v in d.tolist() if int((d == v).sum()) > 1)
        fail(f"focus distance {dup:g} m appears more than once; each slice needs its own distance")
    return d


def dioptres(focus_distances: torch.Tensor) -> torch.Tensor:
    """Inverse focus distances (1/m); infinity maps to 0."""
    return 1.0 / focus_distances


def depth_from_dioptres(inverse_depth: torch.Tensor) -> torch.Tensor:
    """Planar depth in metres from inverse depth, capped at :data:`MAX_DEPTH_M`."""
    return 1.0 / inverse_depth.clamp_min(1.0 / MAX_DEPTH_M)
