"""Training loss of the Stereo Depth network: Barron's robust loss at every scale (SteReFo: alpha = 1, c = 2).

Barron's general robust loss ("A General and Adaptive Robust Loss Function", CVPR 2019) of a
residual x with shape alpha and scale c:

    rho(x, alpha, c) = |alpha - 2| / alpha * (((x / c)^2 / |alpha - 2| + 1)^(alpha / 2) - 1),

with its limits 0.5 (x/c)^2 at alpha = 2 and log(0.5 (x/c)^2 + 1) at alpha = 0. At alpha = 1 it
is the pseudo-Huber / Charbonnier loss sqrt((x/c)^2 + 1) - 1: quadratic within c pixels, linear
beyond, so occlusion edges and rendering noise do not dominate the gradient.
"""

from __future__ import annotations

import torch


def barron_loss(x: torch.Tensor, alpha: float = 1.0, scale: float = 2.0) -> torch.Tensor:
    """Elementwise rho(x, alpha, c) of the module doc (same shape as ``x``)."""
    z = (x / scale) ** 2
    if alpha == 2.0:
        return 0.5 * z
    if alpha == 0.0:
        return torch.log1p(0.5 * z)
    b = abs(alpha - 2.0)
    return b / alpha * ((z / b + 1.0) ** (alpha / 2.0) - 1.0)


def disparity_loss(levels: list[torch.Tensor], truth: torch.Tensor, max_disparity: float,
                   alpha: float = 1.0, scale: float = 2.0) -> torch.Tensor:
    """Mean robust loss of every scale's (B, 1, H, W) estimate against the true disparity.

    Pixels without ground truth (non-finite) or outside ``[0, max_disparity)`` do not count: the
    network cannot represent them.
    """
    valid = torch.isfinite(truth) & (truth >= 0) & (truth < max_disparity)
    target = torch.where(valid, truth, torch.zeros_like(truth))
    count = valid.sum().clamp_min(1)
    total = truth.new_zeros(())
    for estimate in levels:
        total = total + (barron_loss(estimate - target, alpha, scale) * valid).sum() / count
    return total
