"""A real stereo pair with ground truth that a package ships: Middlebury 2014's Motorcycle.

scikit-image (``skimage.data.stereo_motorcycle``) carries the pair inside its wheel, a quarter of
the original resolution (741x500), with the ground-truth disparity of the left view (NaN where
unknown) and its calibration. Nothing is downloaded. scikit-image is an optional dependency; the
functions here fail with an :class:`InputError` that says so when it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..colour import srgb_to_linear
from ..errors import fail

# Calibration of the down-sampled pair, from scikit-image's documentation of the data.
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_DOFFS_PX = 31.086


@dataclass(frozen=True)
class ReferencePair:
    """Left and right (H, W, 3) scene-linear float32 views, (H, W) true disparity (NaN: unknown)."""

    name: str
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    focal_length_px: float
    baseline_m: float
    offset_px: float


def motorcycle() -> ReferencePair:
    """Middlebury's Motorcycle pair as scikit-image ships it (module doc)."""
    try:
        from skimage import data
    except ImportError:
        fail("the Motorcycle pair comes with scikit-image; install it (pip install scikit-image==0.26.0)")
    left, right, disparity = data.stereo_motorcycle()

    def linear(image: np.ndarray) -> np.ndarray:
        return srgb_to_linear(image.astype(np.float32) / 255.0)

    return ReferencePair("Motorcycle (Middlebury 2014, 741x500)", linear(left), linear(right),
                         disparity.astype(np.float32), MOTORCYCLE_FOCAL_PX, MOTORCYCLE_BASELINE_M,
                         MOTORCYCLE_DOFFS_PX)
