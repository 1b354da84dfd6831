"""Large frames in pieces: SGBM in strips and depth from focus in bands agree with the whole frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from core.errors import InputError
from core.stereo.sgbm import SGBMParams, sgbm_disparity
from core.stereo.strips import sgbm_disparity_strips


def stereo_pair(h=240, w=320, seed=0):
    """A textured backdrop at 8 px and a textured box at 20 px; rows 0..39 are flat grey."""
    rng = np.random.default_rng(seed)
    tex = cv2.resize(rng.random((h // 4, (w + 80) // 4, 3)).astype(np.float32), (w + 80, h),
                     interpolation=cv2.INTER_CUBIC)
    fg = cv2.resize(rng.random((h // 4, (w + 80) // 4, 3)).astype(np.float32), (w + 80, h),
                    interpolation=cv2.INTER_CUBIC)
    left, right = tex[:, 40:40 + w].copy(), tex[:, 48:48 + w].copy()
    left[80:180, 100:220] = fg[80:180, 100:220]
    right[80:180, 80:200] = fg[80:180, 100:220]
    gt = np.full((h, w), 8.0, np.float32)
    gt[80:180, 100:220] = 20.0
    left[:40] = right[:40] = 0.5
    return left, right, gt


def test_sgbm_strips_agree_with_the_whole_frame():
    left, right, gt = stereo_pair()
    params = SGBMParams(num_disparities=32)
    whole = sgbm_disparity(left, right, params)
    calls = []
    strips = sgbm_disparity_strips(left, right, params, rows=30, overlap=24, progress=lambda d, n: calls.append((d, n)))
    a, b = whole.disparity[0, 0].numpy(), strips.disparity[0, 0].numpy()
    assert calls[-1] == (8, 8) and len(calls) == 8
    assert np.isfinite(b).all()
    assert np.mean(np.abs(a - b) > 1.0) < 0.01  # the cuts change almost nothing
    # Both are right where the scene has texture (the flat top band has none to match).
    assert np.mean(np.abs(b - gt)[40:] > 1.0) < 0.03


def test_a_blank_strip_takes_the_nearest_matched_rows():
    left, right, _ = stereo_pair()
    # Without overlap the first strip (rows 0..19) is one flat colour: nothing to match there.
    out = sgbm_disparity_strips(left, right, SGBMParams(num_disparities=32), rows=20, overlap=0)
    d = out.disparity[0, 0].numpy()
    assert np.isfinite(d).all()
    assert np.array_equal(d[0], d[20]) and np.array_equal(d[19], d[20])
    assert not out.valid[0, 0, :20].any() and out.confidence[0, 0, :20].max() == 0


def test_a_short_frame_runs_in_one_piece():
    left, right, _ = stereo_pair(h=60)
    params = SGBMParams(num_disparities=32)
    one = sgbm_disparity_strips(left, right, params, rows=30, overlap=24)
    assert torch.equal(one.disparity, sgbm_disparity(left, right, params).disparity)


def test_a_pair_with_nothing_to_match_is_refused_in_strips():
    left = np.full((200, 64, 3), 0.5, np.float32)
    left[:, ::2] = 0.4  # not blank, but nothing but vertical stripes that SGBM's check rejects
    with pytest.raises(InputError):
        sgbm_disparity_strips(left, np.full_like(left, 0.5), SGBMParams(num_disparities=16), rows=40)


def test_memory_limit_parsing_and_refusal(monkeypatch):
    from core.memory import check_fits, parse_bytes

    assert parse_bytes("4G") == 4 * 2**30 and parse_bytes("512M") == 512 * 2**20 and parse_bytes("1.5GiB") == 1.5 * 2**30
    assert parse_bytes("1000") == 1000
    with pytest.raises(InputError, match="size such as 4G"):
        parse_bytes("lots")
    monkeypatch.setenv("REFOCUS_MEMORY_LIMIT", "100M")
    check_fits(99 * 2**20, "a small job")
    with pytest.raises(InputError, match=r"a big job needs about 200 MiB of memory but only 100 MiB is free "
                                         r"\(\$REFOCUS_MEMORY_LIMIT\)"):
        check_fits(200 * 2**20, "a big job")


def test_image_shape_from_headers(tmp_path):
    from core.imageio import image_shape, write_image, write_map

    write_image(tmp_path / "a.png", np.zeros((7, 9, 3), np.float32))
    write_image(tmp_path / "a.jpg", np.zeros((7, 9, 3), np.float32))
    write_image(tmp_path / "a.exr", np.zeros((7, 9, 3), np.float32))
    write_map(tmp_path / "a.pfm", np.zeros((7, 9), np.float32))
    write_map(tmp_path / "a.npy", np.zeros((7, 9), np.float32))
    for name in ("a.png", "a.jpg", "a.exr", "a.pfm", "a.npy"):
        assert image_shape(tmp_path / name)[:2] == (7, 9), name
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    assert image_shape(tmp_path / "bad.png") is None


def focal_slices(h=120, w=160, seed=0):
    """Three slices of a blocky texture: the left half sharp in the far slice, the right in the near."""
    rng = np.random.default_rng(seed)
    tex = cv2.resize(rng.random((h // 2, w // 2, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    out = []
    for left_sigma, right_sigma in ((0.5, 3.0), (1.5, 1.5), (3.0, 0.5)):
        s = cv2.GaussianBlur(tex, (0, 0), right_sigma)
        s[:, : w // 2] = cv2.GaussianBlur(tex, (0, 0), left_sigma)[:, : w // 2]
        out.append(s + rng.normal(0, 0.003, s.shape).astype(np.float32))
    return out


@pytest.mark.parametrize("noise_floor", [0.0, 2.0])
def test_banded_depth_from_focus_equals_the_whole_frame(noise_floor):
    from core.focal_stack.banded import SliceStore, depth_from_focus_banded
    from core.focal_stack.depth_from_focus import depth_from_focus

    images, distances = focal_slices(), [0.5, 1.0, 2.0]
    whole = depth_from_focus(torch.stack([torch.from_numpy(s.transpose(2, 0, 1).copy()) for s in images]),
                             distances, noise_floor=noise_floor)
    store = SliceStore(3, 120, 160, 3, measure_noise=True)
    for i, s in enumerate(images):
        store.put(i, s)
    calls = []
    banded = depth_from_focus_banded(store, distances, rows=16, noise_floor=noise_floor,
                                     progress=lambda d, n: calls.append(d))
    assert calls == list(range(1, 9))
    for name, tolerance in (("depth", 1e-4), ("all_in_focus", 1e-4), ("uncertainty", 1e-4),
                            ("confidence", 1e-3)):  # the banded method keeps the peak prominence in half floats
        a, b = getattr(whole, name), getattr(banded, name)
        assert a.shape == b.shape
        assert float((a - b).abs().max()) < tolerance, name
    lean = depth_from_focus_banded(store, distances, rows=16, noise_floor=noise_floor, uncertainty=False)
    assert lean.uncertainty is None and torch.equal(lean.depth, banded.depth)


def test_slices_on_disk_read_back_as_float16():
    from core.focal_stack.banded import SliceStore, depth_from_focus_banded

    images = focal_slices(60, 80)
    with SliceStore(3, 60, 80, 3, in_memory_bytes=0) as store:
        assert store.on_disk
        for i, s in enumerate(images):
            store.put(i, s)
        assert np.abs(store.rows(1, 10, 20) - images[1][10:20]).max() < 1e-3
        out = depth_from_focus_banded(store, [0.5, 1.0, 2.0], rows=8)
    # The left half is sharpest in the first slice (0.5 m), the right half in the last (2 m).
    depth = out.depth[0, 0].numpy()
    assert np.median(depth[:, 10:30]) < 0.7 and np.median(depth[:, 50:70]) > 1.5


def test_the_focal_stack_command_in_bands_matches_the_whole_frame(tmp_path, monkeypatch, capsys):
    import core.focal_stack.banded as banded
    import core.pipelines.focal_stack_depth as pipeline
    from core.cli import main
    from core.imageio import read_image, read_map, write_image

    paths = []
    for i, s in enumerate(focal_slices()):
        write_image(tmp_path / f"s{i}.exr", s)
        paths.append(str(tmp_path / f"s{i}.exr"))

    def run(tag):
        args = ["focal-stack-depth", "--stack", *paths, "--focus-distances", "0.5", "1", "2", "--quiet",
                "--depth", str(tmp_path / f"d_{tag}.exr"), "--aif", str(tmp_path / f"a_{tag}.exr"),
                "--confidence", str(tmp_path / f"c_{tag}.exr")]
        assert main(args) == 0, capsys.readouterr().err

    run("whole")
    import core.commands.focal_stack_depth as command

    calls = []
    monkeypatch.setattr(command, "run_banded", lambda *a, **k: calls.append(1) or pipeline.run_banded(*a, **k))
    monkeypatch.setattr(pipeline, "BANDED_BYTES", 0)
    monkeypatch.setattr(banded, "BAND_BYTES", 1)  # the smallest bands: 64 rows, so two of them
    monkeypatch.setattr(banded, "IN_MEMORY_BYTES", 0)  # and the slices on disk
    run("bands")
    assert calls == [1]
    assert np.abs(read_map(tmp_path / "d_whole.exr") - read_map(tmp_path / "d_bands.exr")).max() < 0.02
    assert np.abs(read_image(tmp_path / "a_whole.exr") - read_image(tmp_path / "a_bands.exr")).max() < 2e-3
    assert np.abs(read_map(tmp_path / "c_whole.exr") - read_map(tmp_path / "c_bands.exr")).max() < 2e-3


def test_matching_image_in_bands_is_the_same_image():
    from core.stereo.sgbm import to_matching_image
    from core.stereo.strips import matching_image

    image = np.random.default_rng(3).random((70, 30, 3)).astype(np.float32) * 1.5
    assert np.array_equal(matching_image(image, rows=16), to_matching_image(image))
    assert np.array_equal(matching_image(image[..., :1], rows=16), to_matching_image(image[..., :1]))
