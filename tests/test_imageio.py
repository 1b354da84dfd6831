"""Image and map I/O: round trips for every format, Blender's multilayer EXR, atomic writes."""

from __future__ import annotations

import re

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


# ------------------------------------------------------------------------------ strict decoding
def smooth_image(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), 0.5 + 0.4 * np.sin(x / 5) * np.cos(y / 7)], -1) ** 2.2


def damaged(data: bytes, how: str) -> bytes:
    """A truncation or an 8-byte 0xFF run in the middle of the file (inside the pixel data)."""
    if how == "truncated":
        return data[: len(data) * 2 // 3]
    mid = len(data) * 2 // 3
    return data[:mid] + b"\xff" * 8 + data[mid + 8:]


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".exr"])
@pytest.mark.parametrize("how", ["truncated", "overwritten"])
def test_damaged_images_are_refused(tmp_path, ext, how):
    write_image(tmp_path / f"a{ext}", smooth_image())
    bad = tmp_path / f"b{ext}"
    bad.write_bytes(damaged((tmp_path / f"a{ext}").read_bytes(), how))
    with pytest.raises(InputError, match=r"b\.") as info:
        read_image(bad)
    assert "\n" not in str(info.value)
    assert read_image(tmp_path / f"a{ext}").shape == (48, 64, 3)  # the intact file still reads


def test_png_bit_flips_are_all_caught(tmp_path):
    # PNG has a CRC per chunk: every single-bit flip past the signature must be refused.
    write_image(tmp_path / "a.png", smooth_image(16, 16), bit_depth=8)
    data = (tmp_path / "a.png").read_bytes()
    for offset in range(8, len(data), max(1, len(data) // 40)):
        flipped = bytearray(data)
        flipped[offset] ^= 0x04
        (tmp_path / "f.png").write_bytes(bytes(flipped))
        with pytest.raises(InputError):
            read_image(tmp_path / "f.png")


def test_libjpeg_warning_is_an_error(tmp_path):
    # A 0xFF run inside the scan data makes libjpeg print "Corrupt JPEG data" and fill grey rows.
    write_image(tmp_path / "a.jpg", smooth_image(64, 96))
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "b.jpg").write_bytes(data[:-300] + b"\xff" * 8 + data[-292:])
    with pytest.raises(InputError, match="Corrupt JPEG data"):
        read_image(tmp_path / "b.jpg")


def test_harmless_png_warning_is_not_an_error(tmp_path):
    # An sRGB PNG whose iCCP profile libpng dislikes still decodes exactly.
    import struct
    import zlib

    write_image(tmp_path / "a.png", smooth_image(8, 8), bit_depth=8)
    data = (tmp_path / "a.png").read_bytes()
    body = b"bad profile\x00\x00" + zlib.compress(b"not an ICC profile")
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    (tmp_path / "b.png").write_bytes(data[:33] + chunk + data[33:])  # right after IHDR
    assert np.array_equal(read_image(tmp_path / "b.png"), read_image(tmp_path / "a.png"))


# -------------------------------------------------------------------------------- non-finite
def test_non_finite_pixels_are_refused_or_repaired(tmp_path):
    img = np.random.rand(10, 12, 3).astype(np.float32)
    img[2, 3, 1] = np.nan
    img[7, 9, 0] = np.inf
    write_image(tmp_path / "n.exr", img)
    with pytest.raises(InputError, match=r"2 pixel\(s\) that are NaN or infinite \(the first at x=3, y=2\)"):
        read_image(tmp_path / "n.exr")
    zero = read_image(tmp_path / "n.exr", nan_policy="zero")
    assert zero[2, 3, 1] == 0 and zero[7, 9, 0] == 0 and zero[2, 3, 0] == img[2, 3, 0]
    nearest = read_image(tmp_path / "n.exr", nan_policy="nearest")
    assert np.isfinite(nearest).all()
    # Every channel of a bad pixel comes from one neighbour at distance 1.
    candidates = [img[2 + dy, 3 + dx] for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))]
    assert any(np.array_equal(nearest[2, 3], c) for c in candidates)
    with pytest.raises(InputError, match="NaN policy"):
        read_image(tmp_path / "n.exr", nan_policy="ignore")


def test_nearest_repair_of_a_map(tmp_path):
    depth = np.full((5, 5), 2.0, np.float32)
    depth[:, 3:] = 7.0
    depth[2, 3] = np.nan
    depth[0, 4] = -np.inf
    write_map(tmp_path / "d.npy", depth)
    assert np.isnan(read_map(tmp_path / "d.npy")[2, 3])  # maps keep NaN unless asked (ground truth)
    fixed = read_map(tmp_path / "d.npy", nan_policy="nearest")
    assert fixed[0, 4] == 7.0 and fixed[2, 3] in (2.0, 7.0)


