"""Focus Track core: tracker, depth sampling, focus-puller smoothing, the pipeline and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.errors import InputError
from core.focus_track.sampling import FocusSampler, locate_by_depth, surface_modes
from core.focus_track.smoothing import (PullerSettings, apply_dead_band, depth_of_field_dioptres, follow,
                                        noise_sigma, pull_focus)
from core.focus_track.synthetic import synthetic_clip
from core.focus_track.tracker import BoxTracker, to_tracking_image
from core.imageio import write_image, write_map
from core.pipelines.focus_track import CSV_HEADER, FocusTrackParams, run


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


@pytest.fixture(scope="module")
def walking():
    """A subject walking from 5 m to 2 m (2.5 times larger by the end) across a panning backdrop."""
    return synthetic_clip(frames=24, width=192, height=108, near_m=2.0, far_m=5.0, seed=3)


@pytest.mark.parametrize("method", ["csrt", "kcf"])
def test_synthetic_walk_recovers_path_and_depth(walking, method):
    track = run(list(walking.frames), list(walking.depths),
                FocusTrackParams(box_px=tuple(walking.boxes[0]), method=method, focal_length_mm=50, f_stop=2))
    overlaps = [iou(a, b) for a, b in zip(track.boxes, walking.boxes)]
    assert min(overlaps) > 0.5 and np.mean(overlaps) > 0.7, np.round(overlaps, 2)
    # The box grows with the subject (scale from depth): 2.5 times taller at the end.
    height_ratio = (track.boxes[-1, 3] - track.boxes[-1, 1]) / (track.boxes[0, 3] - track.boxes[0, 1])
    assert 2.0 < height_ratio < 3.0
    rel = np.abs(track.focus_distance_m - walking.distances) / walking.distances
    assert rel.max() < 0.01, rel
    assert np.abs(track.raw_focus_distance_m - walking.distances).max() < 1e-3  # exact layer depths
    assert track.info["lost_frames"] == []


def test_occluder_crossing_moves_focus_no_more_than_the_dead_band():
    clip = synthetic_clip(frames=30, width=192, height=108, near_m=3.0, far_m=3.0, occluder=True,
                          occluder_frames=(8, 20), seed=5)
    rng = np.random.default_rng(0)
    depths = [d.copy() for d in clip.depths]
    for t, d in enumerate(depths):  # a subject breathing 0.4 % in depth from frame to frame
        subject = np.abs(d - 3.0) < 1e-6
        d[subject] *= 1.0 + 0.004 * rng.standard_normal()
    params = FocusTrackParams(box_px=tuple(clip.boxes[0]), focal_length_mm=85, f_stop=1.4)
    track = run(list(clip.frames), depths, params)
    hidden = clip.visible < 0.1
    assert hidden.sum() >= 3 and set(np.nonzero(hidden)[0]) <= set(track.info["held_frames"])
    band = track.info["dead_band_dioptres"]
    assert band > 0.0
    dioptres = 1.0 / track.focus_distance_m
    assert np.abs(dioptres - dioptres[0]).max() <= band + 1e-9
    # SteReFo's plain median in the same boxes follows the occluder (at 1.8 m) far out of the band.
    from core.focus_track.evaluate import median_in_box
    plain = np.array([1.0 / median_in_box(d, b) for d, b in zip(depths, track.boxes)])
    assert np.abs(plain - plain[0]).max() > 10 * band


def test_sampler_keeps_the_surface_nearest_the_previous_focus():
    depth = np.full((40, 40), 8.0, np.float32)
    depth[5:35, 10:30] = 4.0  # the subject
    sampler = FocusSampler()
    first = sampler.sample(depth, (8, 3, 32, 37))
    assert first.distance_m == pytest.approx(4.0) and not first.held
    occluded = depth.copy()
    occluded[:, 8:24] = 2.0  # an occluder covers two thirds of the box
    second = sampler.sample(occluded, (8, 3, 32, 37))
    assert second.distance_m == pytest.approx(4.0) and second.modes >= 2
    hidden = depth.copy()
    hidden[:, :] = 2.0
    third = sampler.sample(hidden, (8, 3, 32, 37))
    assert third.held and third.distance_m == pytest.approx(4.0) and third.confidence < first.confidence


def test_surface_modes_and_locate_by_depth():
    log = np.log(np.concatenate([np.full(300, 2.0), np.full(100, 5.0), np.full(5, 9.0)]))
    modes = surface_modes(log, np.ones_like(log), 0.03, 0.1)
    assert len(modes) == 2
    assert np.exp(modes[0][0]) == pytest.approx(2.0, rel=0.03) and modes[0][1] == pytest.approx(300 / 405)
    depth = np.full((60, 100), 10.0, np.float32)
    depth[20:40, 70:80] = 3.0
    found = locate_by_depth(depth, (40, 20, 50, 40), 3.0, reach=4.0)
    assert found is not None and iou(found, (70, 20, 80, 40)) > 0.8
    assert locate_by_depth(depth, (40, 20, 50, 40), 6.0, reach=4.0) is None


def test_tracker_reports_loss_and_redetects():
    clip = synthetic_clip(frames=20, width=160, height=90, near_m=3.0, far_m=3.0, occluder=True,
                          occluder_frames=(5, 13), seed=2)
    tracker = BoxTracker("csrt")
    tracker.start(to_tracking_image(clip.frames[0]), tuple(clip.boxes[0]))
    states = [tracker.update(to_tracking_image(f)) for f in clip.frames[1:]]
    statuses = [s.status for s in states]
    fully_hidden = [t - 1 for t in range(1, 20) if clip.visible[t] < 0.1]
    assert fully_hidden and all(statuses[t] == "lost" for t in fully_hidden)
    after = [iou(s.box, b) for s, b in zip(states[-4:], clip.boxes[-4:])]
    assert "redetected" in statuses and min(after) > 0.6


def test_follow_respects_rack_speed_and_has_no_lag_when_anticipating():
    step = np.r_[np.full(12, 0.2), np.full(36, 0.7)]
    out = follow(step, 24.0, 0.1, 2.0, 2.0 / 0.15)
    assert np.abs(np.diff(out)).max() * 24.0 <= 2.0 + 1e-9
    assert out[-1] == pytest.approx(0.7, abs=1e-3) and out.max() <= 0.7 + 1e-9  # critically damped: no overshoot
    ramp = np.linspace(0.2, 0.5, 40)
    pulled = pull_focus(1.0 / ramp, np.zeros(40, bool), PullerSettings())
    assert np.abs(pulled.dioptres - ramp).max() < 2e-3
    causal = pull_focus(1.0 / ramp, np.zeros(40, bool), PullerSettings(anticipate=False))
    assert np.abs(causal.dioptres - ramp)[10:].mean() > 5 * np.abs(pulled.dioptres - ramp)[10:].mean()


def test_dead_band_rests_on_noise_and_follows_a_walk():
    rng = np.random.default_rng(1)
    noise = 0.3 + 0.002 * rng.standard_normal(60)
    rested = apply_dead_band(noise, 0.01)
    assert np.ptp(rested) == 0.0
    walk = np.linspace(0.3, 0.6, 60)
    assert np.abs(apply_dead_band(walk, 0.01) - walk).max() <= 0.01
    assert noise_sigma(noise) == pytest.approx(0.002, rel=0.3)
    assert depth_of_field_dioptres(27.5, 1.5) == pytest.approx(1.5 / 27.5)


def test_bridge_interpolates_held_frames():
    raw = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0])
    held = np.array([0, 0, 0, 1, 1, 1, 0, 0], bool)
    raw[3:6] = 2.0  # held frames repeat the last good value
    pulled = pull_focus(raw, held, PullerSettings(response_s=0.0, ease_s=0.0, max_rack_dioptres_per_s=100.0))
    assert pulled.target_dioptres[3:6] == pytest.approx([0.625, 0.75, 0.875])


def test_params_refuse_bad_values():
    with pytest.raises(InputError, match="empty"):
        FocusTrackParams(box_px=(10, 10, 5, 20))
    with pytest.raises(InputError, match="frame rate"):
        FocusTrackParams(box_px=(0, 0, 5, 5), fps=0)
    with pytest.raises(InputError, match="box"):
        FocusTrackParams()
    with pytest.raises(InputError, match="dead-band"):
        FocusTrackParams(box_px=(0, 0, 5, 5), dead_band=2.0)


def test_given_boxes_are_sampled_without_tracking(walking):
    boxes = [list(b) for b in walking.boxes]
    boxes[5] = None
    track = run(list(walking.frames), list(walking.depths), FocusTrackParams(boxes_px=boxes))
    assert track.status[0] == "given" and track.status[5] == "lost" and track.held[5]
    assert np.abs(track.focus_distance_m - walking.distances).max() / 2.0 < 0.01


# ------------------------------------------------------------------------------------------- CLI
def write_clip(folder: Path, clip, frames: int | None = None) -> tuple[Path, Path]:
    images, depths = folder / "frames", folder / "depth"
    images.mkdir(parents=True)
    depths.mkdir(parents=True)
    for t in range(frames or len(clip.frames)):
        write_image(images / f"f_{t:03d}.exr", clip.frames[t])
        write_map(depths / f"d_{t:03d}.exr", clip.depths[t])
    return images, depths


def box_args(clip) -> list[str]:
    return [str(v) for v in clip.boxes[0]]


def test_cli_writes_the_csv_the_pipeline_computes(tmp_path, capsys):
    clip = synthetic_clip(frames=8, width=96, height=64, near_m=2.0, far_m=3.0, seed=4)
    images, depths = write_clip(tmp_path, clip)
    out = tmp_path / "track.csv"
    code = main(["focus-track", "--frames", str(images), "--depth", str(depths), "--box", *box_args(clip),
                 "--fps", "25", "--max-rack", "1.5", "--output", str(out), "--quiet"])
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == CSV_HEADER == "frame,x0,y0,x1,y1,focus_distance_m,raw_focus_distance_m,confidence"
    assert len(lines) == 9
    rows = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    expected = run(list(clip.frames), list(clip.depths),
                   FocusTrackParams(box_px=tuple(clip.boxes[0]), fps=25, max_rack_dioptres_per_s=1.5))
    assert rows[:, 0].tolist() == list(range(8))
    assert rows[:, 5] == pytest.approx(expected.focus_distance_m, abs=1e-5)
    assert rows[:, 6] == pytest.approx(clip.distances, abs=1e-4)


def test_cli_refocus_out_writes_refocused_frames(tmp_path):
    clip = synthetic_clip(frames=3, width=64, height=48, near_m=2.0, far_m=2.5, seed=6, clutter=2)
    images, depths = write_clip(tmp_path, clip)
    out = tmp_path / "track.csv"
    code = main(["focus-track", "--frames", str(images), "--depth", str(depths), "--box", *box_args(clip),
                 "--focal-length", "150", "--f-stop", "1.4", "--output", str(out), "--refocus-out",
                 str(tmp_path / "ref"), "--overlay-out", str(tmp_path / "overlay.exr"), "--frame-index", "2",
                 "--quiet"])
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "ref").iterdir())
    assert written == ["f_000.exr", "f_001.exr", "f_002.exr"]
    from core.imageio import read_image
    refocused = read_image(tmp_path / "ref" / "f_000.exr")
    x0, y0, x1, y1 = (int(v) for v in clip.boxes[0])
    # The subject stays sharp, the backdrop (at 7.5 m: a CoC of ~10 px at 150 mm f/1.4) is blurred.
    subject = np.abs(refocused[y0 + 2:y1 - 2, x0 + 2:x1 - 2, :3] - clip.frames[0][y0 + 2:y1 - 2, x0 + 2:x1 - 2])
    assert subject.mean() < 0.02
    back = clip.depths[0] > 7.0
    assert np.abs(refocused[..., :3] - clip.frames[0])[back].mean() > 2 * subject.mean()
    # The overlay of frame 2: its box drawn in green (tracked) where the subject's box is.
    overlay = read_image(tmp_path / "overlay.exr")
    bx0, by0, bx1, by1 = (int(round(v)) for v in clip.boxes[2])
    edge = overlay[by0 + 1:by1 - 1, max(bx0 - 1, 0):bx0 + 2, :3]  # its left edge, give or take a pixel
    green = (edge[..., 1] - edge[..., 0]).max(axis=1) > 0.3
    assert overlay.shape == (48, 64, 4) and green.mean() > 0.8


BAD_CASES = ["counts", "sizes", "box-outside", "box-empty", "unreadable", "not-csv"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case):
    clip = synthetic_clip(frames=4, width=64, height=48, near_m=2.0, far_m=2.5, seed=7, clutter=2)
    images, depths = write_clip(tmp_path, clip)
    box = box_args(clip)
    out = tmp_path / "track.csv"
    if case == "counts":
        (depths / "d_003.exr").unlink()
    elif case == "sizes":
        write_map(depths / "d_002.exr", np.ones((40, 64), np.float32))
    elif case == "box-outside":
        box = ["100", "60", "120", "80"]
    elif case == "box-empty":
        box = ["30", "20", "30", "40"]
    elif case == "unreadable":
        (images / "f_002.exr").write_bytes(b"not an exr at all")
    elif case == "not-csv":
        out = tmp_path / "track.txt"
    capsys.readouterr()
    code = main(["focus-track", "--frames", str(images), "--depth", str(depths), "--box", *box, "--output", str(out),
                 "--refocus-out", str(tmp_path / "ref"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("refocus focus-track: error: ") and err.count("\n") == 1, err
    assert not out.exists() and not (tmp_path / "ref").exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_stereo_clip_to_stereo_depth_to_focus_track_to_refocus(tmp_path):
    """SteReFo end to end, frame by frame through the command line: a rectified stereo clip ->
    stereo-depth (SGBM, metric depth) -> focus-track -> the refocused frames."""
    f_px = 192 * 50 / 36
    clip = synthetic_clip(frames=6, width=192, height=108, near_m=2.5, far_m=5.0, seed=3,
                          stereo_baseline_m=0.2, focal_px=f_px)
    for name in ("left", "right", "depth"):
        (tmp_path / name).mkdir()
    for t in range(6):
        left, right = tmp_path / "left" / f"f_{t:02d}.exr", tmp_path / "right" / f"f_{t:02d}.exr"
        write_image(left, clip.frames[t])
        write_image(right, clip.right[t])
        assert main(["stereo-depth", "--left", str(left), "--right", str(right),
                     "--output", str(tmp_path / f"disparity_{t:02d}.pfm"),
                     "--depth", str(tmp_path / "depth" / f"d_{t:02d}.pfm"), "--baseline", "0.2",
                     "--focal-length", "50", "--max-disparity", "48", "--quiet"]) == 0
    out = tmp_path / "track.csv"
    assert main(["focus-track", "--frames", str(tmp_path / "left"), "--depth", str(tmp_path / "depth"),
                 "--box", *box_args(clip), "--focal-length", "50", "--f-stop", "2", "--output", str(out),
                 "--refocus-out", str(tmp_path / "refocused"), "--quiet"]) == 0
    focus = np.array([float(line.split(",")[5]) for line in out.read_text().splitlines()[1:]])
    # Whole-pixel disparities of ~11-27 px: a few per cent of depth error at most.
    assert np.abs(focus - clip.distances).max() / 2.5 < 0.05
    assert len(list((tmp_path / "refocused").iterdir())) == 6
