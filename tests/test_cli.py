"""``python -m core defocus``: every input and output format, and every kind of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from core.cli import main
from core.colour import linear_to_srgb
from core.imageio import read_image, write_exr, write_image, write_map

ROOT = Path(__file__).resolve().parents[1]
H, W = 36, 48
LENS = ["--f-stop", "1.4", "--focal-length", "50", "--sensor-width", "6"]


def scene():
    """Left half in focus at 2 m, right half far behind."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    image = np.stack([(x % 8) / 8, (y % 6) / 6, np.full_like(x, 0.3)], -1).astype(np.float32)
    depth = np.where(x < W // 2, 2.0, 20.0).astype(np.float32)
    return image, depth


def write_depth(path: Path, depth: np.ndarray) -> None:
    if path.name.endswith("ml.exr"):
        parts = [OpenEXR.Part({"name": "ViewLayer.Combined"},
                              {f"ViewLayer.Combined.{c}": np.ones_like(depth) for c in "RGBA"}),
                 OpenEXR.Part({"name": "ViewLayer.Depth"}, {"ViewLayer.Depth.Z": depth})]
        OpenEXR.File(parts).write(str(path))
    elif path.suffix == ".exr":
        write_exr(path, {"depth": depth})
    else:
        write_map(path, depth)


def run(args, capsys):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("image_ext", [".exr", ".png", ".jpg", ".tif"])
@pytest.mark.parametrize("depth_name", ["d.exr", "d_ml.exr", "d.pfm", "d.npy"])
def test_every_input_format(tmp_path, capsys, image_ext, depth_name):
    image, depth = scene()
    write_image(tmp_path / f"in{image_ext}", image)
    write_depth(tmp_path / depth_name, depth)
    out = tmp_path / "out.exr"
    code, err = run(["defocus", "--image", tmp_path / f"in{image_ext}", "--depth", tmp_path / depth_name,
                     "--focus-distance", 2, *LENS, "--output", out, "--quiet"], capsys)
    assert code == 0, err
    result = read_image(out)
    source = read_image(tmp_path / f"in{image_ext}")
    # In-focus half is the input itself; the far half is blurred.
    assert np.array_equal(result[:, : W // 2 - 1], source[:, : W // 2 - 1])
    assert not np.allclose(result[:, W // 2 + 4:], source[:, W // 2 + 4:])


@pytest.mark.parametrize("out_name,bits,dtype", [("o.exr", None, "float"), ("o.png", None, np.uint16),
                                                 ("o.png", 8, np.uint8), ("o.tif", None, np.uint16),
                                                 ("o.jpg", None, np.uint8)])
def test_every_output_format(tmp_path, capsys, out_name, bits, dtype):
    import cv2

    image, depth = scene()
    write_image(tmp_path / "in.exr", image)
    write_map(tmp_path / "d.npy", depth)
    args = ["defocus", "--image", tmp_path / "in.exr", "--depth", tmp_path / "d.npy", "--focus-distance", 2,
            *LENS, "--output", tmp_path / out_name, "--quiet"] + (["--bit-depth", bits] if bits else [])
    code, err = run(args, capsys)
    assert code == 0, err
    if dtype != "float":
        raw = cv2.imread(str(tmp_path / out_name), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == dtype and raw.shape[:2] == (H, W)
    back = read_image(tmp_path / out_name)
    error = np.abs(linear_to_srgb(back[:, : W // 2 - 1]) - linear_to_srgb(image[:, : W // 2 - 1]))
    if out_name == "o.jpg":  # lossy: judge the average, the test pattern is all edges
        assert error.mean() < 0.03
    else:
        assert error.max() < (1e-6 if out_name == "o.exr" else 0.01)


def test_focus_picker_options(tmp_path, capsys):
    image, depth = scene()
    write_image(tmp_path / "in.exr", image)
    write_map(tmp_path / "d.npy", depth)
    base = ["defocus", "--image", tmp_path / "in.exr", "--depth", tmp_path / "d.npy", *LENS, "--quiet"]
    assert run(base + ["--focus-pixel", 5, 5, "--output", tmp_path / "a.exr"], capsys)[0] == 0
    assert run(base + ["--focus-box", 0, 0, 20, 30, "--output", tmp_path / "b.exr"], capsys)[0] == 0
    assert run(base + ["--focus-distance", 2, "--output", tmp_path / "c.exr"], capsys)[0] == 0
    assert np.array_equal(read_image(tmp_path / "a.exr"), read_image(tmp_path / "c.exr"))
    assert np.array_equal(read_image(tmp_path / "b.exr"), read_image(tmp_path / "c.exr"))


OK = dict(image="in.exr", depth="d.npy", focus="2", fstop="1.4", output="out.png")
BAD = {
    "missing image": dict(OK, image="nope.exr"),
    "unreadable image": dict(OK, image="broken.exr"),
    "size mismatch": dict(OK, depth="small.npy"),
    "NaN depth": dict(OK, depth="nan.npy"),
    "zero depth": dict(OK, depth="zero.npy"),
    "negative depth": dict(OK, depth="neg.npy"),
    "zero f-stop": dict(OK, fstop="0"),
    "negative f-stop": dict(OK, fstop="-2"),
    "focus inside focal length": dict(OK, focus="0.03"),
    "unknown extension": dict(OK, output="out.bmp"),
    "missing output folder": dict(OK, output="no/such/dir/out.png"),
}


def write_bad_inputs(folder: Path) -> None:
    image, depth = scene()
    write_image(folder / "in.exr", image)
    write_map(folder / "d.npy", depth)
    write_map(folder / "small.npy", depth[:20])
    write_map(folder / "nan.npy", np.where(depth > 10, np.nan, depth))
    write_map(folder / "zero.npy", np.where(depth > 10, 0.0, depth))
    write_map(folder / "neg.npy", -depth)
    (folder / "broken.exr").write_bytes(b"\x76\x2f\x31\x01 not really")


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case):
    write_bad_inputs(tmp_path)
    c = BAD[case]
    before = set(tmp_path.rglob("*"))
    code, err = run(["defocus", "--image", tmp_path / c["image"], "--depth", tmp_path / c["depth"],
                     "--focus-distance", c["focus"], "--f-stop", c["fstop"], "--focal-length", "50",
                     "--output", tmp_path / c["output"]], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refocus defocus: error: "), err
    assert set(tmp_path.rglob("*")) == before


def test_real_command_line_with_progress(tmp_path):
    image, depth = scene()
    big = np.tile(image, (6, 6, 1))
    write_image(tmp_path / "in.png", big)
    write_map(tmp_path / "d.pfm", np.tile(depth, (6, 6)))
    proc = subprocess.run(
        [sys.executable, "-m", "core", "defocus", "--image", tmp_path / "in.png", "--depth", tmp_path / "d.pfm",
         "--focus-distance", "20", *LENS, "--output", tmp_path / "out.jpg"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    assert read_image(tmp_path / "out.jpg").shape == big.shape

    usage = subprocess.run([sys.executable, "-m", "core", "defocus", "--image", "x.png"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1
