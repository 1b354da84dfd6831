"""A synthetic clip with a known subject path and depth, for tests and the speed bench.

Flat layers composited far to near, like a cut-out animation: a textured backdrop that pans, a
few textured cards at several depths (clutter), the subject (a textured card whose image size is
inversely proportional to its distance, as a pinhole camera's is) moving along a known path, and
optionally an occluder bar crossing in front of it. Every pixel's depth is its layer's, so the
truth is exact: the subject's box and planar distance per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class SyntheticClip:
    """``frames`` (T, H, W, 3) scene-linear float32, ``depths`` (T, H, W) metres, ``boxes`` (T, 4)
    the subject's box (x0 y0 x1 y1 pixels, end-exclusive), ``distances`` (T,) its distance, metres,
    ``visible`` (T,) share of its box not covered by the occluder; ``right`` the right view of a
    rectified stereo pair when asked for (each layer shifted left by its disparity B f_px / Z,
    rounded to whole pixels)."""

    frames: np.ndarray
    depths: np.ndarray
    boxes: np.ndarray
    distances: np.ndarray
    visible: np.ndarray
    right: np.ndarray | None = None  # (T, H, W, 3): a rectified right view, with ``stereo_baseline_m``


def texture(rng: np.random.Generator, height: int, width: int, cells: int = 8) -> np.ndarray:
    """(height, width, 3) smooth random colour texture in 0.05..0.8 (scene-linear)."""
    small = rng.uniform(0.05, 0.8, (cells, max(int(cells * width / max(height, 1)), 2), 3)).astype(np.float32)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.uniform(0.0, 0.15, (height, width, 1)).astype(np.float32)
    return np.clip(big + fine, 0.02, 1.0)


def _paste(frame: np.ndarray, depth: np.ndarray, image: np.ndarray, distance: float, x0: int, y0: int) -> None:
    h, w = frame.shape[:2]
    ih, iw = image.shape[:2]
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + iw, w), min(y0 + ih, h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    frame[fy0:fy1, fx0:fx1] = image[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    depth[fy0:fy1, fx0:fx1] = distance


def synthetic_clip(frames: int = 24, width: int = 192, height: int = 108, near_m: float = 2.0, far_m: float = 5.0,
                   occluder: bool = False, occluder_frames: tuple[int, int] | None = None, clutter: int = 6,
                   pan_px: float = 20.0, seed: int = 0, subject_height: float = 0.45,
                   stereo_baseline_m: float = 0.0, focal_px: float = 0.0) -> SyntheticClip:
    """A clip of ``frames`` frames where the subject walks from ``far_m`` to ``near_m`` (linear in
    distance), drifting sideways while the backdrop pans ``pan_px`` pixels in all.

    Args:
        occluder: a bar at 60 % of the subject's distance crosses it, covering it fully in the
            middle of ``occluder_frames`` (default: the middle third of the clip).
        subject_height: the subject's image height at ``near_m`` as a share of the frame height.
        stereo_baseline_m, focal_px: with both positive, also render the right view of a parallel
            stereo camera with that baseline and focal length in pixels.
    """
    rng = np.random.default_rng(seed)
    backdrop_m = 3.0 * far_m
    sky = texture(rng, height, width + int(abs(pan_px)) + 2, 6)
    cards = []
    for _ in range(clutter):
        d = float(rng.uniform(1.2 * far_m, 0.95 * backdrop_m))
        ch, cw = int(rng.uniform(0.1, 0.3) * height), int(rng.uniform(0.05, 0.15) * width)
        # Clutter stays in the top and bottom bands, out of the subject's way across the middle.
        band = rng.uniform() < 0.5
        cy = int(rng.uniform(0, 0.2 * height)) if band else int(rng.uniform(0.8 * height, height) - ch)
        cards.append((d, texture(rng, ch, cw, 3), int(rng.uniform(0, width - cw)), cy))
    t = np.linspace(0.0, 1.0, frames)
    distances = far_m + (near_m - far_m) * t
    full_h = subject_height * height
    heights = full_h * near_m / distances
    centres_x = width * (0.35 + 0.3 * t)
    centres_y = height * (0.5 + 0.05 * np.sin(3.0 * t))
    skin = texture(rng, 96, 48, 6)
    bar_d = 0.6 * float(distances[frames // 2])
    first, last = occluder_frames if occluder_frames is not None else (frames // 3, 2 * frames // 3)
    bar_w = int(round(1.4 * 0.5 * full_h * near_m / distances[(first + last) // 2]))
    bar = texture(rng, height, max(bar_w, 2), 4) * 0.5
    stereo = stereo_baseline_m > 0 and focal_px > 0
    out_f = np.empty((frames, height, width, 3), np.float32)
    out_d = np.empty((frames, height, width), np.float32)
    out_r = np.empty((frames, height, width, 3), np.float32) if stereo else None
    boxes = np.empty((frames, 4))
    visible = np.ones(frames)
    sky = np.concatenate([sky, sky[:, ::-1]], axis=1)  # room for the right view's shift of the backdrop
    for k in range(frames):
        pan = int(round(pan_px * t[k]))
        sh = max(int(round(heights[k])), 4)
        sw = max(int(round(0.5 * heights[k])), 2)
        x0, y0 = int(round(centres_x[k] - 0.5 * sw)), int(round(centres_y[k] - 0.5 * sh))
        boxes[k] = (x0, y0, x0 + sw, y0 + sh)
        skin_k = cv2.resize(skin, (sw, sh), interpolation=cv2.INTER_AREA)
        phase = (k - first) / max(last - first, 1)
        bx = int(round(centres_x[k] + (phase - 0.5) * 2.0 * (0.5 * sw + 0.5 * bar_w) - 0.5 * bar_w))
        bar_on = occluder and first <= k <= last
        if bar_on:
            overlap = max(0, min(bx + bar_w, x0 + sw) - max(bx, x0))
            visible[k] = 1.0 - overlap / sw
        for view in ("left", "right") if stereo else ("left",):

            def shift(d: float) -> int:  # the right view sees a point at depth d this much further left
                return int(round(stereo_baseline_m * focal_px / d)) if view == "right" else 0

            start = pan + shift(backdrop_m)
            frame = np.ascontiguousarray(sky[:, start:start + width]).copy() if start >= 0 else \
                np.ascontiguousarray(np.roll(sky, -start, axis=1)[:, :width]).copy()
            depth = np.full((height, width), backdrop_m, np.float32)
            for d, img, cx, cy in sorted(cards, key=lambda c: -c[0]):
                _paste(frame, depth, img, d, cx - pan - shift(d), cy)
            _paste(frame, depth, skin_k, float(distances[k]), x0 - shift(float(distances[k])), y0)
            if bar_on:
                _paste(frame, depth, bar, bar_d, bx - shift(bar_d), 0)
            if view == "left":
                out_f[k], out_d[k] = frame, depth
            else:
                assert out_r is not None
                out_r[k] = frame
    return SyntheticClip(out_f, out_d, boxes, distances, visible, out_r)
