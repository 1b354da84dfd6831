"""Stereo depth: disparity of the left view of a rectified pair, classical (SGBM) or learned.

Entry points::

    from core.stereo import StereoCamera, estimate_disparity
    result = estimate_disparity(left, right, method="sgbm", max_disparity=128)   # (B, C, H, W) linear
    depth = StereoCamera(interocular_distance=0.1, convergence_mode="PARALLEL").to_depth(result.disparity)

Disparity is ``x_left - x_right`` in pixels; depth is planar metres, ready for core.defocus.
"""

from __future__ import annotations

import torch

from ..errors import check
from .conversion import StereoCamera, depth_to_disparity, disparity_to_depth
from .metrics import StereoMetrics, benchmark, occlusion_mask, stereo_metrics
from .result import StereoResult
from .sgbm import SGBMParams, round_disparity_range, stereo_sgbm

METHODS = ("sgbm", "learned", "refined")


def estimate_disparity(left: torch.Tensor, right: torch.Tensor, method: str = "sgbm",
                       max_disparity: int | None = None, min_disparity: int = 0,
                       model: torch.nn.Module | None = None) -> StereoResult:
    """Dense disparity and confidence of the left view of a rectified pair.

    Args:
        left, right: (B, C, H, W) scene-linear images of the same size.
        method: ``sgbm`` (OpenCV semi-global matching, CPU), ``learned`` (the StereoNet-style
            network on the inputs' device) or ``refined`` (SGBM, then a StereoNet-style refinement
            network guided by the image).
        max_disparity: largest disparity searched, pixels (SGBM rounds the range up to a multiple
            of 16, default 128; the network to whole cost-volume bins, default its own).
        min_disparity: smallest disparity searched (SGBM only; negative for OFFAXIS pairs).
        model: a loaded network for ``learned`` or ``refined`` (default: the shipped weights).
    """
    check(method in METHODS, f"unknown stereo method {method!r}; use one of {', '.join(METHODS)}")
    if method == "learned":
        from .learned import learned_disparity

        check(min_disparity == 0, "the learned method searches from disparity 0; use sgbm for negative disparities")
        return learned_disparity(left, right, model, max_disparity)
    if method == "refined":
        from .learned import refined_disparity

        check(min_disparity == 0, "the refined method searches from disparity 0; use sgbm for negative disparities")
        return refined_disparity(left, right, model, max_disparity)
    num, _ = round_disparity_range(128 if max_disparity is None else max_disparity, min_disparity)
    return stereo_sgbm(left, right, SGBMParams(min_disparity=min_disparity, num_disparities=num))


__all__ = ["METHODS", "SGBMParams", "StereoCamera", "StereoMetrics", "StereoResult", "benchmark",
           "depth_to_disparity", "disparity_to_depth", "estimate_disparity", "occlusion_mask", "stereo_metrics"]
