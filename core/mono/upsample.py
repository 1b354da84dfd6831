"""Guided upsampling of a low-resolution depth prediction to the full image (DeepLens' high-resolution step).

Networks predict at about 512 px; a 4K plate is 7.5 times larger. Bilinear upsampling alone leaves
every depth edge a soft ramp some 8 pixels wide and up to half a network pixel (4 image pixels)
off the object's boundary: a refocus then blurs a halo of the object into the backdrop.

The fast guided filter (He & Sun 2015) puts the edges back: at the prediction's size, the guided
filter (:func:`core.focal_stack.guided_filter.guided_filter_coefficients`) fits depth, window by
window, as a linear function a I + b of the image's luminance I downsampled to that size; a and b
are smooth, so they upsample bilinearly without harm, and applied to the full-resolution
luminance they make depth step exactly where the image steps. Where the image is flat, a is about
zero and depth is just the (smooth) prediction: no texture is copied into flat depth, as depth
has no variance there for the fit to explain.

The costly part runs at the low resolution; at 4K only a bilinear upsampling and a multiply-add
remain per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import check
from ..focal_stack.guided_filter import guided_filter_coefficients

# Rec. 709 luma weights: the guide is the image's luminance (depth edges are mostly luminance edges).
_LUMA = (0.2126, 0.7152, 0.0722)
RADIUS = 1  # low-resolution pixels: a 3x3 window holds a bilinear ramp and the edge it belongs to
EPS = 1e-3  # in the sRGB guide's squared units: edges of contrast above ~0.03 steer the depth


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) Rec. 709 luminance in the image's own encoding (sRGB here)."""
    weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image[:, :3] * weights).sum(dim=1, keepdim=True)


def guided_upsample(inverse_depth: torch.Tensor, image: torch.Tensor, radius: int = RADIUS,
                    eps: float = EPS) -> torch.Tensor:
    """Upsample a (B, 1, h, w) map to the (B, 3, H, W) image's size, its edges snapped to the image's.

    Args:
        inverse_depth: (B, 1, h, w) normalised inverse depth (any smooth map works).
        image: (B, 3, H, W) guide, sRGB in [0, 1] (``eps`` is in its squared units).
        radius: guided-filter window half-size in low-resolution pixels.
        eps: ridge on the local slope; lower follows weaker image edges (and more texture near
            depth edges).

    Returns:
        (B, 1, H, W) map, clipped to the input's range (the input itself when the sizes match; area
        averaged when the prediction is the larger).
    """
    check(inverse_depth.dim() == 4 and inverse_depth.shape[1] == 1,
          f"inverse depth must be (B, 1, h, w), got {tuple(inverse_depth.shape)}")
    check(image.dim() == 4 and image.shape[1] >= 3, f"guide image must be (B, 3, H, W), got {tuple(image.shape)}")
    check(image.shape[0] == inverse_depth.shape[0], f"guide has batch {image.shape[0]}, "
                                                    f"the map {inverse_depth.shape[0]}")
    low, high = tuple(inverse_depth.shape[-2:]), tuple(image.shape[-2:])
    if low == high:  # nothing to upsample: the prediction's own edges stand
        return inverse_depth
    if low[0] >= high[0] and low[1] >= high[1]:  # a prediction finer than the image: average it down
        return F.interpolate(inverse_depth, size=high, mode="area")
    guide = luminance(image.to(inverse_depth.dtype))
    a, b = guided_filter_coefficients(F.interpolate(guide, size=low, mode="area"), inverse_depth, radius, eps)
    a = F.interpolate(a, size=high, mode="bilinear", align_corners=False)
    b = F.interpolate(b, size=high, mode="bilinear", align_corners=False)
    lo = inverse_depth.flatten(1).min(dim=1).values.view(-1, 1, 1, 1)
    hi = inverse_depth.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
    return torch.minimum(torch.maximum(a * guide + b, lo), hi)
