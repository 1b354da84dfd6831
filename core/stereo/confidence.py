"""How far to trust each pixel's disparity, in [0, 1].

Classical matching (:func:`sgbm_confidence`) multiplies three cues, each in [0, 1]:

* agreement: the two views' disparities agree, ``exp(-(e / t)^2)`` for a disagreement of e pixels
  at tolerance t;
* texture: matching needs horizontal intensity change in the window, ``1 - exp(-E / E0)`` for the
  window's mean squared horizontal gradient E;
* support: a filled pixel gets a fraction of the trust of the valid pixels around it, fading with
  its distance to the nearest one (a wide hole is a guess, a one-pixel crack is nearly a measure).

Learned matching (:func:`cost_volume_confidence`) reads the network's own matching distribution:
the probability mass within one disparity step of its expectation.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def texture_strength(grey: np.ndarray, window: int = 7, energy: float = 2e-4) -> np.ndarray:
    """``1 - exp(-E / energy)`` for the windowed mean squared horizontal gradient E of an (H, W)
    grey image in [0, 1]; (H, W) float32."""
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    e = cv2.boxFilter(gx * gx, -1, (window, window))
    return (1.0 - np.exp(-e / energy)).astype(np.float32)


def sgbm_confidence(valid: np.ndarray, disagreement: np.ndarray, grey: np.ndarray, tolerance: float = 1.0,
                    fill_trust: float = 0.3, fade_px: float = 8.0) -> np.ndarray:
    """Confidence of a filled SGBM disparity, (H, W) float32 in [0, 1] (module doc).

    Args:
        valid: (H, W) bool, pixels that passed the left-right check.
        disagreement: (H, W) absolute left-right disagreement in pixels (NaN where unknown).
        grey: (H, W) float32 left image in [0, 1].
        tolerance: the left-right check's tolerance, pixels.
        fill_trust: trust of a filled pixel next to a valid one, relative to it.
        fade_px: distance over which trust in filled pixels falls by e.
    """
    t = max(tolerance, 0.25)
    agreement = np.exp(-np.square(np.nan_to_num(disagreement, nan=np.inf) / t))
    measured = agreement * texture_strength(grey)
    # Distance (px) of every pixel to the nearest valid one; 0 on valid pixels.
    distance = cv2.distanceTransform((~valid).astype(np.uint8), cv2.DIST_L2, 3)
    neighbourhood = cv2.blur(np.where(valid, measured, 0.0).astype(np.float32), (9, 9))
    support = cv2.blur(valid.astype(np.float32), (9, 9))
    nearby = np.where(support > 0, neighbourhood / np.maximum(support, 1e-6), np.median(measured[valid]))
    filled = fill_trust * nearby * np.exp(-distance / fade_px)
    return np.clip(np.where(valid, measured, filled), 0.0, 1.0).astype(np.float32)


def cost_volume_confidence(probabilities: torch.Tensor, expectation: torch.Tensor, radius: float = 1.0
                           ) -> torch.Tensor:
    """Probability mass within ``radius`` bins of the expected disparity bin.

    Args:
        probabilities: (B, D, H, W) softmax over D disparity bins.
        expectation: (B, 1, H, W) expected bin index (soft-argmin), in bins.

    Returns:
        (B, 1, H, W) in [0, 1]: near 1 for a single sharp match, low for flat or split evidence.
    """
    bins = torch.arange(probabilities.shape[1], device=probabilities.device, dtype=probabilities.dtype)
    near = ((bins.view(1, -1, 1, 1) - expectation).abs() <= radius).to(probabilities.dtype)
    return (probabilities * near).sum(dim=1, keepdim=True).clamp(0.0, 1.0)


def upsample_confidence(confidence: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (B, 1, h, w) confidence to ``size`` (H, W)."""
    return F.interpolate(confidence, size=size, mode="bilinear", align_corners=False).clamp(0.0, 1.0)
