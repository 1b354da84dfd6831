"""A focus distance per frame from the planar depth inside the tracked box.

SteReFo (seed 000, section 4) takes the median disparity in the box. The median fails as soon as
something else fills half the box: an occluder crossing in front, or the backdrop around a thin
subject. :class:`FocusSampler` instead:

1. drops pixels on depth edges (a neighbour more than ``edge_jump`` away in log depth): there the
   depth is a mix of two surfaces, and a box edge always sits on them;
2. builds a histogram of the rest in log depth (relative precision is what defocus needs; blur is
   linear in 1/depth and so is log depth over a bin), weighted towards the box centre;
3. finds its modes (the surfaces in the box) and keeps the one nearest the previous focus
   (the predicted one: the previous plus its recent velocity in dioptres); at the first frame,
   the heaviest;
4. returns the median depth of that mode's pixels.

A frame whose nearest mode is too far from the prediction (the subject is hidden and the box
holds only other surfaces), or too thin, is *held*: the previous value is repeated with low
confidence. The allowed jump widens with every held frame, so the subject is taken back when it
reappears nearer or farther than it left.

Depth is planar (along the camera axis, Blender's Z pass and focus distance), in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .tracker import Box


@dataclass(frozen=True)
class FocusSample:
    """One frame's focus from depth.

    Attributes:
        distance_m: planar focus distance, metres (the held value when ``held``).
        confidence: 0..1: share of the box's (centre-weighted) pixels on the chosen surface,
            lowered while held.
        held: the subject was not found in the box; ``distance_m`` repeats the last good value.
        modes: number of surfaces found in the box.
    """

    distance_m: float
    confidence: float
    held: bool
    modes: int


def depth_edges(depth: np.ndarray, jump: float) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour more than ``jump`` away in log depth."""
    log = np.log(np.maximum(depth, 1e-6))
    edge = np.zeros(depth.shape, bool)
    dx = np.abs(np.diff(log, axis=1)) > jump
    dy = np.abs(np.diff(log, axis=0)) > jump
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge


def box_window(depth: np.ndarray, box: Box) -> np.ndarray:
    """The box's pixels of a (H, W) map, clipped to the image (possibly empty)."""
    h, w = depth.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return depth[max(y0, 0):min(max(y1, 0), h), max(x0, 0):min(max(x1, 0), w)]


def surface_modes(log_depth: np.ndarray, weights: np.ndarray, bin_width: float, min_share: float
                  ) -> list[tuple[float, float, float, float]]:
    """Surfaces in a set of log depths: (centre, share, low, high) per histogram mode, in log depth.

    Modes are local maxima of the weighted histogram (bins ``bin_width`` wide, smoothed by a
    [1, 2, 1] kernel) holding at least ``min_share`` of the weight between the valleys either side.
    """
    lo, hi = float(log_depth.min()), float(log_depth.max())
    n = max(int(math.ceil((hi - lo) / bin_width)) + 1, 1)
    hist = np.bincount(np.minimum(((log_depth - lo) / bin_width).astype(np.int64), n - 1), weights, n)
    total = float(hist.sum())
    if total <= 0.0:
        return []
    padded = np.concatenate([[0.0], hist, [0.0]])
    smooth = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    peaks = [i for i in range(n) if smooth[i] > 0 and (i == 0 or smooth[i] >= smooth[i - 1])
             and (i == n - 1 or smooth[i] > smooth[i + 1])]
    modes = []
    for k, p in enumerate(peaks):
        # The valleys either side: the lowest bins between this peak and its neighbours.
        left = 0 if k == 0 else peaks[k - 1] + int(np.argmin(smooth[peaks[k - 1]:p + 1]))
        right = n - 1 if k == len(peaks) - 1 else p + int(np.argmin(smooth[p:peaks[k + 1] + 1]))
        share = float(hist[left:right + 1].sum()) / total
        if share >= min_share:
            modes.append((lo + (p + 0.5) * bin_width, share, lo + left * bin_width, lo + (right + 1) * bin_width))
    return modes


def locate_by_depth(depth: np.ndarray, box: Box, distance_m: float, tolerance: float = 0.08,
                    reach: float = 1.0, min_cover: float = 0.3) -> Box | None:
    """Where a box of ``box``'s size best covers pixels at ``distance_m``, near ``box``.

    For a subject the appearance check has lost while it is partly hidden: its visible part still
    stands at the distance it should have. Pixels within ``tolerance`` (log depth) of ``distance_m``
    in a window ``reach`` box sizes around ``box`` are counted under every placement of the box;
    of the placements covering at least 90 % of the best (and at least ``min_cover`` of the box),
    the one nearest ``box`` wins. ``None`` when nothing there is at that distance.
    """
    h, w = depth.shape
    bw, bh = box[2] - box[0], box[3] - box[1]
    if bw < 2 or bh < 2:
        return None
    sx0, sy0 = int(max(box[0] - reach * bw, 0)), int(max(box[1] - reach * bh, 0))
    sx1, sy1 = int(min(box[2] + reach * bw, w)), int(min(box[3] + reach * bh, h))
    if sx1 - sx0 < 2 or sy1 - sy0 < 2:
        return None
    window = depth[sy0:sy1, sx0:sx1]
    with np.errstate(divide="ignore", invalid="ignore"):
        near = (np.abs(np.log(np.maximum(window, 1e-6)) - math.log(distance_m)) < tolerance).astype(np.float32)
    kw, kh = max(int(round(bw)), 1), max(int(round(bh)), 1)
    cover = cv2.boxFilter(near, -1, (kw, kh), normalize=True, borderType=cv2.BORDER_CONSTANT)
    best = float(cover.max())
    if best < min_cover:
        return None
    ys, xs = np.nonzero(cover >= 0.9 * best)
    cx, cy = 0.5 * (box[0] + box[2]) - sx0, 0.5 * (box[1] + box[3]) - sy0
    k = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
    x, y = sx0 + xs[k] + 0.5, sy0 + ys[k] + 0.5
    return (x - 0.5 * bw, y - 0.5 * bh, x + 0.5 * bw, y + 0.5 * bh)


