"""Convolution of image stacks by a point-spread function: what the layered renderer and the
bokeh kernels share (direct for small kernels, FFT for large ones, on any torch device)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Folded into a downsampled layer's kernel: a mild Laplacian sharpening that undoes most of the
# softening of the tent reduction and the bilinear enlargement (0.5-1 dB closer to a full-resolution
# blur than bicubic enlargement, at a third of its cost).
_RECONSTRUCTION = torch.tensor([[0.0, -0.25, 0.0], [-0.25, 2.0, -0.25], [0.0, -0.25, 0.0]])

# Kernels at least this wide are applied by FFT: a direct depthwise convolution costs k^2 per
# pixel, the FFT a few log(N) whatever the kernel (only reached when k_max is raised to avoid
# downsampling, e.g. for exact reference renders).
FFT_MIN_KERNEL = 41

def convolve(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Scatter each pixel of a (B, C, h, w) stack by a (k, k) PSF, zero outside; same size out.

    Direct channels-last depthwise convolution for small kernels, FFT for kernels of at least
    FFT_MIN_KERNEL pixels. Both run on any torch device.
    """
    k = kernel.shape[-1]
    if k == 1:
        return x if float(kernel) == 1.0 else x * kernel.reshape(())
    channels = x.shape[1]
    if k >= FFT_MIN_KERNEL:
        h, w = x.shape[-2:]
        size = (h + k - 1, w + k - 1)
        spectrum = torch.fft.rfft2(x, s=size) * torch.fft.rfft2(kernel.to(x.dtype), s=size)
        half = k // 2
        return torch.fft.irfft2(spectrum, s=size)[..., half:half + h, half:half + w].contiguous()
    weight = kernel.flip(0, 1).expand(channels, 1, k, k)  # conv2d correlates; flip to scatter the PSF
    # Channels-last depthwise convolution is 3-5x faster on CPU (oneDNN) and has no cliff at 15x15,
    # where the NCHW path falls to a kernel 30x slower.
    # The result stays channels-last: the renderer keeps its buffers in that layout, so no copy back.
    return F.conv2d(x.contiguous(memory_format=torch.channels_last), weight, padding=k // 2, groups=channels)
