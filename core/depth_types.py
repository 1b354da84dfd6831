"""Depth maps in the forms artists have them, converted to planar metres for the optics.

* ``metres``: planar depth in metres (Blender's Z pass), as it is;
* ``normalised``: 0..1 linearly between ``near`` (0) and ``far`` (1), what a Normalize node gives;
* ``inverse``: normalised inverse depth (DeepLens, Mono Depth): 1 at ``near``, 0 at ``far``,
  linear in 1 / depth;
* ``disparity``: stereo disparity in pixels with a baseline in metres, ``Z = B f_px / d``.
"""

from __future__ import annotations

from typing import Literal

import torch

from .errors import check

DepthType = Literal["metres", "normalised", "inverse", "disparity"]
DEPTH_TYPES = ("metres", "normalised", "inverse", "disparity")


def to_metres(values: torch.Tensor, kind: DepthType, near_m: float | None = None, far_m: float | None = None,
              baseline_m: float | None = None, focal_length_px: float | None = None) -> torch.Tensor:
    """(B, 1, H, W) depth of type ``kind`` to planar depth in metres, (B, 1, H, W).

    Non-finite or out-of-range values stay as they come out (the depth check refuses them with a
    sentence): 0 disparity gives infinity, a normalised value outside 0..1 a depth outside the range.
    """
    check(kind in DEPTH_TYPES, f"unknown depth type {kind!r}; use one of {', '.join(DEPTH_TYPES)}")
    if kind == "metres":
        return values
    if kind in ("normalised", "inverse"):
        check(near_m is not None and far_m is not None and 0 < near_m < far_m,
              f"{kind} depth needs near and far distances with 0 < near < far, got {near_m} and {far_m}")
        assert near_m is not None and far_m is not None
        if kind == "normalised":
            return near_m + values * (far_m - near_m)
        return 1.0 / (1.0 / far_m + values * (1.0 / near_m - 1.0 / far_m))
    check(baseline_m is not None and baseline_m > 0, "disparity depth needs a positive baseline in metres")
    check(focal_length_px is not None and focal_length_px > 0, "disparity depth needs the focal length")
    assert baseline_m is not None and focal_length_px is not None
    return baseline_m * focal_length_px / values
