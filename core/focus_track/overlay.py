"""Pictures of a focus track: a frame with its box and in-focus band, and the focus plotted over time.

:func:`overlay_frame` is the Focus Track node's Overlay output: the frame, pixels inside the depth
of field tinted green (|CoC| under the limit at this frame's focus), the box (green while tracked,
orange while lost or held) and the focus distance written by it. :func:`plot_series` draws
distance over time for the evaluation's figure with OpenCV (no plotting library needed).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .tracker import Box

GOOD, LOST = (0.1, 0.9, 0.15), (1.0, 0.45, 0.0)  # scene-linear RGB


def in_focus(depth: np.ndarray, focus_m: float, coc_px_per_dioptre: float, coc_limit_px: float) -> np.ndarray:
    """(H, W) bool: pixels whose CoC at ``focus_m`` is under ``coc_limit_px`` (the depth of field)."""
    with np.errstate(divide="ignore"):
        coc = coc_px_per_dioptre * np.abs(1.0 / focus_m - 1.0 / np.maximum(depth, 1e-6))
    return coc < coc_limit_px


def overlay_frame(frame: np.ndarray, depth: np.ndarray, box: Box, focus_m: float, coc_px_per_dioptre: float,
                  coc_limit_px: float = 1.5, good: bool = True, label: str | None = None) -> np.ndarray:
    """The frame (H, W, 3|4) scene-linear with the in-focus band tinted, the box and a label;
    (H, W, 4) float32 scene-linear, alpha 1."""
    h, w = depth.shape
    rgb = np.ascontiguousarray(frame[..., :3], np.float32).copy()
    band = in_focus(depth, focus_m, coc_px_per_dioptre, coc_limit_px)
    rgb[band] = 0.6 * rgb[band] + 0.4 * np.array(GOOD, np.float32) * max(float(rgb.mean()) * 2.0, 0.2)
    thick = max(1, int(round(w / 320)))
    colour = GOOD if good else LOST
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    cv2.rectangle(rgb, (x0, y0), (x1 - 1, y1 - 1), colour, thick)
    text = label if label is not None else f"{focus_m:.2f} m"
    scale = max(0.3, w / 640)
    ty = y0 - 3 if y0 > 12 * scale else min(y1 + int(11 * scale), h - 2)
    cv2.putText(rgb, text, (max(x0, 0), ty), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick, cv2.LINE_AA)
    return np.concatenate([rgb, np.ones((h, w, 1), np.float32)], axis=2)


def plot_series(series: Sequence[tuple[str, np.ndarray, tuple[int, int, int]]], width: int = 640, height: int = 240,
                marks: np.ndarray | None = None, title: str = "focus distance (m) over frames") -> np.ndarray:
    """Lines over frame index: ``series`` of (name, values (T,), BGR colour); ``marks`` (T,) bool frames
    to shade (e.g. where the subject is hidden). (height, width, 3) uint8 BGR."""
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 48, 10, 22, 26
    values = np.concatenate([np.asarray(v, float) for _, v, _ in series])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.06 * max(hi - lo, 1e-3)
    lo, hi = lo - pad, hi + pad
    count = max(len(series[0][1]), 2)

    def xy(t: float, v: float) -> tuple[int, int]:
        x = left + (width - left - right) * t / (count - 1)
        y = top + (height - top - bottom) * (hi - v) / (hi - lo)
        return int(round(x)), int(round(y))

    if marks is not None:
        for t in np.nonzero(np.asarray(marks, bool))[0]:
            xa, _ = xy(max(t - 0.5, 0), lo)
            xb, _ = xy(min(t + 0.5, count - 1), lo)
            cv2.rectangle(img, (xa, top), (xb, height - bottom), (225, 225, 225), -1)
    cv2.rectangle(img, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    for k in range(5):  # y ticks
        v = lo + (hi - lo) * k / 4
        _, y = xy(0, v)
        cv2.line(img, (left - 3, y), (left, y), (0, 0, 0), 1)
        cv2.putText(img, f"{v:.2f}", (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    step = max(1, (count - 1) // 8)
    for t in range(0, count, step):  # x ticks
        x, _ = xy(t, lo)
        cv2.line(img, (x, height - bottom), (x, height - bottom + 3), (0, 0, 0), 1)
        cv2.putText(img, str(t), (x - 5, height - bottom + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for name, v, colour in series:
        points = np.array([xy(t, float(val)) for t, val in enumerate(v)], np.int32)
        cv2.polylines(img, [points], False, colour, 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    x = width - right - 8
    for name, _, colour in reversed(series):  # legend, right-aligned
        size = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
        x -= size + 22
        cv2.line(img, (x, 11), (x + 14, 11), colour, 2)
        cv2.putText(img, name, (x + 17, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img
