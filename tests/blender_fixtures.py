"""Shared helpers for the tests that drive the real bpy and Cycles: small scenes and measurements.

Import what a test needs (``from blender_fixtures import ...``); pytest puts this folder on the path.
Every render here is small (under 100x100 pixels or so) so that each test takes seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from blender_scenes import scene as bs
from core.optics import Lens

# A long lens on a small frame gives CoCs of 10-15 px at 96 px wide: big enough to measure to a
# fraction of a pixel, cheap enough to render with many samples.
POINT_LENS = Lens(focal_length_mm=100.0, f_stop=2.0, focus_distance=1.0)
POINT_SIZE = 96
POINT_SAMPLES = 1024

blender = pytest.mark.blender


def emitter_scene(depth: float, image_diameter_px: float = 3.0, lens: Lens = POINT_LENS,
                  size: int = POINT_SIZE, offset_px: tuple[float, float] = (0.0, 0.0)) -> bs.SceneSpec:
    """A small emissive ball at planar ``depth`` metres in a black world, on the optical axis
    (or ``offset_px`` right/up of it), that images to about ``image_diameter_px`` pixels."""
    f_px = lens.focal_length_pixels(size, size)
    diameter = image_diameter_px * depth / f_px
    x, z = (o * depth / f_px for o in offset_px)
    ball = bs.Primitive("ico_sphere", (x, depth, z), (diameter,) * 3,
                        material=bs.Material(bs.Texture("flat", (0.0, 0.0, 0.0)), emission=1.0))
    return bs.SceneSpec(objects=(ball,), world=None)


def point_settings(size: int = POINT_SIZE, samples: int = POINT_SAMPLES) -> bs.RenderSettings:
    """Fixed samples (no adaptive stop: a sparse disc must not end early) and a box pixel filter."""
    return bs.RenderSettings(width=size, height=size, samples=samples, adaptive_threshold=0.0, max_bounces=0,
                             pixel_filter="BOX", filter_width=1.0)


def render_emitter(tmp: Path, depth: float, lens: Lens, **scene: object) -> tuple[np.ndarray, np.ndarray]:
    """Luminance (H, W) of the emitter without and with depth of field."""
    scn = bs.build(emitter_scene(depth, lens=lens, **scene), point_settings(), lens)
    sharp = bs.render(scn, tmp / "sharp.exr", dof=False).image.mean(axis=2)
    blurred = bs.render(scn, tmp / "dof.exr", dof=True).image.mean(axis=2)
    return sharp, blurred


def second_moments(image: np.ndarray) -> tuple[float, float, float, float]:
    """Centroid (x, y) and variances (var_x, var_y) in pixels of a non-negative (H, W) image."""
    h, w = image.shape
    total = float(image.sum())
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = float((image * xs).sum() / total), float((image * ys).sum() / total)
    var_x = float((image * (xs - cx) ** 2).sum() / total)
    var_y = float((image * (ys - cy) ** 2).sum() / total)
    return cx, cy, var_x, var_y


def disc_diameter(sharp: np.ndarray, blurred: np.ndarray) -> float:
    """Diameter in pixels of the uniform disc that ``blurred`` is ``sharp`` convolved with.

    Variances add under convolution and a uniform disc of diameter c has variance c^2 / 16 per
    axis, so c = 4 sqrt(var(blurred) - var(sharp)). Using every pixel, this is unbiased by noise
    in a black world and needs no threshold; the emitter's own size and the pixel filter cancel.
    """
    _, _, sx, sy = second_moments(sharp)
    _, _, bx, by = second_moments(blurred)
    return 4.0 * math.sqrt(0.5 * ((bx - sx) + (by - sy)))


def iou(a: np.ndarray, b: np.ndarray, level: float = 0.5) -> float:
    """Intersection over union of two shapes, each thresholded at ``level`` of its own peak."""
    ma, mb = a > level * a.max(), b > level * b.max()
    return float((ma & mb).sum() / (ma | mb).sum())


@pytest.fixture
def blender_tmp(tmp_path: Path) -> Path:
    """A fresh temporary folder for renders (pytest removes old ones; nothing is cached between runs)."""
    folder = tmp_path / "renders"
    folder.mkdir()
    return folder
