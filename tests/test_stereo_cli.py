"""``python -m core stereo-depth``: outputs in every map format, metric depth, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from core.cli import main
from core.imageio import read_map, write_image
from stereo_fixtures import shifted_pair

H, W, SHIFT = 48, 96, 6.5


def run(args, capsys):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.fixture
def pair(tmp_path):
    left, right = shifted_pair(H, W, SHIFT)
    write_image(tmp_path / "l.png", left)
    write_image(tmp_path / "r.exr", right)
    return tmp_path / "l.png", tmp_path / "r.exr"


@pytest.mark.parametrize("ext", [".pfm", ".exr", ".npy"])
def test_disparity_depth_and_confidence_round_trip(tmp_path, capsys, pair, ext):
    out, depth, conf = tmp_path / f"d{ext}", tmp_path / f"z{ext}", tmp_path / f"c{ext}"
    code, err = run(["stereo-depth", "--left", pair[0], "--right", pair[1], "--output", out, "--max-disparity", 32,
                     "--depth", depth, "--baseline", 0.1, "--focal-length", 50, "--sensor-width", 36,
                     "--confidence", conf, "--quiet"], capsys)
    assert code == 0, err
    assert "warning" not in err
    d = read_map(out)
    assert d.shape == (H, W) and np.isfinite(d).all()
    assert abs(float(np.median(d[:, 16:])) - SHIFT) < 0.1
    f_px = 50 / 36 * W
    assert np.allclose(read_map(depth), 0.1 * f_px / d, rtol=1e-5)
    c = read_map(conf)
    assert c.min() >= 0 and c.max() <= 1 and np.median(c[:, 16:]) > 0.5


def test_offaxis_depth_uses_the_convergence_offset(tmp_path, capsys, pair):
    out, depth = tmp_path / "d.npy", tmp_path / "z.npy"
    code, err = run(["stereo-depth", "--left", pair[0], "--right", pair[1], "--output", out, "--max-disparity", 32,
                     "--depth", depth, "--baseline", 0.1, "--focal-length", 50, "--convergence-mode", "OFFAXIS",
                     "--convergence-distance", 3, "--quiet"], capsys)
    assert code == 0, err
    f_px = 50 / 36 * W
    assert np.allclose(read_map(depth), 0.1 * f_px / (read_map(out) + 0.1 * f_px / 3), rtol=1e-5)


def test_max_disparity_is_rounded_and_said(tmp_path, capsys, pair):
    code, err = run(["stereo-depth", "--left", pair[0], "--right", pair[1], "--output", tmp_path / "d.pfm",
                     "--max-disparity", 20, "--quiet"], capsys)
    assert code == 0
    assert "rounded up to 32" in err


def test_unrectified_pair_gets_a_vertical_disparity_warning(tmp_path, capsys):
    left, right = shifted_pair(96, 160, SHIFT)
    write_image(tmp_path / "l.exr", left)
    write_image(tmp_path / "r.exr", np.roll(right, 5, axis=0))
    code, err = run(["stereo-depth", "--left", tmp_path / "l.exr", "--right", tmp_path / "r.exr",
                     "--output", tmp_path / "d.pfm", "--max-disparity", 32, "--quiet"], capsys)
    assert code == 0
    assert "does not look rectified" in err and "vertically" in err


def _bad(tmp_path, capsys, args, message):
    out = tmp_path / "bad.pfm"
    code, err = run(["stereo-depth", *args, "--output", out, "--quiet"], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_sizes_that_differ_are_refused(tmp_path, capsys, pair):
    left, _ = shifted_pair(H, W + 8, SHIFT)
    write_image(tmp_path / "wide.exr", left)
    _bad(tmp_path, capsys, ["--left", tmp_path / "wide.exr", "--right", pair[1]], "must be the same size")


def test_empty_and_blank_images_are_refused(tmp_path, capsys, pair):
    (tmp_path / "empty.png").write_bytes(b"")
    _bad(tmp_path, capsys, ["--left", tmp_path / "empty.png", "--right", pair[1]], "cannot read image")
    write_image(tmp_path / "flat.exr", np.full((H, W, 3), 0.3, np.float32))
    _bad(tmp_path, capsys, ["--left", pair[0], "--right", tmp_path / "flat.exr"], "blank")


def test_bad_settings_are_refused(tmp_path, capsys, pair):
    _bad(tmp_path, capsys, ["--left", pair[0], "--right", pair[1], "--max-disparity", 0], "must be positive")
    _bad(tmp_path, capsys, ["--left", pair[0], "--right", pair[1], "--depth", tmp_path / "z.pfm"],
         "depth needs the baseline")
    _bad(tmp_path, capsys, ["--left", pair[0], "--right", pair[1], "--confidence", tmp_path / "c.png"],
         "unknown confidence output extension")
