"""Does a pair look rectified? The vertical offset of matched features says.

In a rectified pair every point lies on the same row in both views. ORB features matched across
the views (mutual best matches) should then differ in row by a fraction of a pixel; a median
vertical offset above a pixel means the pair is not rectified (toe-in cameras, a hand-held pair)
and row-wise matching will fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class RowAlignment:
    """Median absolute vertical offset (pixels) of ``matches`` feature matches."""

    vertical_px: float
    matches: int

    def rectified(self, tolerance_px: float = 1.0) -> bool:
        """True when too few features matched to tell, or their median row offset is small."""
        return self.matches < 12 or self.vertical_px <= tolerance_px


def row_alignment(left_u8: np.ndarray, right_u8: np.ndarray, features: int = 1500) -> RowAlignment:
    """Vertical offset of ORB matches between two (H, W[, 3]) uint8 views."""
    grey = [cv2.cvtColor(v, cv2.COLOR_RGB2GRAY) if v.ndim == 3 else v for v in (left_u8, right_u8)]
    orb = cv2.ORB_create(nfeatures=features)
    (kl, dl), (kr, dr) = (orb.detectAndCompute(g, None) for g in grey)
    if dl is None or dr is None or len(kl) < 2 or len(kr) < 2:
        return RowAlignment(0.0, 0)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(dl, dr)
    if not matches:
        return RowAlignment(0.0, 0)
    dy = np.array([kl[m.queryIdx].pt[1] - kr[m.trainIdx].pt[1] for m in matches])
    # Keep the matches that agree with the bulk: ORB mismatches land anywhere.
    spread = np.median(np.abs(dy - np.median(dy))) + 1.0
    good = np.abs(dy - np.median(dy)) <= 5.0 * spread
    return RowAlignment(float(np.median(np.abs(dy[good]))), int(good.sum()))
