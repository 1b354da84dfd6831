"""Optical transfer functions of disc blurs and FFT sizes: what the physical cost volume and the
layered Wiener deconvolution share (core.focal_stack.defocus_volume, .deconvolution)."""

from __future__ import annotations

import math

import torch

_JINC_SAMPLES = 16384  # entries of the jinc lookup table (fine enough that its error is far below the noise)


def disc_otf(diameters: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Optical transfer function of uniform discs on an rfft2 grid: (L, height, width // 2 + 1).

    A disc of diameter c has OTF 2 J1(pi c rho) / (pi c rho), rho the radial frequency in cycles
    per pixel; c = 0 is the identity.
    """
    # |f_y| of rows k and height - k agree: compute rows 0..height // 2 and mirror the rest.
    unique = height // 2 + 1
    fy = torch.fft.fftfreq(height, dtype=torch.float32, device=diameters.device)[:unique].view(unique, 1)
    fx = torch.fft.rfftfreq(width, dtype=torch.float32, device=diameters.device).view(1, -1)
    rho = (fx * fx + fy * fy).sqrt()
    x = math.pi * diameters.to(torch.float32).view(-1, 1, 1) * rho
    # jinc from a fine table: a Bessel function per frequency and level costs ten times more.
    x_max = float(x.max()) + 1e-3
    table_x = torch.linspace(0.0, x_max, _JINC_SAMPLES, dtype=torch.float64, device=diameters.device)
    safe = torch.where(table_x > 1e-6, table_x, torch.ones_like(table_x))
    table = torch.where(table_x > 1e-6, 2.0 * torch.special.bessel_j1(safe) / safe, torch.ones_like(safe))
    u = x * ((_JINC_SAMPLES - 1) / x_max)
    i = u.long().clamp(max=_JINC_SAMPLES - 2)
    t = u - i
    table = table.to(torch.float32)
    half = torch.lerp(table[i], table[i + 1], t)
    return torch.cat([half, half[:, 1:height - height // 2].flip(1)], dim=1)


def _fft_size(n: int) -> int:
    """The smallest size >= n with no prime factor above 5 (fast for pocketfft)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1
