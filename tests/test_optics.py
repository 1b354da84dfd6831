"""Thin-lens optics: CoC values, sign, sensor fit and the depth/disparity/inverse-depth routes."""

from __future__ import annotations

import math

import pytest
import torch

from core.errors import InputError
from core.optics import (
    Lens,
    circle_of_confusion,
    coc_from_disparity,
    coc_from_inverse_depth,
    depth_from_coc,
    depth_to_disparity,
    disparity_to_depth,
    focal_length_pixels,
    focus_distance_at,
    focus_distance_in_box,
)


def test_sensor_fit_follows_blender():
    # AUTO: the sensor width spans the larger side.
    assert focal_length_pixels(50, 1920, 1080, 36) == pytest.approx(50 / 36 * 1920)
    assert focal_length_pixels(50, 1080, 1920, 36) == pytest.approx(50 / 36 * 1920)
    assert focal_length_pixels(50, 1920, 1080, 36, sensor_fit="HORIZONTAL") == pytest.approx(50 / 36 * 1920)
    assert focal_length_pixels(50, 1920, 1080, 36, 24, sensor_fit="VERTICAL") == pytest.approx(50 / 24 * 1080)


def test_coc_matches_thin_lens_equation():
    # Eq. 1 of Video Depth-from-Defocus with the sensor at the focused image distance (breathing).
    f_mm, n, focus, d = 50.0, 2.0, 2.0, 5.0
    f_px = focal_length_pixels(f_mm, 1000, 1000, 36)
    f = f_mm * 1e-3
    eq1_mm = f * f * abs(d - focus) / (n * d * (focus - f)) * 1e3
    eq1_px = eq1_mm / 36.0 * 1000
    c = circle_of_confusion(torch.tensor(d), focus, n, f_mm, f_px, breathing=True)
    assert float(c) == pytest.approx(eq1_px, rel=1e-6)
    # Blender's camera (no breathing) is smaller by exactly the breathing factor F / (F - f).
    c_blender = circle_of_confusion(torch.tensor(d), focus, n, f_mm, f_px)
    assert float(c / c_blender) == pytest.approx(focus / (focus - f), rel=1e-6)


def test_coc_sign_and_zero_at_focus():
    lens = Lens(50, 1.4, 3.0, 36)
    depth = torch.tensor([1.0, 3.0, 30.0]).view(1, 1, 1, 3)
    c = lens.circle_of_confusion(depth)
    assert c[0, 0, 0, 0] < 0 < c[0, 0, 0, 2]
    assert c[0, 0, 0, 1] == 0
    # Far away the CoC tends to A * f_px / F.
    far = lens.circle_of_confusion(torch.full((1, 1, 1, 3), 1e10))
    assert float(far[0, 0, 0, 0]) == pytest.approx(lens.coc_scale(3, 1) / 3.0, rel=1e-5)


def test_depth_from_coc_inverts():
    depth = torch.linspace(0.5, 40.0, 50)
    c = circle_of_confusion(depth, 2.5, 2.8, 35.0, 1200.0)
    assert torch.allclose(depth_from_coc(c, 2.5, 2.8, 35.0, 1200.0), depth, rtol=1e-4)


def test_disparity_route_equals_depth_route():
    baseline, f_px, f_mm, n = 0.12, 900.0, 50.0, 2.0
    depth = torch.linspace(1.0, 20.0, 30)
    disparity = depth_to_disparity(depth, baseline, f_px)
    assert torch.allclose(disparity_to_depth(disparity, baseline, f_px), depth, rtol=1e-5)
    focus = 4.0
    via_depth = circle_of_confusion(depth, focus, n, f_mm, f_px)
    via_disp = coc_from_disparity(disparity, baseline * f_px / focus, baseline, n, f_mm)
    assert torch.allclose(via_depth, via_disp, rtol=1e-4, atol=1e-4)


def test_inverse_depth_route_equals_depth_route():
    lens = Lens(50, 2.0, 3.0, 36)
    near, far = 1.0, 10.0
    depth = torch.linspace(near, far, 40).view(1, 1, 4, 10)
    inv = (1 / depth - 1 / far) / (1 / near - 1 / far)
    focus_inv = (1 / 3.0 - 1 / far) / (1 / near - 1 / far)
    via_depth = lens.circle_of_confusion(depth)
    via_inv = coc_from_inverse_depth(inv, focus_inv, lens=lens, near_m=near, far_m=far)
    assert torch.allclose(via_depth, via_inv, rtol=1e-4, atol=1e-4)


def test_focus_picker_takes_median():
    depth = torch.full((40, 40), 8.0)
    depth[10:30, 10:30] = 2.0  # object fills most of the box, background the rest
    assert focus_distance_in_box(depth, (5, 5, 31, 31)) == pytest.approx(2.0)
    assert focus_distance_at(depth, 20, 20, radius=2) == pytest.approx(2.0)
    assert focus_distance_at(depth, 2, 2) == pytest.approx(8.0)
    with pytest.raises(InputError):
        focus_distance_at(depth, 50, 2)
    with pytest.raises(InputError):
        focus_distance_in_box(depth, (45, 45, 60, 60))


@pytest.mark.parametrize(
    "kwargs",
    [dict(f_stop=0.0), dict(f_stop=-2.0), dict(focus_distance=0.04), dict(focal_length_mm=0.0), dict(blades=2)],
)
def test_lens_rejects_impossible_settings(kwargs):
    with pytest.raises(InputError):
        Lens(**{**dict(focal_length_mm=50.0, f_stop=2.0, focus_distance=2.0), **kwargs}).validate()


def test_coc_is_differentiable_in_focus_distance():
    focus = torch.tensor(2.0, requires_grad=True)
    c = circle_of_confusion(torch.tensor([1.0, 4.0]), focus, 2.0, 50.0, 1000.0)
    c.sum().backward()
    # dc/dF = -A f_px / F^2 for each pixel.
    expected = -2 * (0.05 / 2.0) * 1000.0 / 4.0
    assert float(focus.grad) == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(float(focus.grad))