class FocusSampler:
    """Focus distance per frame from the depth inside a box; call :meth:`sample` frame by frame.

    Args:
        bin_width: histogram bin in log depth (0.03: 3 % of the distance).
        min_share: a surface must hold this share of the box's weight to count.
        edge_jump: log-depth step to a neighbour that marks a depth edge (0.1: 10 %).
        max_jump: largest log-depth change from the prediction accepted in one frame.
        jump_growth: the allowed change grows by this much per held frame.
        centre_weight: Gaussian weight towards the box centre, sigma as a share of the box size
            (0: uniform).
    """

    def __init__(self, bin_width: float = 0.03, min_share: float = 0.1, edge_jump: float = 0.1,
                 max_jump: float = 0.15, jump_growth: float = 0.03, centre_weight: float = 0.35) -> None:
        self.bin_width, self.min_share, self.edge_jump = bin_width, min_share, edge_jump
        self.max_jump, self.jump_growth, self.centre_weight = max_jump, jump_growth, centre_weight
        self._last: float | None = None  # last good distance, metres
        self._rate = 0.0  # recent change of log depth per frame
        self._held = 0

    @property
    def last(self) -> float | None:
        return self._last

    def predicted(self) -> float | None:
        """Where the subject should be now, metres: the last good distance moved on at its recent
        rate (in log depth) for the frames held since."""
        if self._last is None:
            return None
        return self._last * math.exp(self._rate * (self._held + 1))

    @property
    def held_for(self) -> int:
        """Frames held since the last good one."""
        return self._held

    def finds_subject(self, depth: np.ndarray, box: Box, tolerance: float | None = None) -> bool:
        """Whether the box holds a surface at the predicted distance, within ``tolerance`` in log
        depth (default: the jump a tracked frame may make); the state is unchanged."""
        return self._measure(depth, box, tolerance) is not None

    def sample(self, depth: np.ndarray, box: Box, usable: bool = True) -> FocusSample:
        """The focus for one frame: ``depth`` (H, W) planar metres, ``box`` from the tracker.

        ``usable=False`` (the tracker has lost the subject) holds the last value without looking.
        """
        if usable:
            found = self._measure(depth, box)
            if found is not None:
                distance, share, count = found
                if self._last is not None:
                    step = math.log(distance / self._last)
                    self._rate = 0.6 * self._rate + 0.4 * step / (self._held + 1)
                self._last, self._held = distance, 0
                return FocusSample(distance, min(1.0, share), False, count)
        if self._last is None:
            # Nothing found at the very first frame: the median of the box is the only guess there is.
            window = box_window(depth, box)
            window = window[np.isfinite(window) & (window > 0)]
            self._last = float(np.median(window)) if window.size else float(np.median(depth))
            return FocusSample(self._last, 0.0, True, 0)
        self._held += 1
        return FocusSample(self._last, max(0.0, 0.3 - 0.05 * self._held), True, 0)

    def _measure(self, depth: np.ndarray, box: Box, tolerance: float | None = None) -> tuple[float, float, int] | None:
        h, w = depth.shape
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        x0c, y0c, x1c, y1c = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1c - x0c < 1 or y1c - y0c < 1:
            return None
        # Edges need one pixel of context around the box.
        ex0, ey0, ex1, ey1 = max(x0c - 1, 0), max(y0c - 1, 0), min(x1c + 1, w), min(y1c + 1, h)
        region = depth[ey0:ey1, ex0:ex1]
        edges = depth_edges(region, self.edge_jump)[y0c - ey0:y1c - ey0, x0c - ex0:x1c - ex0]
        window = region[y0c - ey0:y1c - ey0, x0c - ex0:x1c - ex0]
        valid = np.isfinite(window) & (window > 0) & ~edges
        if valid.sum() < 4:
            return None
        weights = np.ones(window.shape, np.float64)
        if self.centre_weight > 0:
            yy = (np.arange(y0c, y1c) + 0.5 - 0.5 * (y0 + y1)) / max(y1 - y0, 1)
            xx = (np.arange(x0c, x1c) + 0.5 - 0.5 * (x0 + x1)) / max(x1 - x0, 1)
            s2 = 2.0 * self.centre_weight ** 2
            weights = np.exp(-(yy[:, None] ** 2) / s2) * np.exp(-(xx[None, :] ** 2) / s2)
        log = np.log(window[valid])
        modes = surface_modes(log, weights[valid], self.bin_width, self.min_share)
        if not modes:
            return None
        if self._last is None:
            centre, share, low, high = max(modes, key=lambda m: m[1])
        else:
            predicted = math.log(self._last) + self._rate * (self._held + 1)
            centre, share, low, high = min(modes, key=lambda m: abs(m[0] - predicted))
            allowed = self.max_jump + self.jump_growth * self._held if tolerance is None else tolerance
            if abs(centre - predicted) > allowed:
                return None
        on = (log >= low) & (log < high)
        return float(np.exp(np.median(log[on]))), share, len(modes)
