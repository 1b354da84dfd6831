"""core.stereo: SGBM on known shifts, fill, confidence, metrics, conversions; Motorcycle figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.errors import InputError
from core.stereo import StereoCamera, benchmark, depth_to_disparity, disparity_to_depth, estimate_disparity
from core.stereo.conversion import toe_in_depth, toe_in_disparity
from core.stereo.fill import fill_disparity, nearest_valid_along_rows
from core.stereo.metrics import occlusion_mask, stereo_metrics
from core.stereo.sgbm import SGBMParams, round_disparity_range, sgbm_disparity
from stereo_fixtures import shifted_pair, square_pair


# ------------------------------------------------------------------------------------------- SGBM
@pytest.mark.parametrize("shift", [3.3, 7.5, 12.75])
def test_known_shift_is_recovered_to_a_tenth_of_a_pixel(shift):
    left, right = shifted_pair(64, 128, shift)
    result = sgbm_disparity(left, right, SGBMParams(num_disparities=32))
    d = result.disparity[0, 0].numpy()
    assert np.isfinite(d).all()  # dense
    inner = d[8:-8, 24:-8]
    assert abs(float(np.median(inner)) - shift) < 0.1
    assert float(np.percentile(np.abs(inner - shift), 90)) < 0.1


def test_half_pixel_debiasing_removes_pixel_locking():
    left, right = shifted_pair(64, 128, 7.3)
    err = {}
    for debias in (False, True):
        d = sgbm_disparity(left, right, SGBMParams(num_disparities=32, debias=debias)).disparity[0, 0].numpy()
        err[debias] = abs(float(np.median(d[8:-8, 24:-8])) - 7.3)
    assert err[False] > 0.07  # SGBM's parabola pulls 7.3 towards 7
    assert err[True] < 0.05


def test_occluded_band_is_detected_and_filled_from_the_background():
    left, right, truth = square_pair(background=4, foreground=16)
    result = sgbm_disparity(left, right, SGBMParams(num_disparities=32))
    occluded = occlusion_mask(torch.from_numpy(truth)).numpy()
    # The square's 48 rows x 11 columns (the 12th lands on the square's edge, a tie, and stays
    # visible), and the 4 columns that land left of the right image.
    assert occluded.sum() == 48 * 11 + 96 * 4
    d = result.disparity[0, 0].numpy()
    assert result.occluded[0, 0].numpy()[occluded].mean() > 0.8
    assert not result.valid[0, 0].numpy()[occluded].any() or result.valid[0, 0].numpy()[occluded].mean() < 0.2
    # Filled from the background side: about 4, not the square's 16.
    assert np.median(np.abs(d[occluded] - 4.0)) < 0.5
    assert np.median(np.abs(d - truth)) < 0.1


def test_fill_takes_the_far_side_not_the_left_neighbour():
    # A hole between a near surface on its left (20) and a far one on its right (5), as to the
    # right of a foreground object where matching failed: a row copy gives 20, the fill 5.
    h, w = 16, 40
    disparity = np.where(np.arange(w) < 15, 20.0, 5.0).astype(np.float32)[None].repeat(h, 0)
    valid = np.ones((h, w), bool)
    valid[:, 15:25] = False
    guide = np.full((h, w, 3), 128, np.uint8)
    filled = fill_disparity(disparity, valid, np.zeros_like(valid), guide)
    before, _, _, _ = nearest_valid_along_rows(disparity, valid)
    assert np.all(before[:, 15:25] == 20.0)  # what a row copy would write
    assert np.allclose(filled[:, 15:25], 5.0, atol=1.0)
    assert np.array_equal(filled[valid], disparity[valid])


def test_fill_interpolates_a_texture_less_patch_inside_one_surface():
    h, w = 8, 60
    ramp = np.linspace(10.0, 16.0, w, dtype=np.float32)[None].repeat(h, 0)
    valid = np.ones((h, w), bool)
    valid[:, 20:40] = False
    filled = fill_disparity(ramp, valid, np.zeros_like(valid), np.full((h, w, 3), 90, np.uint8))
    error = np.abs(filled - ramp)[:, 20:40]
    # The background side alone (10.2) would be 2 px off at the far end of the patch.
    assert error.max() < 1.2 and error.mean() < 0.5


def test_confidence_is_high_where_matched_and_low_where_filled():
    left, right, truth = square_pair()
    result = sgbm_disparity(left, right, SGBMParams(num_disparities=32))
    c, valid = result.confidence[0, 0].numpy(), result.valid[0, 0].numpy()
    assert c.min() >= 0.0 and c.max() <= 1.0
    assert c[valid].mean() > 0.8
    assert c[~valid].mean() < 0.3


def test_blank_images_are_refused():
    flat = np.full((32, 64, 3), 0.2, np.float32)
    with pytest.raises(InputError, match="blank"):
        sgbm_disparity(flat, flat, SGBMParams(num_disparities=16))


def test_disparity_range_rounds_up_to_multiples_of_16():
    assert round_disparity_range(64) == (64, False)
    assert round_disparity_range(100) == (112, True)
    assert round_disparity_range(40, -8) == (48, False)
    with pytest.raises(InputError):
        round_disparity_range(0)


# ---------------------------------------------------------------------------------------- metrics
def test_metric_definitions_on_hand_made_errors():
    truth = torch.tensor([[100.0, 50.0, 10.0, 10.0, 10.0, float("nan")]])
    estimate = torch.tensor([[104.0, 54.0, 11.5, 10.5, float("nan"), 3.0]])
    m = stereo_metrics(estimate, truth)
    assert m.pixels == 5  # the NaN truth is not evaluated
    # Errors 4, 4, 1.5, 0.5 and 10 for the missing estimate (counted as 0).
    assert m.epe == pytest.approx((4 + 4 + 1.5 + 0.5 + 10) / 5)
    assert m.d1 == pytest.approx(100 * 2 / 5)  # 4 > 5 % of 50 and the missing one; not 4 of 100
    assert m.bad1 == pytest.approx(100 * 4 / 5)
    assert m.bad2 == pytest.approx(100 * 3 / 5)
    assert m.density == pytest.approx(100 * 4 / 5)


def test_occlusion_mask_of_a_step():
    d = torch.full((3, 30), 2.0)
    d[:, 15:20] = 10.0  # a near block hides the pixels left of it from the right camera
    occluded = occlusion_mask(d)
    expected = torch.zeros(3, 30, dtype=torch.bool)
    expected[:, 8:15] = True  # pixel 7 lands exactly on the block's edge: a tie, visible
    expected[:, :2] = True  # these land left of the right image
    assert torch.equal(occluded, expected)
    regions = benchmark(d.clone(), d)
    assert regions["noc"].pixels == 3 * (30 - 9) and regions["all"].epe == 0.0


# ------------------------------------------------------------------------------------ conversions
def test_parallel_disparity_depth_round_trip():
    depth = torch.tensor([[[[1.0, 2.5, 40.0]]]])
    d = depth_to_disparity(depth, 0.1, 1000.0)
    assert torch.allclose(d, torch.tensor([[[[100.0, 40.0, 2.5]]]]))
    assert torch.allclose(disparity_to_depth(d, 0.1, 1000.0), depth)
    assert math.isinf(float(disparity_to_depth(torch.tensor([0.0]), 0.1, 1000.0)[0]))


def test_middlebury_offset_matches_its_calibration_formula():
    # Middlebury: Z = B f / (d + doffs), here with Motorcycle's figures (mm -> m).
    z = disparity_to_depth(torch.tensor([30.0]), 0.193001, 994.978, 31.086)
    assert float(z) == pytest.approx(0.193001 * 994.978 / 61.086)


@pytest.mark.parametrize("mode", ["PARALLEL", "OFFAXIS", "TOE"])
@pytest.mark.parametrize("pivot", ["CENTER", "LEFT", "RIGHT"])
def test_blender_stereo_camera_round_trip(mode, pivot):
    camera = StereoCamera(interocular_distance=0.3, convergence_distance=4.0, convergence_mode=mode, pivot=pivot,
                          focal_length_mm=35.0)
    depth = torch.linspace(1.0, 30.0, 64).view(1, 1, 1, 64).repeat(1, 1, 4, 1)
    back = camera.to_depth(camera.to_disparity(depth))
    assert torch.allclose(back, depth, rtol=1e-4)


def test_offaxis_disparity_vanishes_at_the_convergence_distance():
    camera = StereoCamera(interocular_distance=0.065, convergence_distance=1.95, convergence_mode="OFFAXIS")
    d = camera.to_disparity(torch.full((1, 1, 2, 3), 1.95))
    assert torch.allclose(d, torch.zeros_like(d), atol=1e-4)
    f_px = camera.focal_length_pixels(3, 2)
    assert float(camera.disparity_offset(3, 2)) == pytest.approx(0.065 * f_px / 1.95)


def test_toe_in_meets_parallel_when_the_eyes_barely_turn():
    depth = torch.linspace(1.0, 10.0, 50).view(1, 1, 1, 50)
    parallel = depth_to_disparity(depth, 0.1, 800.0)
    toe = toe_in_disparity(depth, 0.1, 1e7, 800.0)
    assert torch.allclose(toe, parallel, atol=1e-3)
    assert torch.allclose(toe_in_depth(parallel, 0.1, 1e7, 800.0), depth, rtol=1e-3)


# ---------------------------------------------------------------------------------- real pair
def test_sgbm_on_middlebury_motorcycle():
    pytest.importorskip("skimage", reason="scikit-image ships the Motorcycle pair")
    from core.stereo.reference import motorcycle

    pair = motorcycle()
    left, right = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (pair.left, pair.right))
    result = estimate_disparity(left, right, "sgbm", max_disparity=64)
    truth = torch.from_numpy(pair.disparity)
    scores = benchmark(result.disparity[0, 0], truth)
    # Measured: EPE 1.20 / 0.55 px, bad-2 6.9 / 3.3 % (all / non-occluded); density 100 %.
    assert scores["all"].density == 100.0
    assert scores["all"].epe < 1.5 and scores["noc"].epe < 0.7
    assert scores["all"].bad2 < 8.5 and scores["noc"].bad2 < 4.5
    # Confidence ranks errors: the more trusted half is the more accurate one.
    c, e = result.confidence[0, 0], (result.disparity[0, 0] - truth).abs()
    known = torch.isfinite(truth)
    split = c[known].median()
    assert e[known & (c >= split)].mean() < 0.8 * e[known & (c < split)].mean()
