"""Image and map I/O: round trips for every format, Blender's multilayer EXR, atomic writes."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest

from core.colour import linear_to_srgb, srgb_to_linear
from core.errors import InputError
from core.imageio import atomic_write, read_exr_channels, read_image, read_map, write_exr, write_image, write_map


def test_srgb_round_trip():
    v = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.allclose(linear_to_srgb(srgb_to_linear(v)), v, atol=1e-6)
    assert float(linear_to_srgb(np.float32(0.18))) == pytest.approx(0.4613, abs=1e-3)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_exr_round_trip_is_exact(tmp_path, channels):
    img = (np.random.rand(20, 30, channels) * 40).astype(np.float32)  # HDR values survive
    write_image(tmp_path / "a.exr", img)
    assert np.array_equal(read_image(tmp_path / "a.exr"), img)


def test_exr_half(tmp_path):
    img = np.random.rand(8, 8, 3).astype(np.float32)
    write_image(tmp_path / "h.exr", img, bit_depth=16)
    assert OpenEXR.File(str(tmp_path / "h.exr"), separate_channels=True).parts[0].channels["R"].pixels.dtype == np.float16
    assert np.allclose(read_image(tmp_path / "h.exr"), img, atol=1e-3)


@pytest.mark.parametrize("ext,bits,tol", [(".png", 16, 1e-4), (".png", 8, 0.01), (".tif", 16, 1e-4), (".jpg", 8, 0.06)])
def test_integer_formats_round_trip_through_srgb(tmp_path, ext, bits, tol):
    # A smooth image, so JPEG's compression stays small.
    y, x = np.mgrid[0:32, 0:48].astype(np.float32)
    img = np.stack([x / 47, y / 31, 0.5 * np.ones_like(x)], -1) ** 2.2
    write_image(tmp_path / f"a{ext}", img, bit_depth=bits if ext != ".jpg" else None)
    back = read_image(tmp_path / f"a{ext}")
    assert back.shape == img.shape
    assert np.abs(linear_to_srgb(back) - linear_to_srgb(img)).max() < tol


def test_png_alpha_is_kept_linear(tmp_path):
    img = np.random.rand(10, 10, 4).astype(np.float32)
    write_image(tmp_path / "a.png", img)
    assert np.allclose(read_image(tmp_path / "a.png")[..., 3], img[..., 3], atol=1e-4)


@pytest.mark.parametrize("ext", [".exr", ".pfm", ".npy"])
def test_map_round_trip(tmp_path, ext):
    depth = np.random.uniform(0.5, 100, (17, 23)).astype(np.float32)
    write_map(tmp_path / f"d{ext}", depth)
    assert np.array_equal(read_map(tmp_path / f"d{ext}"), depth)


def test_one_channel_exr_of_any_name(tmp_path):
    depth = np.random.rand(5, 6).astype(np.float32)
    write_exr(tmp_path / "d.exr", {"distance_in_metres": depth})
    assert np.array_equal(read_map(tmp_path / "d.exr"), depth)


def blender_multilayer(path, rgba, depth):
    """A multipart EXR laid out as Blender 5.0 writes one (Combined, Depth, Noisy Image parts)."""
    parts = [
        OpenEXR.Part({"name": "ViewLayer.Combined"},
                     {f"ViewLayer.Combined.{c}": np.ascontiguousarray(rgba[..., i]) for i, c in enumerate("RGBA")}),
        OpenEXR.Part({"name": "ViewLayer.Depth"}, {"ViewLayer.Depth.Z": depth}),
        OpenEXR.Part({"name": "ViewLayer.Noisy Image"},
                     {f"ViewLayer.Noisy Image.{c}": np.zeros_like(depth) for c in "RGBA"}),
    ]
    OpenEXR.File(parts).write(str(path))


def test_blender_multilayer_exr(tmp_path):
    rgba = np.random.rand(12, 16, 4).astype(np.float32)
    depth = np.random.uniform(1, 9, (12, 16)).astype(np.float32)
    blender_multilayer(tmp_path / "ml.exr", rgba, depth)
    assert set(read_exr_channels(tmp_path / "ml.exr")) >= {"ViewLayer.Depth.Z", "ViewLayer.Combined.R"}
    assert np.array_equal(read_image(tmp_path / "ml.exr"), rgba)
    assert np.array_equal(read_map(tmp_path / "ml.exr"), depth)
    assert np.array_equal(read_map(tmp_path / "ml.exr", channel="ViewLayer.Depth.Z"), depth)


def test_ambiguous_depth_exr_asks_for_a_channel(tmp_path):
    write_exr(tmp_path / "rgb.exr", {c: np.ones((4, 4), np.float32) for c in "RGB"})
    with pytest.raises(InputError, match="--depth-channel"):
        read_map(tmp_path / "rgb.exr")
    assert read_map(tmp_path / "rgb.exr", channel="G").shape == (4, 4)


@pytest.mark.parametrize("content,name", [(b"not an image", "x.png"), (b"\x76\x2f\x31\x01garbage", "x.exr"),
                                          (b"PF\n3 3\n-1\n", "x.pfm")])
def test_corrupt_files_raise_input_error(tmp_path, content, name):
    (tmp_path / name).write_bytes(content)
    reader = read_map if name.endswith(".pfm") else read_image
    with pytest.raises(InputError):
        reader(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.exr")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.png"
    write_image(target, np.zeros((4, 4, 3), np.float32))
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half of a file")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
