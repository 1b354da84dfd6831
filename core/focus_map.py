"""The focus map: the signed circle of confusion as a heat map, with the in-focus band marked.

What a focus puller's monitor shows: everything the lens renders sharp in green, what lies in
front of it in blue growing brighter with its blur, what lies behind in orange. Made for viewing:
the colours are chosen in display sRGB and returned scene-linear, so that writing the map to PNG
or JPEG (which encode sRGB) shows them as intended, and an EXR holds the same picture.
"""

from __future__ import annotations

import torch

from .colour import srgb_to_linear
from .errors import check

# Display sRGB colours of the map's three parts.
IN_FOCUS = (0.2, 0.95, 0.3)
NEAR = (0.15, 0.45, 1.0)
FAR = (1.0, 0.55, 0.1)
DIM = 0.12  # the display brightness of a blur just outside the band


def focus_map(coc: torch.Tensor, in_focus_px: float = 1.0, full_scale_px: float | None = None) -> torch.Tensor:
    """(B, 3, H, W) scene-linear heat map of a signed CoC map.

    Args:
        coc: (B, 1, H, W) signed CoC diameter, pixels: < 0 in front of focus, > 0 behind.
        in_focus_px: CoC diameters up to this count as sharp (the green band); 1 px: what a
            renderer leaves untouched.
        full_scale_px: the CoC shown at full brightness (default: the largest in the map).

    Returns:
        Green where |coc| <= ``in_focus_px``; blue in front and orange behind, from dim at the
        band's edge to full brightness at ``full_scale_px``.
    """
    check(in_focus_px >= 0.0, f"the in-focus band must be non-negative, got {in_focus_px}")
    magnitude = coc.abs()
    scale = float(magnitude.max()) if full_scale_px is None else float(full_scale_px)
    scale = max(scale, in_focus_px + 1e-6)
    level = DIM + (1.0 - DIM) * ((magnitude - in_focus_px) / (scale - in_focus_px)).clamp(0.0, 1.0)
    near = torch.tensor(NEAR, dtype=coc.dtype, device=coc.device).view(1, 3, 1, 1)
    far = torch.tensor(FAR, dtype=coc.dtype, device=coc.device).view(1, 3, 1, 1)
    sharp = torch.tensor(IN_FOCUS, dtype=coc.dtype, device=coc.device).view(1, 3, 1, 1)
    display = torch.where(coc < 0, near, far) * level
    display = torch.where(magnitude <= in_focus_px, sharp.expand_as(display), display)
    return srgb_to_linear(display)
