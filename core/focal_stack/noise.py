"""Camera sensor noise for focal stacks: the Poisson-Gaussian model, and its level measured back.

A raw pixel collects photons (shot noise, Poisson: variance proportional to the signal) and adds
read-out noise (Gaussian, constant). On scene-linear values x in [0, 1]:

    y = a * Poisson(x / a) + N(0, b^2),     Var[y | x] = a x + b^2,

``a`` (gain: 1 / a photo-electrons make white) and ``b`` (read noise, scene-linear units). A
camera's noise is the same in every slice of a stack, whatever the blur; a path tracer's grows
with the blur, which is why the datasets render denoised and add this noise afterwards (issue 21).
"""

from __future__ import annotations

import torch

# The level used for issue 21's noisy evaluations: 1 / 0.002 = 500 photo-electrons make white (a
# small phone sensor at a moderate ISO), read noise 0.002 (about half a code value in 8 bits).
DEFAULT_GAIN = 0.002
DEFAULT_READ_NOISE = 0.002


def poisson_gaussian(image: torch.Tensor, gain: float = DEFAULT_GAIN, read_noise: float = DEFAULT_READ_NOISE,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``image`` (any shape, scene-linear, >= 0) with Poisson-Gaussian noise; float32, not clipped
    above (HDR stays), negative values kept (as raw data has them around black)."""
    x = image.to(torch.float32).clamp_min(0.0)
    shot = torch.poisson(x / gain, generator=generator) * gain if gain > 0 else x
    read = 0.0
    if read_noise > 0:
        read = torch.randn(x.shape, generator=generator, dtype=torch.float32, device=x.device) * read_noise
    return shot + read


def noise_sigma(grey: torch.Tensor) -> torch.Tensor:
    """Robust per-image noise standard deviation of (N, 1, H, W) maps: (N,).

    Immerkaer's estimator made robust: the image convolved with [[1, -2, 1], [-2, 4, -2],
    [1, -2, 1]] (the difference of two Laplacians: zero on any locally quadratic surface, so
    smooth shading and texture barely respond, while iid noise of sigma gives sigma times the
    kernel's norm, 6), and the median of its magnitude / 0.6745 (edges are few and move the median
    little).
    """
    # The kernel is separable, [1, -2, 1] down times [1, -2, 1] across: two second differences.
    across = grey[..., :, :-2] - 2.0 * grey[..., :, 1:-1] + grey[..., :, 2:]
    response = (across[..., :-2, :] - 2.0 * across[..., 1:-1, :] + across[..., 2:, :]).flatten(1).abs()
    step = max(1, response.shape[1] // 65536)  # median() of a sample: the full count costs a sort
    return response[:, ::step].median(dim=1).values / (0.6745 * 6.0)
