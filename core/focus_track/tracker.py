"""A 2D box tracker over a sequence, with loss detection and re-detection (OpenCV CSRT or KCF).

SteReFo (seed 000, section 4) follows its subject with a correlation-filter tracker. OpenCV's CSRT
(discriminative correlation filter with channel and spatial reliability, its own scale search) is
the accurate choice; KCF is faster and keeps the box size (scale then comes from the caller, e.g.
from depth: a subject twice as near is twice as large). Both run on an 8-bit display-referred
frame: correlation filters want perceptual contrast, not scene-linear values.

A correlation filter never says "I lost it" reliably: it happily locks onto an occluder crossing in
front. So every answer is checked against the *last good template* (the subject's appearance at the
last frame the check passed): normalised cross-correlation (NCC) of the new box's patch against
it. Below ``loss_ncc`` the frame is lost; the box then coasts at the last good velocity and, each
lost frame, the template is searched for (``cv2.matchTemplate``, three scales) in a window that
widens with every lost frame; a match above ``redetect_ncc`` re-initialises the filter there.

Boxes are (x0, y0, x1, y1) floats in pixels, top-left origin, end-exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import cv2
import numpy as np

Box = tuple[float, float, float, float]
Method = Literal["csrt", "kcf"]
TEMPLATE_SIZE = 32  # the appearance check compares patches resampled to this many pixels a side


@dataclass(frozen=True)
class TrackState:
    """One frame's answer.

    Attributes:
        box: (x0, y0, x1, y1) pixels.
        status: ``tracked`` (the filter's box passed the check), ``lost`` (coasting: the box is a
            prediction), ``redetected`` (found again by template search this frame), ``init``.
        score: NCC of the box's patch against the last good template, -1..1 (1: identical).
    """

    box: Box
    status: str
    score: float

    @property
    def good(self) -> bool:
        return self.status in ("tracked", "redetected", "init")


# Scene-linear to 8-bit display values through a 4096-entry table: a 2.2 power is close enough
# to sRGB for matching, and a table lookup is ten times cheaper than either curve per pixel.
_LUT_SIZE = 4096
_GAMMA_LUT = (np.linspace(0.0, 1.0, _LUT_SIZE) ** (1.0 / 2.2) * 255.0 + 0.5).astype(np.uint8)


def to_tracking_image(frame: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(H, W, 3|4) scene-linear float or (H, W, 3) uint8 sRGB to uint8 display values, resized by
    ``scale`` (area filter) first. Channel order is kept (it does not matter to the trackers)."""
    image = frame[..., :3]
    if scale != 1.0:
        h, w = image.shape[:2]
        size = (max(int(round(w * scale)), 8), max(int(round(h * scale)), 8))
        image = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    index = (np.clip(image, 0.0, 1.0) * (_LUT_SIZE - 1) + 0.5).astype(np.uint16)
    return _GAMMA_LUT[index]


def clip_box(box: Box, width: int, height: int, min_size: float = 4.0) -> Box:
    """``box`` moved (not shrunk) to lie inside the image where it can, at least ``min_size`` a side."""
    x0, y0, x1, y1 = box
    w = min(max(x1 - x0, min_size), width)
    h = min(max(y1 - y0, min_size), height)
    cx = min(max(0.5 * (x0 + x1), 0.5 * w), width - 0.5 * w)
    cy = min(max(0.5 * (y0 + y1), 0.5 * h), height - 0.5 * h)
    return (cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h)