# --------------------------------------------------------------------------------- PFM and NPY
PIXELS = np.arange(6, dtype="<f4").tobytes()


@pytest.mark.parametrize("content,message", [
    (b"PX\n3 2\n-1.0\n" + PIXELS, "not a PFM file"),
    (b"Pf\n-3 2\n-1.0\n" + PIXELS, "bad width '-3'"),
    (b"Pf\n3 0\n-1.0\n" + PIXELS, "bad height 0"),
    (b"Pf\n3 x\n-1.0\n" + PIXELS, "bad height 'x'"),
    (b"Pf\n3 2\nabc\n" + PIXELS, "bad scale 'abc'"),
    (b"Pf\n3 2\n0.0\n" + PIXELS, "bad scale '0.0'"),
    (b"Pf\n3 2\ninf\n" + PIXELS, "bad scale 'inf'"),
    (b"Pf\n3 2\n-1.0\n" + PIXELS[:-5], "truncated: 19 bytes of pixels, 24 expected"),
    (b"Pf\n3 2\n-1.0\n" + PIXELS + b"junk", "4 bytes after its 3x2x1 pixels"),
    (b"Pf\n3", "truncated or malformed header"),
    (b"Pf\n200000 200000\n-1\n" + PIXELS, "bad width 200000"),
])
def test_malformed_pfm(tmp_path, content, message):
    (tmp_path / "m.pfm").write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)) as info:
        read_map(tmp_path / "m.pfm")
    assert "m.pfm" in str(info.value)


def test_pfm_variants_that_are_valid(tmp_path):
    expect = np.arange(6, dtype=np.float32).reshape(2, 3)[::-1]
    for content in (b"Pf\n3 2\n-1.0\n" + PIXELS, b"Pf\r\n3 2\r\n-1.0\r\n" + PIXELS,
                    b"Pf\n# written by hand\n3 2\n-0.5\n" + PIXELS,
                    b"Pf\n3 2\n1.0\n" + np.arange(6, dtype=">f4").tobytes()):
        (tmp_path / "v.pfm").write_bytes(content)
        assert np.array_equal(read_map(tmp_path / "v.pfm"), expect)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (1, 3, 4), (3, 4, 1), (1, 3, 4, 1)])
def test_small_and_padded_npy_maps_are_valid(tmp_path, shape):
    values = np.random.rand(*shape).astype(np.float64)
    np.save(tmp_path / "s.npy", values)
    out = read_map(tmp_path / "s.npy")
    assert out.dtype == np.float32 and out.ndim == 2 and out.size == values.size


def npy_with_header(shape: str, dtype: str = "<f4", data: bytes = b"") -> bytes:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


@pytest.mark.parametrize("content,message", [
    (npy_with_header("(5,)", data=bytes(20)), r"shape \(5,\); expected \(H, W\)"),
    (npy_with_header("()", data=bytes(4)), r"shape \(\); expected \(H, W\)"),
    (npy_with_header("(3, 4, 2)", data=bytes(96)), r"shape \(3, 4, 2\)"),
    (npy_with_header("(-4, 4)", data=bytes(64)), r"shape \(-4, 4\)"),
    (npy_with_header("(0, 4)"), r"shape \(0, 4\)"),
    (npy_with_header("(40, 40)", data=bytes(100)), "truncated: 100 bytes of data, 6400 expected"),
    (npy_with_header("(2, 2)", dtype="<c8", data=bytes(32)), "not real numbers"),
    (npy_with_header("(2, 2)", dtype="|O", data=bytes(32)), "not real numbers"),
    (b"\x93NUMPY\x01\x00\x50", "bad header"),
    (b"not numpy at all", "bad header"),
])
def test_malformed_npy(tmp_path, content, message):
    (tmp_path / "m.npy").write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_map(tmp_path / "m.npy")
    assert "m.npy" in str(info.value) and "\n" not in str(info.value)


def test_atomic_write_uses_the_shared_temporary_naming(tmp_path):
    from core.outputs import TEMP_TAG

    seen = []
    with atomic_write(tmp_path / "x.exr") as tmp:
        seen.append(tmp.name)
        tmp.write_bytes(b"ok")
    assert seen[0].startswith(".x.exr.") and f".{TEMP_TAG}.exr" in seen[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.exr"]
