"""Issue 21's camera options of the defocusnet generator: unseen and random cameras (no rendering)."""

from __future__ import annotations

import math

import numpy as np

from blender_scenes import dataset_io as io
from blender_scenes.dataset_samples import Options, focus_distances
from blender_scenes.dataset_scenes import CAMERAS, blur_span_px, camera_scene, random_camera, random_camera_for


def test_unseen_cameras_are_the_issues_and_focus_evenly_in_dioptres():
    fifty, phone = CAMERAS["unseen-50mm"], CAMERAS["unseen-phone"]
    assert (fifty.lens.focal_length_mm, fifty.lens.f_stop, fifty.focus_near_m, fifty.focus_far_m) == (50.0, 2.0, 0.8, 10.0)
    assert (phone.lens.focal_length_mm, phone.lens.f_stop, phone.focus_near_m, phone.focus_far_m) == (4.3, 1.8, 0.1, 2.0)
    options = Options(camera="unseen-50mm")
    d = focus_distances(options, np.random.default_rng(0), fifty.focus_near_m, fifty.focus_far_m)
    assert d[0] == 0.8 and math.isclose(d[-1], 10.0)
    assert np.allclose(np.diff(1.0 / np.array(d)), (1 / 10.0 - 1 / 0.8) / 4)
    assert "test-unseen-camera" in io.SPLITS["defocusnet"]
    # fod datasets describe themselves as before (resumable), other cameras name theirs
    assert "camera" not in Options().describe("defocusnet")
    assert Options(camera="random").describe("defocusnet")["camera"] == "random"


def test_random_cameras_span_phone_to_full_frame_within_the_issues_ranges():
    rng = np.random.default_rng(4)
    setups = [random_camera(rng) for _ in range(300)]
    focal = np.array([s.lens.focal_length_mm for s in setups])
    stops = np.array([s.lens.f_stop for s in setups])
    sensor = np.array([s.lens.sensor_width_mm for s in setups])
    near = np.array([s.focus_near_m for s in setups])
    far = np.array([s.focus_far_m for s in setups])
    assert focal.min() >= 4.0 and focal.max() <= 85.0 and focal.max() / focal.min() > 8
    assert stops.min() >= 1.4 and stops.max() <= 8.0
    assert sensor.min() >= 5.6 and sensor.max() <= 36.0
    assert near.min() < 0.12 and near.max() > 0.8 and far.min() > 1.2 and far.max() > 15.0
    assert (far >= 4 * near).all()
    for s in setups[:20]:
        s.lens.validate()
        scene = camera_scene(np.random.default_rng(1), "train", s)
        depths = [p.item.location[1] for p in scene.objects]
        assert min(depths[1:]) >= s.objects_m[0] - 1e-9 and depths[0] >= s.backdrop_m[0]


def test_random_cameras_for_an_image_size_blur_their_range_apart():
    """At 256x192 a fair share of raw draws (a small sensor stopped down, a far focus range) blur
    the range apart by under 3 px; the generator redraws them, and the span it reports is the
    thin lens's A f_px (1/near - 1/far)."""
    raw = [random_camera(np.random.default_rng(s)) for s in range(200)]
    assert sum(blur_span_px(s, 256, 192) < 3.0 for s in raw) > 10
    drawn = [random_camera_for(np.random.default_rng(s), 256, 192) for s in range(200)]
    assert all(blur_span_px(s, 256, 192) >= 3.0 for s in drawn)
    s = drawn[0]
    f_px = s.lens.focal_length_mm / s.lens.sensor_width_mm * 256
    expected = s.lens.focal_length_mm / s.lens.f_stop * 1e-3 * f_px * (1 / s.focus_near_m - 1 / s.focus_far_m)
    assert math.isclose(blur_span_px(s, 256, 192), expected, rel_tol=1e-9)


def test_independent_noise_is_described_only_when_on():
    assert "independent_noise" not in Options(camera="random").describe("defocusnet")
    assert Options(camera="random", independent_noise=True).describe("defocusnet")["independent_noise"] is True
