"""Alignment: focus breathing from metadata, ECC refinement of a known shift, and its warps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import InputError
from core.focal_stack.alignment import (align_stack, breathing_scales, image_distances, scale_about_centre,
                                        warp_images)
from core.focal_stack.synthetic import dioptre_spaced, noise_texture, render_stack, slanted_plane
from core.optics import Lens

SIZE = 192
FOCAL_MM = 50.0
CORNERS = np.array([[0, 0, 1], [SIZE - 1, 0, 1], [0, SIZE - 1, 1], [SIZE - 1, SIZE - 1, 1]], dtype=float).T


def corner_error(found: np.ndarray, truth: np.ndarray) -> float:
    """Largest distance, pixels, between where two warps send the frame's corners."""
    a, b = found @ CORNERS, truth @ CORNERS
    return float(np.abs(a[:2] / a[2] - b[:2] / b[2]).max())


@pytest.fixture(scope="module")
def breathing_stack():
    """A slanted plane's focal stack as a breathing lens with a drifting principal point sees it."""
    g = torch.Generator().manual_seed(11)
    image = noise_texture(SIZE, SIZE, g)
    depth = slanted_plane(SIZE, SIZE, 0.4, 2.0)
    focus = dioptre_spaced(0.4, 2.0, 4)
    aligned = render_stack(image, depth, Lens(FOCAL_MM, 2.8, sensor_width_mm=36.0), focus)
    scales, ref = breathing_scales(focus, FOCAL_MM)
    shifts = [(1.4, -0.6), (-0.8, 0.5), (0.6, 1.1), (0.0, 0.0)]
    truth = np.stack([scale_about_centre(float(s), SIZE, SIZE, sh) for s, sh in zip(scales, shifts)])
    truth[ref] = np.eye(3)
    # Each captured slice is the aligned one seen through the inverse of its warp.
    captured = warp_images(aligned, torch.from_numpy(np.linalg.inv(truth)))
    return focus, aligned, captured, truth, ref


def test_breathing_scales_follow_the_thin_lens():
    focus = [0.25, 0.5, 1.0, float("inf")]
    scales, ref = breathing_scales(focus, 25.0)
    s = image_distances([0.25, 0.5, 1.0, 1e12], 25.0)
    assert ref == 0  # the nearest focus has the narrowest view
    assert torch.allclose(scales, s[0] / s)
    # s = F f / (F - f): at 0.25 m and f = 25 mm, 27.78 mm; at infinity, f itself.
    assert float(s[0]) == pytest.approx(0.25 * 0.025 / 0.225)
    assert float(scales[-1]) == pytest.approx(0.25 / 0.225)


def test_breathing_alone_recovers_the_scale(breathing_stack):
    focus, aligned, captured, truth, ref = breathing_stack
    result = align_stack(captured, focus, FOCAL_MM, refine=None)
    assert result.reference == ref
    for n in range(4):
        found = result.warps[n].numpy()
        # Exactly the known scale: the only error left is the shift metadata cannot know.
        assert np.allclose(found[:2, :2], truth[n][:2, :2], atol=1e-12)
        shift = np.abs(truth[n][:2, 2] - found[:2, 2]).max()
        assert corner_error(found, truth[n]) == pytest.approx(shift, abs=1e-9)


def test_ecc_recovers_scale_and_shift(breathing_stack):
    focus, aligned, captured, truth, ref = breathing_stack
    result = align_stack(captured, focus, FOCAL_MM)  # auto: breathing, then ECC translation
    for n in range(4):
        assert corner_error(result.warps[n].numpy(), truth[n]) < 0.25
    margin = 12
    inner = (..., slice(margin, -margin), slice(margin, -margin))
    before = float((captured - aligned)[inner].abs().mean())
    after = float((result.images - aligned)[inner].abs().mean())
    assert after < 0.25 * before


def test_affine_recovers_an_unknown_zoom_on_equal_blur():
    """Without metadata the zoom itself is estimated (slices of equal blur: no defocus bias)."""
    image = noise_texture(SIZE, SIZE, torch.Generator().manual_seed(2))
    truth = scale_about_centre(1.03, SIZE, SIZE, (0.7, -1.2))
    captured = torch.cat([image, warp_images(image, torch.from_numpy(np.linalg.inv(truth))[None])])
    result = align_stack(captured, reference=0)
    assert corner_error(result.warps[1].numpy(), truth) < 0.1


def test_warp_identity_and_reference_untouched():
    stack = torch.rand(3, 3, 40, 50)
    result = align_stack(stack, refine=None)
    assert torch.equal(result.images, stack)
    moved = warp_images(stack, torch.from_numpy(np.stack([scale_about_centre(1.0, 50, 40, (2.0, 0.0))] * 3)))
    assert torch.allclose(moved[..., :, 10:-10], stack[..., :, 12:-8], atol=1e-5)  # integer shift: exact copy


def test_focus_inside_the_focal_length_is_refused():
    with pytest.raises(InputError, match="beyond the focal length"):
        breathing_scales([0.01, 1.0], 50.0)