def scale_box(box: Box, factor: float) -> Box:
    """``box`` scaled about its centre."""
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    hw, hh = 0.5 * (box[2] - box[0]) * factor, 0.5 * (box[3] - box[1]) * factor
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def patch(grey: np.ndarray, box: Box, size: int = TEMPLATE_SIZE) -> np.ndarray | None:
    """The box's pixels of a (H, W) uint8 image resampled to ``size`` x ``size`` float32, or ``None``
    when the box leaves the image by more than half."""
    h, w = grey.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 - cx0 < 2 or cy1 - cy0 < 2 or (cx1 - cx0) * (cy1 - cy0) < 0.5 * (x1 - x0) * (y1 - y0):
        return None
    return cv2.resize(grey[cy0:cy1, cx0:cx1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two equal-size patches, -1..1 (0 for a flat patch)."""
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0


def _create(method: Method) -> cv2.Tracker:
    if method == "csrt":
        params = cv2.TrackerCSRT_Params()
        # A learned template of 64 px, not OpenCV's 200: the same accuracy on subjects of tens of
        # pixels (dev clips), several times faster on 640x360 frames (bench/focus_track_speed.py).
        params.template_size = 64
        params.use_segmentation = False
        # Nine scales, not 33: the pipeline resizes the box from depth, the filter only fine-tunes.
        params.number_of_scales = 9
        return cv2.TrackerCSRT_create(params)
    if method == "kcf":
        return cv2.TrackerKCF_create()
    raise ValueError(f"unknown tracker {method!r}; use csrt or kcf")


class BoxTracker:
    """Follows one box through a sequence; call :meth:`start` once, then :meth:`update` per frame.

    Args:
        method: ``csrt`` (accurate, follows scale) or ``kcf`` (fast, fixed size).
        loss_ncc: NCC against the last good template below which a frame counts as lost.
        redetect_ncc: template-search score needed to take the subject back.
        search_growth: the search window's half-size grows by this many box sizes per lost frame.
        template_rate: how fast the reference template follows a slowly changing appearance
            (0: never, 1: replaced every good frame).
        update_ncc: the template learns only from frames this close to it, so that an occluder
            sliding in over several frames does not become the template.
    """

    def __init__(self, method: Method = "csrt", loss_ncc: float = 0.5, redetect_ncc: float = 0.6,
                 search_growth: float = 0.5, template_rate: float = 0.3, update_ncc: float = 0.75) -> None:
        self.method = method
        self.loss_ncc, self.redetect_ncc = loss_ncc, redetect_ncc
        self.search_growth, self.template_rate, self.update_ncc = search_growth, template_rate, update_ncc
        self._tracker: cv2.Tracker | None = None
        self._template: np.ndarray | None = None  # (TEMPLATE_SIZE, TEMPLATE_SIZE) float32
        self._template_pixels: np.ndarray | None = None  # the last good patch at its own size, for the search
        self._good_box: Box = (0.0, 0.0, 1.0, 1.0)
        self._velocity = np.zeros(2)
        self._box: Box = (0.0, 0.0, 1.0, 1.0)
        self._lost_for = 0
        self._size = (1, 1)

    # -------------------------------------------------------------------------------------- api
    def start(self, frame: np.ndarray, box: Box) -> TrackState:
        """Begin on ``frame`` ((H, W, 3) uint8 from :func:`to_tracking_image`) at ``box``."""
        h, w = frame.shape[:2]
        self._size = (w, h)
        self._init_filter(frame, clip_box(box, w, h))
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        self._remember(grey, self._box, replace=True)
        return TrackState(self._box, "init", 1.0)

    def mark_lost(self) -> None:
        """The caller knows better (the box's depth is not the subject's): treat this frame as lost,
        so that the next update coasts from the last good box and searches for the template."""
        self._lost_for = max(self._lost_for, 1)

    @property
    def lost_for(self) -> int:
        """Frames lost in a row (0 while tracking)."""
        return self._lost_for

    def restart(self, frame: np.ndarray, box: Box) -> TrackState:
        """Take the subject back at ``box`` (found by other means, e.g. its depth): the filter
        starts there; the template is kept (the subject may still be partly hidden)."""
        w, h = self._size
        self._init_filter(frame, clip_box(box, w, h))
        self._velocity[:] = 0.0
        return TrackState(self._box, "redetected", 0.0)

    def resize(self, frame: np.ndarray, box: Box) -> None:
        """Restart the filter at ``box`` on ``frame`` (e.g. a size from depth), keeping the template."""
        w, h = self._size
        self._init_filter(frame, clip_box(box, w, h))

    def update(self, frame: np.ndarray, scale: float = 1.0, verify: Callable[[Box], bool] | None = None
               ) -> TrackState:
        """Track into the next frame.

        Args:
            scale: expected size of the subject relative to the last good box (e.g. the ratio of
                its last good distance to its predicted one); scales the coasting box and the search.
            verify: a further check of a re-detected box (e.g. that its depth is the subject's).
        """
        assert self._tracker is not None, "call start() first"
        w, h = self._size
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self._lost_for == 0:
            ok, rect = self._tracker.update(frame)
            if ok:
                box = clip_box((rect[0], rect[1], rect[0] + rect[2], rect[1] + rect[3]), w, h)
                current = patch(grey, box)
                score = ncc(current, self._template) if current is not None and self._template is not None else 0.0
                if score >= self.loss_ncc:
                    centre_shift = np.array([box[0] + box[2] - self._good_box[0] - self._good_box[2],
                                             box[1] + box[3] - self._good_box[1] - self._good_box[3]]) * 0.5
                    self._box = box
                    if score >= self.update_ncc:
                        self._velocity = 0.5 * self._velocity + 0.5 * centre_shift
                        self._remember(grey, box)
                    return TrackState(box, "tracked", score)
        # Lost (now or before): coast, then look for the template around where the subject should be.
        self._lost_for += 1
        predicted = self._coast(scale)
        found = self._search(grey, predicted, scale, verify)
        if found is not None:
            box, score = found
            self._init_filter(frame, box)
            self._velocity[:] = 0.0
            self._remember(grey, self._box)
            return TrackState(self._box, "redetected", score)
        self._box = predicted
        current = patch(grey, predicted)
        score = ncc(current, self._template) if current is not None and self._template is not None else 0.0
        return TrackState(predicted, "lost", score)

    # ---------------------------------------------------------------------------------- helpers
    def _init_filter(self, frame: np.ndarray, box: Box) -> None:
        self._tracker = _create(self.method)
        x0, y0, x1, y1 = box
        rect = (int(round(x0)), int(round(y0)), max(int(round(x1 - x0)), 2), max(int(round(y1 - y0)), 2))
        self._tracker.init(frame, rect)
        self._box = box
        self._lost_for = 0

    def _remember(self, grey: np.ndarray, box: Box, replace: bool = False) -> None:
        current = patch(grey, box)
        if current is None:
            return
        if replace or self._template is None:
            self._template = current
        else:
            self._template = (1.0 - self.template_rate) * self._template + self.template_rate * current
        x0, y0, x1, y1 = (int(round(v)) for v in clip_box(box, *self._size))
        self._template_pixels = grey[y0:y1, x0:x1].copy()
        self._good_box = box

    def _coast(self, scale: float = 1.0) -> Box:
        """The last good box moved on at the last good velocity (damped: subjects stop and turn),
        scaled by ``scale`` about its centre."""
        shift = self._velocity * min(self._lost_for, 8) * 0.8
        x0, y0, x1, y1 = self._good_box
        moved = (x0 + shift[0], y0 + shift[1], x1 + shift[0], y1 + shift[1])
        return clip_box(scale_box(moved, scale), *self._size)

    def _search(self, grey: np.ndarray, around: Box, scale: float = 1.0,
                verify: Callable[[Box], bool] | None = None) -> tuple[Box, float] | None:
        """Best template match (three scales about ``scale``) in a window around ``around`` that
        widens with each lost frame; ``None`` below ``redetect_ncc`` or refused by ``verify``."""
        if self._template_pixels is None or self._template is None:
            return None
        h, w = grey.shape
        bw, bh = around[2] - around[0], around[3] - around[1]
        reach = 0.5 + self.search_growth * self._lost_for
        sx0 = int(max(around[0] - reach * bw, 0))
        sy0 = int(max(around[1] - reach * bh, 0))
        sx1 = int(min(around[2] + reach * bw, w))
        sy1 = int(min(around[3] + reach * bh, h))
        window = grey[sy0:sy1, sx0:sx1]
        th, tw = self._template_pixels.shape
        candidates: list[tuple[Box, float]] = []
        for factor in (0.88 * scale, scale, 1.14 * scale):
            tpl_w, tpl_h = max(int(round(tw * factor)), 4), max(int(round(th * factor)), 4)
            if tpl_w >= window.shape[1] or tpl_h >= window.shape[0]:
                continue
            tpl = cv2.resize(self._template_pixels, (tpl_w, tpl_h), interpolation=cv2.INTER_LINEAR)
            scores = cv2.matchTemplate(window, tpl, cv2.TM_CCOEFF_NORMED)
            _, top, _, (x, y) = cv2.minMaxLoc(scores)
            candidates.append(((sx0 + x, sy0 + y, sx0 + x + tpl_w, sy0 + y + tpl_h), float(top)))
        for box, top in sorted(candidates, key=lambda c: -c[1]):
            if top < self.redetect_ncc:
                break
            # Confirm against the blended template too (a lone peak on clutter is not the subject),
            # and with the caller's check.
            confirm = patch(grey, box)
            if confirm is None or ncc(confirm, self._template) < self.loss_ncc:
                continue
            if verify is not None and not verify(box):
                continue
            return box, top
        return None
