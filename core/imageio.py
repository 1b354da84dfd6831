"""Reading and writing images and per-pixel maps, with nothing ever half written.

Images come back as (H, W, C) float32 scene-linear numpy arrays, C in {1, 3, 4}:

* EXR (single part, multipart and Blender's multilayer): scene-linear, read as is. From a multilayer
  file the colour is the Combined/Composite/Image layer, or the first RGB(A) part.
* PNG, JPEG, TIFF (8 or 16 bit): sRGB-encoded, linearised. Float TIFF is taken as linear.

Maps (depth in metres, disparity in pixels) come back as (H, W) float32:

* EXR: a single-channel file of any channel name, or the Z/Depth layer of a multilayer EXR.
* PFM (``Pf``/``PF``), NPY.

Reading is strict: a truncated or corrupt file is refused with one sentence naming it, never
decoded into grey rows. Structural checks (PNG chunk CRCs and IEND, JPEG markers and EOI, PFM and
NPY headers against the file size) come first; then whatever the C decoders print (libjpeg's
"Corrupt JPEG data", libpng's CRC errors, libtiff's and OpenEXR's complaints) is caught on the
process's stderr while they run and turned into an error, a few known-harmless metadata warnings
(a PNG's iCCP profile, a TIFF's unknown tag) aside. Non-finite pixels (NaN, inf) are refused
unless ``nan_policy`` asks for a repair (:data:`NAN_POLICIES`).

Writes go to a temporary file next to the target and are renamed into place, so a crash or a
Ctrl-C leaves either the old file or the new one, never a truncated one (:mod:`core.outputs`).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import OpenEXR

from .colour import linear_to_srgb, srgb_to_linear
from .errors import InputError, check, fail
from .formats import IMAGE_EXTENSIONS, MAP_EXTENSIONS, NAN_POLICIES  # re-exported: callers import them here
from .outputs import atomic_write

MAX_SIDE = 1 << 17  # pixels: far beyond any camera, small enough that a bogus header cannot ask for terabytes


def _suffix(path: str | os.PathLike[str]) -> str:
    return Path(path).suffix.lower()


def _require_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    check(p.exists(), f"{what} file not found: {p}")
    check(p.is_file(), f"{what} path is not a file: {p}")
    check(os.access(p, os.R_OK), f"{what} file is not readable: {p}")
    return p


# ------------------------------------------------------------------------------- strict decoding
_DECODE_LOCK = threading.Lock()
_OPENCV_LOG = re.compile(r"^\[\s*(WARN|ERROR|INFO|DEBUG|VERBOSE)[^\]]*\]\s*(global\s+)?(\S+:\d+\s+)?(\S+\s+)?")
# Messages that say nothing is wrong with the pixels: ancillary PNG chunks (lower-case first
# letter, e.g. "iCCP: known incorrect sRGB profile"), metadata tags libtiff does not know, and
# libjpeg's remarks on harmless marker oddities.
_HARMLESS = (
    re.compile(r"^libpng warning: [a-z][A-Za-z]{3}: "),
    re.compile(r"^libpng warning: Interlace handling should be turned on"),
    re.compile(r"^OpenCV TIFF: .*(Unknown field with tag|unknown field|ASCII value for tag|wrong data type|"
               r"tags are not sorted|TIFFFetchNormalTag|Photometric tag is missing|Sum of Photometric|"
               r"Incorrect count for|Nonstandard tile)", re.I),
    re.compile(r"^(Warning: )?(unknown JFIF revision|thumbnail image size does not match|"
               r"Invalid SOS parameters for sequential JPEG|Unsupported marker type)", re.I),
)


@contextlib.contextmanager
def _decoder_messages(tiff: bool = False) -> Iterator[list[str]]:
    """Collect what C decoders print inside the block, one entry per line.

    libjpeg, libpng and OpenEXR report damage by printing to file descriptor 2 and carrying on;
    the only way to hear them is to point that descriptor at a file while they run. OpenCV's
    libtiff handler stays silent below its debug log level, so TIFF decodes raise it. Decodes
    are serialised (descriptors are per process); where the descriptors cannot be moved (no
    stderr at all) the block runs uncaptured.
    """
    lines: list[str] = []
    with _DECODE_LOCK:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = (os.dup(1), os.dup(2))
        except (OSError, ValueError, AttributeError):
            yield lines
            return
        level = cv2.getLogLevel() if tiff else None
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                if tiff:
                    cv2.setLogLevel(5)  # OpenCV's DEBUG: the level at which its libtiff handler prints
                yield lines
            finally:
                if level is not None:
                    cv2.setLogLevel(level)
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
                sink.seek(0)
                text = sink.read(1 << 16).decode("utf-8", "replace")
                lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _first_complaint(lines: list[str]) -> str | None:
    """The first decoder line that reports damage, cleaned up, or None when all are harmless."""
    for line in lines:
        m = _OPENCV_LOG.match(line)
        if m:
            if m.group(1) in ("INFO", "DEBUG", "VERBOSE"):
                continue
            line = line[m.end():].strip() or line
        if any(h.search(line) for h in _HARMLESS):
            continue
        line = re.sub(r"^libpng (error|warning): ", "libpng: ", line)
        line = re.sub(r"^OpenCV TIFF: [^:]*: (Warning, )?(: )?", "libtiff: ", line)
        return line.rstrip(".")[:160]
    return None


def _check_png_structure(data: bytes, p: Path) -> None:
    """Every chunk whole and its CRC right, IHDR first, IEND present: a truncated or bit-flipped
    PNG fails here even where libpng would only warn."""
    check(data[:8] == b"\x89PNG\r\n\x1a\n", f"image {p} is not a PNG file (bad signature)")
    view = memoryview(data)
    pos, first = 8, True
    while True:
        check(pos + 12 <= len(data), f"image {p} is a truncated PNG (it ends before its IEND chunk)")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(data[pos + 4:pos + 8])
        check(kind.isalpha(), f"image {p} is a corrupt PNG (bad chunk type {kind!r} at byte {pos})")
        name = kind.decode("ascii")
        end = pos + 12 + length
        check(end <= len(data), f"image {p} is a truncated PNG (its {name} chunk runs past the end)")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        check(zlib.crc32(view[pos + 4:end - 4]) == crc, f"image {p} is a corrupt PNG (CRC error in its {name} chunk)")
        check(not first or kind == b"IHDR", f"image {p} is a corrupt PNG (it does not start with IHDR)")
        if kind == b"IEND":
            return
        first, pos = False, end


def _check_jpeg_structure(data: bytes, p: Path) -> None:
    """SOI first, marker segments that fit, a frame header, and an EOI after the scan data."""
    check(data[:3] == b"\xff\xd8\xff", f"image {p} is not a JPEG file (no start-of-image marker)")
    pos, frame, n = 2, False, len(data)
    while True:
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        check(pos + 4 <= n, f"image {p} is a truncated JPEG (it ends inside its headers)")
        check(data[pos] == 0xFF, f"image {p} is a corrupt JPEG (no marker at byte {pos})")
        marker = data[pos + 1]
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        check(length >= 2 and pos + 2 + length <= n, f"image {p} is a truncated JPEG (a header segment runs past "
                                                     f"the end)")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            frame = True
        if marker == 0xDA:
            check(frame, f"image {p} is a corrupt JPEG (scan data before any frame header)")
            check(data.rfind(b"\xff\xd9") > pos, f"image {p} is a truncated JPEG (no end-of-image marker)")
            return
        check(marker != 0xD9, f"image {p} is a corrupt JPEG (it ends before any scan data)")
        pos += 2 + length


def _decode_strict(p: Path, ext: str) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF file with OpenCV, refusing any file its decoder complains about."""
    data = p.read_bytes()
    check(len(data) > 0, f"cannot read image {p}: the file is empty")
    if ext == ".png":
        _check_png_structure(data, p)
    elif ext in (".jpg", ".jpeg"):
        _check_jpeg_structure(data, p)
    else:
        check(data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), f"image {p} is not a TIFF file (bad header)")
    with _decoder_messages(tiff=ext in (".tif", ".tiff")) as lines:
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    del data
    complaint = _first_complaint(lines)
    kind = {".jpeg": "JPEG", ".jpg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(ext, ext[1:].upper())
    check(complaint is None, f"image {p} is a corrupt or truncated {kind} ({complaint})")
    check(raw is not None, f"cannot read image {p} (corrupt, truncated or not a {kind} file)")
    check(raw.size > 0, f"image {p} is empty")
    return raw


# ------------------------------------------------------------------------------- non-finite pixels
def apply_nan_policy(values: np.ndarray, policy: str, name: str) -> np.ndarray:
    """Refuse or repair NaN/inf in an (H, W) or (H, W, C) float array.

    ``error`` (default everywhere): one sentence giving the count and the first bad pixel.
    ``zero``: non-finite values become 0. ``nearest``: a pixel with any non-finite channel takes
    every channel of the nearest pixel that has none (a distance transform, so any number of bad
    pixels costs one pass). Returns ``values`` (repaired in place when writable).
    """
    check(policy in NAN_POLICIES, f"unknown NaN policy {policy!r}; use one of {', '.join(NAN_POLICIES)}")
    finite = np.isfinite(values)
    if finite.all():
        return values
    bad = ~finite if values.ndim == 2 else ~finite.all(axis=-1)
    count = int(bad.sum())
    if policy == "error":
        y, x = np.unravel_index(int(np.argmax(bad)), bad.shape)
        fail(f"{name} has {count} pixel(s) that are NaN or infinite (the first at x={x}, y={y}); "
             f"repair them with --nan-policy zero or nearest")
    if not (values.flags.writeable and values.flags.c_contiguous):
        values = np.array(values, order="C")
    if policy == "zero":
        values[~finite] = 0.0
        return values
    check(count < bad.size, f"{name} has no finite pixel to repair its NaN or infinite ones from")
    good = (~bad).astype(np.uint8)
    # Distance to the nearest zero of the source: zeros are the bad pixels' complement, so invert.
    _, labels = cv2.distanceTransformWithLabels(1 - good, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    sources = np.flatnonzero(good.ravel())  # label k (1-based) is the k-th good pixel in raster order
    flat = values.reshape(bad.size, -1)
    where = np.flatnonzero(bad.ravel())
    flat[where] = flat[sources[labels.ravel()[where] - 1]]
    return values


# --------------------------------------------------------------------------------------------- EXR
def _exr_threads() -> int:
    """Threads for EXR (de)compression: the cores this process may use (the binding's default is none)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


EXR_COMPRESSIONS = ("zip", "zips", "piz", "rle", "none")


def read_exr_channels(path: str | os.PathLike[str], keep_half: bool = False) -> dict[str, np.ndarray]:
    """Every channel of every part, as (H, W) float32 arrays keyed by full channel name
    (``keep_half``: half-float channels stay float16, to convert once where they are used).

    Multipart files written by Blender name channels ``ViewLayer.Depth.Z``; a plain RGB file
    gives ``R``, ``G``, ``B``. Parts whose size differs from the first part are skipped.
    """
    p = _require_file(path, "EXR")
    error = None
    # The binding reads every pixel here, printing (not raising) what it finds damaged: a
    # truncated file loses its channels, a corrupt chunk leaves NaN behind.
    with _decoder_messages() as lines:
        try:
            exr = OpenEXR.File(str(p), separate_channels=True, num_threads=_exr_threads())
        except Exception as exc:  # the binding raises plain RuntimeError/ValueError on corrupt files
            error = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    check(error is None, f"cannot read EXR {p}: {error}")
    complaint = _first_complaint([re.sub(r"^\S*: \(EXR_ERR_\w+\) ", "", line) for line in lines])
    check(complaint is None, f"EXR {p} is corrupt or truncated ({complaint})")
    channels: dict[str, np.ndarray] = {}
    shape = None
    for part in exr.parts:
        for name, channel in part.channels.items():
            pixels = np.asarray(channel.pixels)
            if pixels.ndim != 2:
                continue
            if shape is None:
                shape = pixels.shape
            if pixels.shape != shape:
                continue
            channels[name] = pixels if keep_half and pixels.dtype == np.float16 else pixels.astype(np.float32, copy=False)
    check(bool(channels), f"EXR {p} has no readable channels")
    check(shape is not None and shape[0] > 0 and shape[1] > 0, f"EXR {p} is empty")
    return channels


def _layer_of(name: str) -> tuple[str, str]:
    """Split 'ViewLayer.Combined.R' into ('ViewLayer.Combined', 'R')."""
    if "." in name:
        layer, _, chan = name.rpartition(".")
        return layer, chan
    return "", name


def _colour_from_channels(channels: dict[str, np.ndarray], path: Path) -> np.ndarray:
    layers: dict[str, dict[str, np.ndarray]] = {}
    for name, pixels in channels.items():
        layer, chan = _layer_of(name)
        layers.setdefault(layer, {})[chan.upper()] = pixels

    def rank(layer: str) -> tuple[int, str]:
        lname = layer.lower()
        for i, key in enumerate(("composite", "combined", "image", "rgba", "")):
            if key and key in lname.split(".")[-1]:
                return (i, layer)
        return (9 if layer else 8, layer)

    for layer in sorted(layers, key=rank):
        chans = layers[layer]
        if all(k in chans for k in "RGB"):
            planes = [chans["R"], chans["G"], chans["B"]] + ([chans["A"]] if "A" in chans else [])
            return np.stack(planes, axis=-1)
    if len(channels) == 1:
        return next(iter(channels.values()))[..., None]
    for layer, chans in layers.items():
        if "Y" in chans:
            return chans["Y"][..., None]
    fail(f"EXR {path} has no RGB or RGBA layer (channels: {', '.join(sorted(channels)[:8])})")


def _depth_from_channels(channels: dict[str, np.ndarray], path: Path, channel: str | None) -> np.ndarray:
    if channel is not None:
        if channel in channels:
            return channels[channel]
        matches = [n for n in channels if n.endswith("." + channel) or n.lower() == channel.lower()]
        check(len(matches) == 1, f"EXR {path} has no unique channel {channel!r} "
                                 f"(channels: {', '.join(sorted(channels)[:12])})")
        return channels[matches[0]]
    if len(channels) == 1:
        return next(iter(channels.values()))
    candidates = []
    for name in channels:
        layer, chan = _layer_of(name)
        last_layer = layer.rpartition(".")[2].lower()
        if chan.lower() in ("z", "depth") or last_layer in ("depth", "z"):
            candidates.append(name)
    if len(candidates) == 1:
        return channels[candidates[0]]
    if candidates:
        # Prefer a pass literally called Depth, then any Z.
        for name in candidates:
            if _layer_of(name)[0].rpartition(".")[2].lower() == "depth":
                return channels[name]
        return channels[sorted(candidates)[0]]
    fail(f"EXR {path} has several channels and none named Z or Depth; pick one with --depth-channel "
         f"(channels: {', '.join(sorted(channels)[:12])})")


def write_exr(path: str | os.PathLike[str], channels: dict[str, np.ndarray], half: bool = False,
              compression: str = "zip") -> None:
    """Write named (H, W) channels to a single-part EXR, atomically, compressing on every core.

    Args:
        channels: e.g. ``{"R": r, "G": g, "B": b}`` or ``{"Z": depth}``; all the same shape.
        half: store 16-bit floats (enough for colour, not for depth).
        compression: one of EXR_COMPRESSIONS (lossless). ZIP shrinks half floats about 3x but
            32-bit floats of a rendered image only about 10 %, at several times the cost of writing
            them uncompressed.
    """
    check(compression in EXR_COMPRESSIONS, f"unknown EXR compression {compression!r}; use one of "
                                           f"{', '.join(EXR_COMPRESSIONS)}")
    dtype = np.float16 if half else np.float32
    data = {name: np.ascontiguousarray(values, dtype=dtype) for name, values in channels.items()}
    shapes = {v.shape for v in data.values()}
    check(len(shapes) == 1, f"EXR channels differ in size: {shapes}")
    codec = {"zip": OpenEXR.ZIP_COMPRESSION, "zips": OpenEXR.ZIPS_COMPRESSION, "piz": OpenEXR.PIZ_COMPRESSION,
             "rle": OpenEXR.RLE_COMPRESSION, "none": OpenEXR.NO_COMPRESSION}[compression]
    header = {"compression": codec, "type": OpenEXR.scanlineimage}
    with atomic_write(path) as tmp:
        try:
            OpenEXR.File(header, data, num_threads=_exr_threads()).write(str(tmp))
        except (OSError, RuntimeError) as exc:  # a full disk or a vanished folder
            fail(f"cannot write EXR {path}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}")


# --------------------------------------------------------------------------------------------- PFM
def _pfm_header(head: bytes, p: Path) -> tuple[bytes, int, int, float, int]:
    """(kind, width, height, scale, offset of the first pixel byte) of a PFM header."""
    pos, tokens = 0, []
    while len(tokens) < 4:
        while pos < len(head) and head[pos:pos + 1].isspace():
            pos += 1
        if head[pos:pos + 1] == b"#":  # a comment, as some writers put after the size
            end = head.find(b"\n", pos)
            check(end >= 0, f"PFM {p} has a malformed header (an unterminated comment)")
            pos = end + 1
            continue
        start = pos
        while pos < len(head) and not head[pos:pos + 1].isspace():
            pos += 1
        check(pos < len(head) and pos > start, f"PFM {p} has a truncated or malformed header")
        tokens.append(head[start:pos])
    kind, w, h, scale_text = tokens
    check(kind in (b"Pf", b"PF"), f"{p} is not a PFM file (header {kind[:8]!r}; expected Pf or PF)")
    dims = []
    for label, token in (("width", w), ("height", h)):
        check(token.isdigit(), f"PFM {p} has a bad {label} {token[:12].decode('latin-1')!r} "
                               f"(expected a positive whole number)")
        value = int(token)
        check(0 < value <= MAX_SIDE, f"PFM {p} has a bad {label} {value} (expected 1 to {MAX_SIDE})")
        dims.append(value)
    try:
        scale = float(scale_text)
    except ValueError:
        fail(f"PFM {p} has a bad scale {scale_text[:16].decode('latin-1')!r} (expected a non-zero number)")
    check(np.isfinite(scale) and scale != 0.0, f"PFM {p} has a bad scale {scale_text[:16].decode('latin-1')!r} "
                                               f"(expected a finite, non-zero number)")
    return kind, dims[0], dims[1], scale, pos + 1  # exactly one whitespace byte ends the header


def read_pfm(path: str | os.PathLike[str]) -> np.ndarray:
    """A PFM file as (H, W) or (H, W, 3) float32, top row first.

    Strict: ``Pf``/``PF``, positive width and height, a finite non-zero scale (its sign gives the
    byte order) and exactly width x height x channels floats after the header.
    """
    p = _require_file(path, "PFM")
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(1024)
        kind, width, height, scale, offset = _pfm_header(head, p)
        channels = 3 if kind == b"PF" else 1
        expected = width * height * channels * 4
        # A CRLF after the scale (some Windows writers) leaves one byte too many: skip it.
        if size - offset == expected + 1 and head[offset - 1:offset + 1] == b"\r\n":
            offset += 1
        check(size - offset >= expected, f"PFM {p} is truncated: {max(size - offset, 0)} bytes of pixels, "
                                         f"{expected} expected for {width}x{height}x{channels}")
        check(size - offset == expected, f"PFM {p} has {size - offset - expected} bytes after its "
                                         f"{width}x{height}x{channels} pixels")
        f.seek(offset)
        data = np.fromfile(f, dtype=("<" if scale < 0 else ">") + "f4", count=width * height * channels)
    check(data.size == width * height * channels, f"PFM {p} is truncated")
    data = data.reshape(height, width, channels)[::-1].astype(np.float32)
    return data[..., 0] if channels == 1 else data


def write_pfm(path: str | os.PathLike[str], values: np.ndarray) -> None:
    """Write (H, W) or (H, W, 3) float32 as little-endian PFM, atomically."""
    v = np.asarray(values, dtype=np.float32)
    check(v.ndim == 2 or (v.ndim == 3 and v.shape[2] == 3), f"PFM takes (H, W) or (H, W, 3), got {v.shape}")
    kind = b"PF" if v.ndim == 3 else b"Pf"
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(kind + b"\n" + f"{v.shape[1]} {v.shape[0]}\n-1.0\n".encode())
        flipped = v[::-1]  # PFM stores the bottom row first
        for y in range(0, v.shape[0], 256):  # in bands of rows: no full-frame copies
            f.write(np.ascontiguousarray(flipped[y:y + 256], dtype="<f4").tobytes())


# ------------------------------------------------------------------------------------------ images
def read_image(path: str | os.PathLike[str], nan_policy: str = "error", keep_half: bool = False) -> np.ndarray:
    """An image as (H, W, C) float32 scene-linear, C in {1, 3, 4}.

    ``keep_half``: an EXR whose colour is all half floats comes back float16 (no conversion here;
    the caller converts once, and can write its result as half too).

    EXR is read as linear; 8/16-bit PNG, JPEG and TIFF are sRGB and are linearised (alpha is not).
    Corrupt or truncated files raise :class:`InputError` (module doc); NaN/inf pixels (EXR, float
    TIFF) are handled by ``nan_policy`` (:func:`apply_nan_policy`).
    """
    check(nan_policy in NAN_POLICIES, f"unknown NaN policy {nan_policy!r}; use one of {', '.join(NAN_POLICIES)}")
    p = _require_file(path, "image")
    ext = _suffix(p)
    check(ext in IMAGE_EXTENSIONS, f"unsupported image type {ext or '(none)'} for {p}; "
                                   f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    if ext == ".exr":
        image = _colour_from_channels(read_exr_channels(p, keep_half), p)
        if not (keep_half and image.dtype == np.float16):
            image = image.astype(np.float32, copy=False)
        return apply_nan_policy(image, nan_policy, f"image {p}")
    raw = _decode_strict(p, ext)
    if raw.ndim == 2:
        raw = raw[..., None]
    check(raw.ndim == 3 and raw.shape[2] in (1, 2, 3, 4), f"image {p} has {raw.shape[-1]} channels; "
                                                          f"expected 1, 3 or 4")
    if raw.shape[2] == 2:  # grey + alpha
        raw = raw[..., [0, 0, 0, 1]]
    elif raw.shape[2] >= 3:
        order = [2, 1, 0] + ([3] if raw.shape[2] == 4 else [])
        raw = raw[..., order]
    if raw.dtype not in (np.uint8, np.uint16):
        check(np.issubdtype(raw.dtype, np.floating), f"image {p} has unsupported samples ({raw.dtype})")
        return apply_nan_policy(raw.astype(np.float32), nan_policy, f"image {p}")  # float TIFF: already linear
    # A lookup table per code value: the same numbers as srgb_to_linear(raw / scale), with no
    # full-frame temporaries (an 8000x6000 frame would need three).
    scale = 255 if raw.dtype == np.uint8 else 65535
    levels = np.arange(scale + 1, dtype=np.float32) / np.float32(scale)
    values = srgb_to_linear(levels)[raw]
    if raw.shape[2] == 4:
        values[..., 3] = levels[raw[..., 3]]  # alpha stays linear
    return values


def write_image(path: str | os.PathLike[str], image: np.ndarray, bit_depth: int | None = None,
                exr_compression: str = "zip") -> None:
    """Write a (H, W, C) scene-linear image, format by extension, atomically.

    ``exr_compression``: see :func:`write_exr`.

    EXR: 32-bit float (``bit_depth=16`` for half), linear. PNG: 16-bit sRGB by default
    (``bit_depth=8`` for 8-bit). TIFF: 16-bit sRGB. JPEG: 8-bit sRGB (alpha dropped).
    Integer formats clip to [0, 1] after sRGB encoding.
    """
    ext = _suffix(path)
    check(ext in IMAGE_EXTENSIONS, f"unknown output extension {ext or '(none)'} for {path}; "
                                   f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    check(img.ndim == 3 and img.shape[2] in (1, 3, 4), f"image must be (H, W, 1|3|4), got {img.shape}")
    if ext == ".exr":
        names = {1: "Y", 3: "RGB", 4: "RGBA"}[img.shape[2]]
        write_exr(path, {n: img[..., i] for i, n in enumerate(names)}, half=bit_depth == 16,
                  compression=exr_compression)
        return
    if ext in (".jpg", ".jpeg"):
        check(bit_depth in (None, 8), "JPEG is 8-bit only")
        depth = 8
        img = img[..., :3] if img.shape[2] == 4 else img
    elif ext == ".png":
        depth = bit_depth or 16
    else:
        depth = bit_depth or 16
    check(depth in (8, 16), f"bit depth must be 8 or 16, got {depth}")
    scale, dtype = (255.0, np.uint8) if depth == 8 else (65535.0, np.uint16)
    colour = min(img.shape[2], 3)
    order = ([2, 1, 0] + ([3] if img.shape[2] == 4 else [])) if img.shape[2] >= 3 else [0]
    out = np.empty(img.shape, dtype)
    for y in range(0, img.shape[0], 256):  # in bands of rows: the float temporaries stay small
        band = img[y:y + 256].copy()
        band[..., :colour] = linear_to_srgb(band[..., :colour])
        out[y:y + 256] = np.round(np.clip(band, 0.0, 1.0) * scale)[..., order]
    with atomic_write(path) as tmp:
        # Full-resolution chroma: 4:2:0 subsampling smears colour edges that a refocus must keep.
        params = ([cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
                  if ext in (".jpg", ".jpeg") else [])
        check(cv2.imwrite(str(tmp), out, params), f"cannot write {path}")


# -------------------------------------------------------------------------------------------- maps
def _read_npy(p: Path, what: str) -> np.ndarray:
    """An NPY file's array, its header checked against the file's size before anything is read."""
    try:
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            check(version in ((1, 0), (2, 0), (3, 0)), f"{what} NPY {p} has an unknown format version {version}")
            # Version 3 only differs in allowing UTF-8 field names, which a map cannot have anyway.
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            offset = f.tell()
    except InputError:
        raise
    except Exception as exc:  # numpy raises ValueError with several lines for a bad header
        fail(f"cannot read NPY {p}: bad header ({str(exc).strip().splitlines()[0][:120] if str(exc).strip() else exc})")
    check(dtype.fields is None and dtype.kind in "biuf", f"{what} NPY {p} is not real numbers ({dtype})")
    check(all(0 < d <= MAX_SIDE for d in shape), f"{what} NPY {p} has shape {shape}; expected (H, W) with "
                                                 f"1 to {MAX_SIDE} pixels a side")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = p.stat().st_size
    check(size - offset >= expected, f"{what} NPY {p} is truncated: {size - offset} bytes of data, "
                                     f"{expected} expected for shape {shape}")
    return np.load(p, allow_pickle=False)


def _as_2d(values: np.ndarray, p: Path, what: str) -> np.ndarray:
    """(H, W) from (H, W), (1, H, W), (H, W, 1) or any other padding of length-one axes.

    Only axes beyond the last two are dropped (leading first), so a 1x1 or a 1-row map stays one.
    """
    shape = values.shape
    while values.ndim > 2 and values.shape[0] == 1:
        values = values[0]
    while values.ndim > 2 and values.shape[-1] == 1:
        values = values[..., 0]
    check(values.ndim == 2, f"{what} NPY {p} has shape {shape}; expected (H, W)")
    return values


def read_map(path: str | os.PathLike[str], channel: str | None = None, what: str = "depth",
             nan_policy: str | None = None) -> np.ndarray:
    """A per-pixel map (depth in metres, disparity in pixels) as (H, W) float32.

    Args:
        channel: EXR channel name to use (full ``ViewLayer.Depth.Z`` or just ``Z``); by default a
            one-channel EXR's only channel, else the Z/Depth layer.
        nan_policy: None keeps NaN/inf as they are (ground truth marks invalid pixels so);
            otherwise one of :data:`NAN_POLICIES` (:func:`apply_nan_policy`).
    """
    p = _require_file(path, what)
    ext = _suffix(p)
    check(ext in MAP_EXTENSIONS, f"unsupported {what} type {ext or '(none)'} for {p}; "
                                 f"use one of {', '.join(MAP_EXTENSIONS)}")
    if ext == ".exr":
        values = _depth_from_channels(read_exr_channels(p), p, channel)
    elif ext == ".pfm":
        values = read_pfm(p)
        check(values.ndim == 2, f"{what} PFM {p} has 3 channels; expected one")
    else:
        values = _as_2d(_read_npy(p, what), p, what)
    values = np.asarray(values, dtype=np.float32)
    check(values.size > 0, f"{what} {p} is empty")
    return values if nan_policy is None else apply_nan_policy(values, nan_policy, f"{what} {p}")


def write_map(path: str | os.PathLike[str], values: np.ndarray, channel: str = "Z") -> None:
    """Write an (H, W) float map by extension (EXR channel ``channel``, PFM, NPY), atomically."""
    ext = _suffix(path)
    check(ext in MAP_EXTENSIONS, f"unknown output extension {ext or '(none)'} for {path}; "
                                 f"use one of {', '.join(MAP_EXTENSIONS)}")
    v = np.asarray(values, dtype=np.float32)
    check(v.ndim == 2, f"a map must be (H, W), got {v.shape}")
    if ext == ".exr":
        write_exr(path, {channel: v})
    elif ext == ".pfm":
        write_pfm(path, v)
    else:
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.save(f, v)


def image_shape(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """(H, W, C) of an image or map from its header alone (PNG, JPEG, EXR, PFM, NPY), else None.

    For planning memory before a frame is decoded; a file whose header cannot be read gives None
    (the reader then says what is wrong with it).
    """
    p = Path(path)
    ext = _suffix(p)
    try:
        with open(p, "rb") as f:
            head = f.read(1 << 16)
        if ext == ".png" and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", head, 16)
            return h, w, {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(head[25], 3)
        if ext in (".jpg", ".jpeg") and head[:2] == b"\xff\xd8":
            pos = 2
            while pos + 9 < len(head) and head[pos] == 0xFF:
                marker, length = head[pos + 1], struct.unpack_from(">H", head, pos + 2)[0]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    h, w = struct.unpack_from(">HH", head, pos + 5)
                    return h, w, head[pos + 9]
                pos += 2 + length
            return None
        if ext == ".exr":
            header = OpenEXR.File(str(p), header_only=True).header()
            (x0, y0), (x1, y1) = header["dataWindow"]
            return int(y1 - y0 + 1), int(x1 - x0 + 1), 4
        if ext == ".pfm":
            kind, w, h, _, _ = _pfm_header(head, p)
            return h, w, 3 if kind == b"PF" else 1
        if ext == ".npy":
            import io

            f2 = io.BytesIO(head)
            version = np.lib.format.read_magic(f2)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = reader(f2)[0]
            dims = [d for d in shape if d != 1] or [1, 1]
            return (dims[0], dims[1], 1) if len(dims) == 2 else None
    except Exception:  # a damaged header: the full read reports it properly
        return None
    return None


def is_image_path(path: str | os.PathLike[str]) -> bool:
    return _suffix(path) in IMAGE_EXTENSIONS
