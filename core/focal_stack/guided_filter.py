"""The guided filter (He, Sun & Tang): edge-aware smoothing of maps steered by an image.

Within each window the output is a linear function of the guide, q = a I + b, fitted to the input
in the least-squares sense with a ridge ``eps`` on a. Where the guide is flat (variance << eps)
a -> 0 and the input is averaged; where the guide has an edge (variance >> eps) the output
follows the edge. Cost-volume filtering with it (Hosni et al.) is the fast stand-in for the
joint-bilateral regularisation of seed 001: every slice of a focus volume is smoothed within
regions of similar colour, so weak texture borrows the focus evidence of its neighbours without
smearing it across object boundaries. O(1) per pixel in the radius (box filters).
"""

from __future__ import annotations

import torch

from ..errors import check
from ..box_filter import box_mean


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float = 1e-3) -> torch.Tensor:
    """Filter ``src`` guided by a grey ``guide``.

    Args:
        guide: (1, 1, H, W) or (N, 1, H, W) grey guide image, values about [0, 1] (``eps`` is in
            the guide's squared units).
        src: (N, K, H, W) maps to filter, e.g. the N slices of a focus volume (K = 1).
        radius: window half-size in pixels (window 2 r + 1).
        eps: ridge on the local slope; larger values smooth across weaker edges.

    Returns:
        (N, K, H, W) filtered maps.
    """
    check(radius >= 0, f"guided filter radius must be >= 0, got {radius}")
    check(eps > 0, f"guided filter eps must be positive, got {eps}")
    if radius == 0:
        return src
    a, b = guided_filter_coefficients(guide, src, radius, eps)
    return a * guide + b


def guided_filter_coefficients(guide: torch.Tensor, src: torch.Tensor, radius: int,
                               eps: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """The window-averaged linear model (a, b) of :func:`guided_filter`: its output is a * guide + b.

    Exposed for the fast guided filter (He & Sun 2015): fit (a, b) on a low-resolution guide,
    upsample them bilinearly and apply them to the full-resolution guide (core.mono.upsample).

    Returns:
        (N, K, H, W) slope a and offset b.
    """
    check(radius >= 1, f"guided filter coefficients need a radius >= 1, got {radius}")
    check(eps > 0, f"guided filter eps must be positive, got {eps}")
    window = 2 * radius + 1
    mean_i = box_mean(guide, window)
    var_i = box_mean(guide * guide, window) - mean_i * mean_i
    mean_p = box_mean(src, window)
    cov_ip = box_mean(guide * src, window) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, window), box_mean(b, window)
