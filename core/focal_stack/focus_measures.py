"""Focus measures: how sharp each pixel of each slice is, as a non-negative map.

All measures take a (N, 1, H, W) stack of grey slices (any linear or display-referred intensity;
sRGB-encoded values respond more evenly across shadows and highlights) and return (N, 1, H, W)
maps, larger where the slice is sharper. Each first computes a pointwise high-pass response, then
sums it over a ``window`` x ``window`` box, since one pixel's derivative is dominated by noise
(Pertuz et al.'s survey of shape-from-focus operators groups them this way):

* :func:`modified_laplacian` (Nayar's sum-modified-Laplacian): |2I - I(x-s) - I(x+s)| +
  |2I - I(y-s) - I(y+s)|, which keeps the two second derivatives from cancelling as the plain
  Laplacian's do on saddle-shaped texture.
* :func:`variance_of_laplacian`: the local variance of the Laplacian, robust to a constant offset.
* :func:`tenengrad`: the squared Sobel gradient magnitude.

Borders are replicated, so the measures keep the image size and are defined to the edge.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F

from ..box_filter import box_mean
from ..errors import check

FocusMeasure = Literal["modified-laplacian", "variance-of-laplacian", "tenengrad"]

# Rec. 709 luma weights: focus lives in luminance, and one channel costs a third of three.
_LUMA = (0.2126, 0.7152, 0.0722)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) colour to (..., 1, H, W) luminance; one channel passes through."""
    if image.shape[-3] == 1:
        return image
    check(image.shape[-3] >= 3, f"expected 1 or at least 3 channels, got {image.shape[-3]}")
    w = image.new_tensor(_LUMA).view(3, 1, 1)
    return (image[..., :3, :, :] * w).sum(dim=-3, keepdim=True)


def _shifted(x: torch.Tensor, step: int) -> tuple[torch.Tensor, ...]:
    """Left, right, up, down neighbours at distance ``step`` (borders replicated)."""
    p = F.pad(x, (step, step, step, step), mode="replicate")
    h, w = x.shape[-2:]
    left = p[..., step:step + h, 0:w]
    right = p[..., step:step + h, 2 * step:2 * step + w]
    up = p[..., 0:h, step:step + w]
    down = p[..., 2 * step:2 * step + h, step:step + w]
    return left, right, up, down


def modified_laplacian(grey: torch.Tensor, window: int = 9, step: int = 1) -> torch.Tensor:
    """Sum-modified-Laplacian (Nayar & Nakagawa), averaged over the window: (N, 1, H, W)."""
    left, right, up, down = _shifted(grey, step)
    ml = (2 * grey - left - right).abs() + (2 * grey - up - down).abs()
    return box_mean(ml, window)


def variance_of_laplacian(grey: torch.Tensor, window: int = 9) -> torch.Tensor:
    """Local variance of the 4-neighbour Laplacian over the window: (N, 1, H, W)."""
    left, right, up, down = _shifted(grey, 1)
    lap = left + right + up + down - 4 * grey
    mean = box_mean(lap, window)
    return (box_mean(lap * lap, window) - mean * mean).clamp_min(0.0)


def tenengrad(grey: torch.Tensor, window: int = 9) -> torch.Tensor:
    """Tenengrad: squared Sobel gradient magnitude averaged over the window: (N, 1, H, W)."""
    p = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    sobel_x = grey.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    kernels = torch.cat([sobel_x, sobel_x.transpose(-1, -2)], dim=0)
    g = F.conv2d(p, kernels)
    return box_mean((g * g).sum(dim=1, keepdim=True), window)


MEASURES: dict[str, Callable[..., torch.Tensor]] = {
    "modified-laplacian": modified_laplacian,
    "variance-of-laplacian": variance_of_laplacian,
    "tenengrad": tenengrad,
}


def focus_measure(grey: torch.Tensor, measure: FocusMeasure = "modified-laplacian", window: int = 9) -> torch.Tensor:
    """Apply the named focus measure to a (N, 1, H, W) grey stack."""
    check(measure in MEASURES, f"unknown focus measure {measure!r}; use one of {', '.join(MEASURES)}")
    check(window >= 1, f"focus window must be at least 1 pixel, got {window}")
    check(grey.dim() == 4 and grey.shape[1] == 1, f"expected a (N, 1, H, W) grey stack, got {tuple(grey.shape)}")
    return MEASURES[measure](grey, window=window)
