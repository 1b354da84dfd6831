"""Contact sheets: labelled grids of images, and error maps, written as 8-bit sRGB PNG.

Pure numpy and OpenCV (no bpy), shared by the demo and the benches. Tiles are (H, W, 3) uint8
sRGB; :func:`tile` makes one from a scene-linear image.
"""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from core.colour import linear_to_srgb
from core.imageio import atomic_write

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK, _PAPER = (235, 235, 235), (28, 28, 28)


def tile(linear: np.ndarray) -> np.ndarray:
    """(H, W, 3) scene-linear to (H, W, 3) uint8 sRGB (values above 1 clip, as on a display)."""
    return np.round(linear_to_srgb(np.clip(linear[..., :3], 0.0, 1.0)) * 255.0).astype(np.uint8)


def error_tile(image: np.ndarray, reference: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """Absolute difference of two scene-linear images on display sRGB, times ``gain``, as a heat map
    (black: equal; yellow: off by 1 / gain or more)."""
    diff = np.abs(linear_to_srgb(np.clip(image, 0, 1)) - linear_to_srgb(np.clip(reference, 0, 1))).mean(axis=2)
    grey = np.round(np.clip(diff * gain, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)[..., ::-1]


def caption(image: np.ndarray, text: str, height: int = 20) -> np.ndarray:
    """``image`` with a dark bar above it holding ``text`` (one line, shrunk to fit)."""
    w = image.shape[1]
    bar = np.empty((height, w, 3), np.uint8)
    bar[:] = _PAPER
    scale = 0.42
    while scale > 0.2 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > w - 8:
        scale -= 0.02
    cv2.putText(bar, text, (4, height - 6), _FONT, scale, _INK, 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 4, title: str | None = None) -> np.ndarray:
    """Tiles of equal size in rows, ``gap`` pixels apart on a dark background, with an optional title."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    sheet = np.empty((len(rows) * (h + gap) + gap, cols * (w + gap) + gap, 3), np.uint8)
    sheet[:] = _PAPER
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            y, x = gap + i * (h + gap), gap + j * (w + gap)
            sheet[y:y + h, x:x + w] = t
    return caption(sheet, title, 26) if title else sheet


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 sRGB image as PNG, atomically."""
    with atomic_write(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[..., ::-1])):
            raise OSError(f"cannot write {path}")
