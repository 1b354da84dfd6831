"""All-in-focus images by layered multi-frame Wiener deconvolution (Video Depth-from-Defocus, seed 001).

Once depth is known, so is every slice's blur everywhere: a pixel at inverse depth d is a disc of
diameter c_n = K_n |1/F_n - d| in slice n (core.optics). The scene is cut into layers at depths
d_m; within a layer every slice is one known convolution of the same sharp image X, so the
least-squares estimate from all N slices at once is, per frequency,

    X_m = sum_n H_nm Y_n / (sum_n |H_nm|^2 + lambda),

H_nm the disc's transfer function (real: the disc is symmetric), Y_n the slice's spectrum and
lambda the noise-to-signal ratio. A frequency that one slice's blur wipes out (a zero of its
disc's transfer function) is restored from the slices that keep it, which a single-image
deconvolution cannot do. Each pixel then takes the layers bracketing its depth, blended linearly
in dioptres. Occlusion boundaries are not modelled (a layer's blur spills a little across them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import check
from .otf import _fft_size, disc_otf


def layered_wiener(
    stack: torch.Tensor,
    inverse_focus: torch.Tensor,
    coc_per_dioptre_px: torch.Tensor,
    inverse_depth: torch.Tensor,
    layers: int = 12,
    noise_to_signal: float = 2e-3,
) -> torch.Tensor:
    """Deconvolve an aligned focal stack into one all-in-focus image.

    Args:
        stack: (N, C, H, W) scene-linear slices.
        inverse_focus: (N,) each slice's focus in dioptres (1 / metres).
        coc_per_dioptre_px: (N,) CoC diameter in pixels per dioptre of defocus, A f_px.
        inverse_depth: (1, 1, H, W) the scene's inverse depth, dioptres.
        layers: depth layers, evenly spaced in dioptres over the depth map's range.
        noise_to_signal: Wiener's lambda (larger: less ringing and noise, less sharpening).

    Returns:
        (1, C, H, W) scene-linear all-in-focus image.
    """
    n, c, h, w = stack.shape
    check(inverse_focus.numel() == n and coc_per_dioptre_px.numel() == n,
          f"need one focus and one blur scale per slice ({n})")
    device = stack.device
    lo, hi = float(inverse_depth.min()), float(inverse_depth.max())
    count = max(1, layers if hi - lo > 1e-9 else 1)
    planes = torch.linspace(lo, hi, count, dtype=torch.float64)
    k = coc_per_dioptre_px.to(torch.float64).view(n, 1)
    coc = k * (inverse_focus.to(torch.float64).view(n, 1) - planes.view(1, count)).abs()  # (N, M)

    pad = int(math.ceil(float(coc.max()) / 2.0)) + 2
    pad_h, pad_w = min(pad, h - 1), min(pad, w - 1)
    padded = F.pad(stack.to(torch.float32), (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    hp, wp = _fft_size(padded.shape[-2]), _fft_size(padded.shape[-1])
    padded = F.pad(padded, (0, wp - padded.shape[-1], 0, hp - padded.shape[-2]), mode="replicate")
    spectra = torch.fft.rfft2(padded)  # (N, C, hp, wp/2+1)

    step = (hi - lo) / (count - 1) if count > 1 else 1.0
    position = ((inverse_depth.to(torch.float64) - lo) / step).to(torch.float32)  # fractional layer
    out = torch.zeros(1, c, h, w, dtype=torch.float32, device=device)
    for m in range(count):
        weight = (1.0 - (position - m).abs()).clamp_min(0.0) if count > 1 else torch.ones_like(position)
        if float(weight.max()) <= 0.0:
            continue
        hm = disc_otf(coc[:, m].to(device), hp, wp)[:, None]  # (N, 1, hp, wf), only for layers in use
        numerator = (hm * spectra).sum(dim=0)
        denominator = (hm * hm).sum(dim=0) + noise_to_signal
        layer = torch.fft.irfft2(numerator / denominator, s=(hp, wp))[None, :, pad_h:pad_h + h, pad_w:pad_w + w]
        out += weight * layer
    return out.to(stack.dtype)
