"""Image quality metrics for comparing renders: PSNR and SSIM.

Both take (B, C, H, W) tensors and compare them as they are: pass display-referred values
(e.g. sRGB-encoded and clipped to [0, 1]) for numbers that mean what photographers expect;
:func:`display` does that conversion from scene-linear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .colour import linear_to_srgb
from .errors import check


def display(linear: torch.Tensor) -> torch.Tensor:
    """Scene-linear to sRGB-encoded [0, 1], the space the metrics are usually reported in."""
    return linear_to_srgb(linear.clamp(0.0, 1.0))


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: (B,) tensor."""
    check(a.shape == b.shape, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(peak * peak / mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004, Gaussian 11x11, sigma 1.5) per image: (B,) tensor.

    Channels are averaged; borders are excluded (valid convolution), as the reference code does.
    """
    check(a.shape == b.shape, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    check(a.dim() == 4, f"expected (B, C, H, W), got {tuple(a.shape)}")
    c = a.shape[1]
    g = _gaussian_window(window, sigma, a.device, a.dtype)
    kernel_h = g.view(1, 1, 1, -1).expand(c, 1, 1, window)
    kernel_v = g.view(1, 1, -1, 1).expand(c, 1, window, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kernel_h, groups=c), kernel_v, groups=c)

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(dim=1)
