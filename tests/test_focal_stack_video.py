"""Focus-sweep video: ramps, per-frame stacks, and depth from a real encoded video file."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from core.cli import main
from core.colour import linear_to_srgb
from core.focal_stack.synthetic import dioptre_spaced, noise_texture, render_stack, slanted_plane
from core.focal_stack.video import focal_stacks, focus_ramps, interpolate_focus, read_frames, stack_frames
from core.imageio import read_map
from core.optics import Lens


def test_ramps_split_at_reversals_and_share_the_turning_frame():
    focus = [2.0, 1.0, 0.5, 0.4, 0.5, 1.0, 2.0, 2.0, 1.0]
    assert focus_ramps(focus) == [range(0, 4), range(3, 8), range(7, 9)]
    assert focus_ramps([1.0]) == [range(0, 1)]


def test_stack_frames_window_and_duplicates():
    focus = [2.0, 1.0, 1.0, 0.5, 0.4, 0.5, 1.0]
    ramps = focus_ramps(focus)
    # Frame 2's ramp is frames 0..4; frame 1 and 2 share 1.0 m: the nearer in time (2 itself) stays.
    assert stack_frames(2, focus, ramps) == [0, 2, 3, 4]
    assert stack_frames(2, focus, ramps, window=1) == [2, 3]


def test_interpolate_focus_is_linear_in_dioptres():
    per_frame = interpolate_focus({0: 2.0, 4: 0.5}, 6)
    assert [1 / d for d in per_frame] == pytest.approx([0.5, 0.875, 1.25, 1.625, 2.0, 2.0])
    assert interpolate_focus({0: math.inf, 2: 1.0}, 3)[0] == math.inf


@pytest.fixture(scope="module")
def sweep_video(tmp_path_factory):
    """A focus pulled near and back over a slanted plane, with a small hand-held drift, as MJPEG."""
    size, near, far = 96, 0.4, 2.0
    g = torch.Generator().manual_seed(31)
    image = noise_texture(size, size, g)
    depth = slanted_plane(size, size, near, far)
    ramp = dioptre_spaced(near, far, 5)
    focus = ramp + ramp[-2::-1]  # far -> near -> far: two ramps sharing the nearest frame
    frames = render_stack(image, depth, Lens(50.0, 1.4, sensor_width_mm=36.0), focus)
    drift = [(0.0, 0.0), (0.5, 0.0), (1.0, -0.5), (1.0, -1.0), (0.5, -1.0), (0.0, -0.5), (0.0, 0.0), (-0.5, 0.0),
             (-1.0, 0.5)]
    path = tmp_path_factory.mktemp("video") / "sweep.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
    assert writer.isOpened()
    for frame, (dx, dy) in zip(frames, drift):
        srgb = (linear_to_srgb(frame.permute(1, 2, 0).numpy()) * 255).round().astype(np.uint8)
        shifted = cv2.warpAffine(srgb, np.float32([[1, 0, dx], [0, 1, dy]]), (size, size),
                                 flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        writer.write(np.ascontiguousarray(shifted[..., ::-1]))
    writer.release()
    return path, focus, depth[0, 0].numpy(), near, far


def test_per_frame_stacks_from_a_video(sweep_video):
    path, focus, truth, near, far = sweep_video
    frames = read_frames(path)
    assert len(frames) == 9 and frames[0].shape == (96, 96, 3)
    stacks = list(focal_stacks(frames, focus, which=[2, 6]))
    assert stacks[0].frames == [0, 1, 2, 3, 4] and stacks[1].frames == [4, 5, 6, 7, 8]
    assert stacks[0].alignment.reference == 2
    # ECC brings the drifted frames back onto frame 2: the shift found for frame 0 undoes (-1, +0.5).
    warp = stacks[0].alignment.warps[0].numpy()
    assert warp[0, 2] == pytest.approx(-1.0, abs=0.3) and warp[1, 2] == pytest.approx(0.5, abs=0.3)


def test_video_through_the_command_line(sweep_video, tmp_path, capsys):
    path, focus, truth, near, far = sweep_video
    code = main(["focal-stack-depth", "--stack", str(path), "--focus-distances", *map(str, focus),
                 "--frame", "all", "--depth", str(tmp_path / "d_##.exr"), "--aif", str(tmp_path / "a_##.png"),
                 "--align", "translation", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    written = sorted(p.name for p in tmp_path.glob("d_*.exr"))
    assert written == [f"d_{t:02d}.exr" for t in range(9)]
    depth = read_map(tmp_path / "d_00.exr")  # frame 0 did not drift: compare with the truth
    inner = (slice(10, -10), slice(10, -10))
    step = (1 / near - 1 / far) / 4
    assert float(np.abs(1 / depth[inner] - 1 / truth[inner]).mean()) < 0.35 * step  # 8-bit MJPEG frames
    # A sparse focus file ('FRAME METRES') is interpolated; one frame only, by default the middle one.
    (tmp_path / "focus.txt").write_text(f"0 {focus[0]}\n4 {focus[4]}\n8 {focus[8]}\n")
    code = main(["focal-stack-depth", "--stack", str(path), "--focus-file", str(tmp_path / "focus.txt"),
                 "--depth", str(tmp_path / "mid.exr"), "--aif", str(tmp_path / "mid.png"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert read_map(tmp_path / "mid.exr").shape == (96, 96)


def test_bad_video_inputs(sweep_video, tmp_path, capsys):
    path, focus, *_ = sweep_video
    code = main(["focal-stack-depth", "--stack", str(path), "--focus-distances", "1", "2",
                 "--depth", str(tmp_path / "d.exr"), "--aif", str(tmp_path / "a.png")])
    assert code == 2 and "for a 9-frame video" in capsys.readouterr().err
    code = main(["focal-stack-depth", "--stack", str(path), "--focus-distances", *map(str, focus), "--frame", "all",
                 "--depth", str(tmp_path / "d.exr"), "--aif", str(tmp_path / "a.png")])
    assert code == 2 and "put '#'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ video depth from defocus
def _sweep(size: int = 64, frames_per_ramp: int = 5, noise: bool = True):
    from core.focal_stack.noise import poisson_gaussian

    g = torch.Generator().manual_seed(7)
    image = noise_texture(size, size, g)
    depth = slanted_plane(size, size, 1.0, 4.0)
    lens = Lens(50.0, 1.4, sensor_width_mm=36.0)
    ramp = dioptre_spaced(0.9, 5.0, frames_per_ramp)
    focus = ramp + ramp[-2::-1] + ramp[1:]
    frames = render_stack(image, depth, lens, focus)
    if noise:
        frames = poisson_gaussian(frames, generator=torch.Generator().manual_seed(3))
    return frames, focus, depth, lens.coc_scale(size, size)


def test_temporal_fusion_halves_flicker_on_a_static_scene():
    from core.focal_stack.video import video_depth

    frames, focus, depth, k = _sweep()
    out = video_depth(frames, focus, k)
    assert out.depth.shape == (len(focus), 1, 64, 64) and out.all_in_focus.shape == (len(focus), 3, 64, 64)
    assert out.uncertainty.shape == out.depth.shape and float(out.uncertainty.min()) >= 0

    def flicker(d: torch.Tensor) -> float:
        return float((d[1:] - d[:-1]).abs()[..., 6:-6, 6:-6].mean())

    assert flicker(out.depth) < 0.5 * flicker(out.independent_depth)
    err = lambda d: float(((d - depth).abs() / depth)[..., 6:-6, 6:-6].mean())  # noqa: E731
    assert err(out.depth) <= err(out.independent_depth) + 0.005
    assert err(out.depth) < 0.1


def test_temporal_fusion_does_not_carry_over_where_the_scene_changes():
    from core.focal_stack.video import temporal_fusion

    inverse = torch.ones(4, 1, 8, 8)
    inverse[2:, ..., 4:] = 3.0  # the right half changes depth at frame 2, and its look changes too
    guide = torch.zeros(4, 1, 8, 8)
    guide[2:, ..., 4:] = 0.5
    fused, spread = temporal_fusion(inverse, torch.full_like(inverse, 0.1), guide)
    assert torch.allclose(fused, inverse, atol=1e-3)  # the change is kept, not smoothed over
    assert float(spread[1:3, ..., :4].max()) < 0.1 / 1.5  # the static half gains precision from its neighbours


def test_refine_focus_recovers_a_rough_focus_reading():
    from core.focal_stack.video import refine_focus

    g = torch.Generator().manual_seed(2)
    image = noise_texture(96, 96, g)
    depth = slanted_plane(96, 96, 0.5, 4.0)
    lens = Lens(50.0, 1.0, sensor_width_mm=36.0)  # 6.7 px per dioptre: 0 to 9 px of blur across the plane
    frame = render_stack(image, depth, lens, [1.6])
    k = lens.coc_scale(96, 96)
    for rough in (1.0 / 1.6 - 0.12, 1.0 / 1.6 + 0.09):
        found = refine_focus(frame, image, 1.0 / depth, k, rough)
        assert abs(found - 1.0 / 1.6) < 0.05  # from 0.12 and 0.09 D off to 0.04 (a bias of the layered render)
