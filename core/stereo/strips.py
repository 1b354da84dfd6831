"""SGBM in horizontal strips: bounded memory and progress for large frames.

:func:`core.stereo.sgbm.sgbm_disparity` holds a dozen full-frame maps at once (SGBM's own row
buffers, both views' disparities, the half-pixel debiasing pass, the Fast Global Smoother of the
fill), about 85 bytes a pixel on top of the inputs: 4 GiB for an 8000x6000 pair. A rectified pair
matches along rows, so the frame can be cut into horizontal strips that each run the whole method
on their rows plus ``overlap`` rows above and below (SGM's vertical paths and the fill's spreading
reach a little across a cut), keeping only the strip's own rows. Peak memory is then the inputs,
the four output maps and one strip's working set, whatever the frame's height.

A strip that matches nothing (sky, a flat wall) is filled afterwards from the nearest matched rows
above and below, with zero confidence, as the whole-frame fill does for rows without a match.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import InputError, check, fail
from .result import StereoResult
from .sgbm import SGBMParams, check_pair, sgbm_disparity

BYTES_PER_PIXEL = 90  # working set of sgbm_disparity per pixel of a strip (measured at 2000x1500, D=256)
DEFAULT_STRIP_BYTES = 768 * 2**20
MIN_STRIP_ROWS = 128


def strip_rows(width: int, budget_bytes: int = DEFAULT_STRIP_BYTES, num_disparities: int = 128) -> int:
    """Rows per strip so that one strip's working set stays within ``budget_bytes``."""
    per_row = width * BYTES_PER_PIXEL * max(1.0, num_disparities / 256)
    return max(MIN_STRIP_ROWS, int(budget_bytes // max(per_row, 1)))


def matching_image(image: np.ndarray, rows: int = 512) -> np.ndarray:
    """:func:`core.stereo.sgbm.to_matching_image` band by band: the same uint8 image, without the
    full-frame float temporaries of the sRGB encoding (2 GiB for an 8000x6000 view)."""
    from .sgbm import to_matching_image

    first = to_matching_image(image[:rows])
    if image.shape[0] <= rows:
        return first
    out = np.empty((image.shape[0],) + first.shape[1:], np.uint8)
    out[:rows] = first
    for y in range(rows, image.shape[0], rows):
        out[y:y + rows] = to_matching_image(image[y:y + rows])
    return out


def _fill_empty_rows(disparity: np.ndarray, matched_rows: np.ndarray) -> np.ndarray:
    """Rows of strips that matched nothing take the nearest matched row's values (above or below)."""
    rows = np.flatnonzero(matched_rows)
    missing = np.flatnonzero(~matched_rows)
    if missing.size == 0:
        return disparity
    after = np.searchsorted(rows, missing)  # the first matched row below each missing one
    up = rows[np.clip(after - 1, 0, rows.size - 1)]
    down = rows[np.clip(after, 0, rows.size - 1)]
    disparity[missing] = disparity[np.where(np.abs(up - missing) <= np.abs(down - missing), up, down)]
    return disparity


def sgbm_disparity_strips(left: np.ndarray, right: np.ndarray, params: SGBMParams = SGBMParams(),
                          rows: int | None = None, overlap: int = 48,
                          progress: Callable[[int, int], None] | None = None) -> StereoResult:
    """:func:`core.stereo.sgbm.sgbm_disparity` of an (H, W, C) scene-linear pair, strip by strip.

    Args:
        rows: strip height in pixels (default :func:`strip_rows` for the width); a frame no
            taller than ``rows + 2 * overlap`` runs in one piece, exactly as ``sgbm_disparity``.
        overlap: extra rows matched above and below each strip and then dropped.
        progress: ``progress(done, total)`` after each strip.

    Returns:
        :class:`StereoResult` of (1, 1, H, W) CPU tensors, as ``sgbm_disparity``.
    """
    params.validate()
    check_pair(left, right)
    check(overlap >= 0, f"the strip overlap must not be negative, got {overlap}")
    h, w = left.shape[:2]
    rows = rows if rows is not None else strip_rows(w, num_disparities=params.num_disparities)
    check(rows >= 1, f"strips need at least one row, got {rows}")
    if h <= rows + 2 * overlap:
        result = sgbm_disparity(left, right, params)
        if progress is not None:
            progress(1, 1)
        return result
    starts = list(range(0, h, rows))
    disparity = np.empty((h, w), np.float32)
    confidence = np.zeros((h, w), np.float32)
    valid = np.zeros((h, w), bool)
    occluded = np.zeros((h, w), bool)
    matched = np.zeros(h, bool)
    for i, y0 in enumerate(starts):
        y1 = min(y0 + rows, h)
        a, b = max(0, y0 - overlap), min(h, y1 + overlap)
        try:
            part = sgbm_disparity(left[a:b], right[a:b], params)
        except InputError:  # a blank strip, or one where nothing matched: filled from its neighbours
            part = None
        if part is not None:
            keep = slice(y0 - a, y0 - a + (y1 - y0))
            disparity[y0:y1] = part.disparity[0, 0, keep].numpy()
            confidence[y0:y1] = part.confidence[0, 0, keep].numpy()
            valid[y0:y1] = part.valid[0, 0, keep].numpy()
            occluded[y0:y1] = part.occluded[0, 0, keep].numpy()
            matched[y0:y1] = True
        if progress is not None:
            progress(i + 1, len(starts))
    if not matched.any():
        fail("no pixel could be matched between the two images (blank, unrelated, or the disparity "
             "range misses the scene)")
    disparity = _fill_empty_rows(disparity, matched)

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x)[None, None]

    return StereoResult(disparity=tensor(disparity), confidence=tensor(confidence), valid=tensor(valid),
                        occluded=tensor(occluded))
