"""Highlight control: bring out specular bokeh from low-dynamic-range input.

An 8-bit photograph clips its speculars at 1.0, so a defocused street light spreads its clipped
energy into a dim, grey disc instead of a bright one. Pixels brighter than a threshold are given
back energy before the blur: their colour is multiplied by ``gain``, reached through a soft knee so
that no contour appears where the boost starts. Scene-linear in, scene-linear out.
"""

from __future__ import annotations

import torch

from .errors import check

# Rec. 709 / sRGB primaries: the luminance that decides what counts as a highlight.
_LUMA = (0.2126, 0.7152, 0.0722)


def highlight_weight(image: torch.Tensor, threshold: float, knee: float = 0.2) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1]: 1 at or above ``threshold`` luminance, 0 below ``threshold * (1 - knee)``,
    smoothstep between. ``image`` (B, C, H, W) scene-linear; one channel counts as luminance."""
    if image.shape[1] >= 3:
        luma = sum(w * image[:, i:i + 1] for i, w in enumerate(_LUMA))
    else:
        luma = image[:, :1]
    width = max(threshold * knee, 1e-6)
    t = ((luma - (threshold - width)) / width).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def boost_highlights(image: torch.Tensor, threshold: float = 0.9, gain: float = 1.0, knee: float = 0.2) -> torch.Tensor:
    """Multiply the colour of highlights by ``gain`` (1: unchanged).

    Args:
        image: (B, C, H, W) scene-linear; with 4 channels the 4th (alpha) is left alone.
        threshold: luminance above which a pixel is a highlight (LDR input: just under 1).
        gain: energy factor given to full highlights, >= 1 brightens (e.g. 4-20 for street lights).
        knee: the boost ramps in over ``threshold * knee`` of luminance below the threshold, so that
            a clipped specular (1.0) is fully boosted with a threshold just under 1.

    Returns:
        (B, C, H, W) scene-linear.
    """
    check(threshold >= 0.0, f"the highlight threshold must be non-negative, got {threshold}")
    check(gain > 0.0, f"the highlight gain must be positive, got {gain}")
    check(knee > 0.0, f"the highlight knee must be positive, got {knee}")
    if gain == 1.0:
        return image
    factor = 1.0 + (gain - 1.0) * highlight_weight(image, threshold, knee)
    if image.shape[1] == 4:
        return torch.cat([image[:, :3] * factor, image[:, 3:]], dim=1)
    return image * factor
