"""Bokeh kernels: normalisation, size, polygon corners, rotation, flip and anamorphic squeeze."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from core.bokeh import bokeh_kernel


def corners(kernel: torch.Tensor) -> int:
    """Corner count of the kernel's shape, as a person would count them on a picture."""
    up = cv2.resize(kernel.numpy() / float(kernel.max()), None, fx=8, fy=8, interpolation=cv2.INTER_LINEAR)
    mask = (up > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    return len(cv2.approxPolyDP(contour, 0.03 * cv2.arcLength(contour, True), True))


@pytest.mark.parametrize("diameter", [1.5, 3.0, 7.3, 20.0])
def test_kernel_sums_to_one_and_has_disc_area(diameter):
    k = bokeh_kernel(diameter)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    # Coverage of the full pixels equals the disc area: count pixels at the plateau value.
    area = float(k.sum() / k.max())
    assert area == pytest.approx(math.pi * diameter ** 2 / 4, rel=0.08)


def test_tiny_kernel_is_identity():
    assert bokeh_kernel(0.0).shape == (1, 1)
    assert bokeh_kernel(1.0).shape == (1, 1)


@pytest.mark.parametrize("blades", [5, 6, 8])
def test_polygon_has_as_many_corners_as_blades(blades):
    assert corners(bokeh_kernel(41.0, blades=blades)) == blades


def test_disc_is_round():
    k = bokeh_kernel(41.0).numpy()
    support = k > 0.5 * k.max()
    rows, cols = np.nonzero(support)
    fill = support.sum() / ((rows.ptp() + 1) * (cols.ptp() + 1))
    assert fill == pytest.approx(math.pi / 4, abs=0.02)


def test_rotation_and_flip_turn_the_polygon():
    tri = bokeh_kernel(31.0, blades=3).numpy()
    # rotation 0: an edge normal points right (+x): a flat edge at r/2 on the right, a corner at r on the left.
    centre = tri.shape[1] // 2
    cols = np.nonzero(tri.sum(axis=0) > 0)[0]
    assert centre - cols.min() == pytest.approx(15.5, abs=1)
    assert cols.max() - centre == pytest.approx(15.5 / 2, abs=1)
    flipped = bokeh_kernel(31.0, blades=3, flip=True).numpy()
    assert np.allclose(flipped, tri[::-1, ::-1], atol=1e-6)
    turned = bokeh_kernel(31.0, blades=3, rotation=math.pi).numpy()
    assert np.allclose(turned, flipped, atol=1e-6)


def test_anamorphic_ratio_squeezes_horizontally():
    k = bokeh_kernel(30.0, ratio=2.0).numpy()
    rows = np.nonzero(k.sum(axis=1))[0]
    cols = np.nonzero(k.sum(axis=0))[0]
    height, width = rows.ptp() + 1, cols.ptp() + 1
    assert height == pytest.approx(2 * width, abs=2)
    wide = bokeh_kernel(30.0, ratio=0.5).numpy()
    assert wide.shape[1] >= 59  # ratio < 1 widens beyond the diameter
