"""Reading and writing images and per-pixel maps, with nothing ever half written.

Images come back as (H, W, C) float32 scene-linear numpy arrays, C in {1, 3, 4}:

* EXR (single part, multipart and Blender's multilayer): scene-linear, read as is. From a multilayer
  file the colour is the Combined/Composite/Image layer, or the first RGB(A) part.
* PNG, JPEG, TIFF (8 or 16 bit): sRGB-encoded, linearised. Float TIFF is taken as linear.

Maps (depth in metres, disparity in pixels) come back as (H, W) float32:

* EXR: a single-channel file of any channel name, or the Z/Depth layer of a multilayer EXR.
* PFM (``Pf``/``PF``), NPY.

Writes go to a temporary file next to the target and are renamed into place, so a crash or a
Ctrl-C leaves either the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import OpenEXR

from .colour import linear_to_srgb, srgb_to_linear
from .errors import check, fail

IMAGE_EXTENSIONS = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAP_EXTENSIONS = (".exr", ".pfm", ".npy")


def _suffix(path: str | os.PathLike[str]) -> str:
    return Path(path).suffix.lower()


def _require_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    check(p.exists(), f"{what} file not found: {p}")
    check(p.is_file(), f"{what} path is not a file: {p}")
    check(os.access(p, os.R_OK), f"{what} file is not readable: {p}")
    return p


# --------------------------------------------------------------------------------------------- EXR
def read_exr_channels(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every channel of every part, as (H, W) float32 arrays keyed by full channel name.

    Multipart files written by Blender name channels ``ViewLayer.Depth.Z``; a plain RGB file
    gives ``R``, ``G``, ``B``. Parts whose size differs from the first part are skipped.
    """
    p = _require_file(path, "EXR")
    try:
        exr = OpenEXR.File(str(p), separate_channels=True)
    except Exception as exc:  # the binding raises plain RuntimeError/ValueError on corrupt files
        fail(f"cannot read EXR {p}: {exc}")
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
            channels[name] = pixels.astype(np.float32, copy=False)
    check(bool(channels), f"EXR {p} has no readable channels")
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


def write_exr(path: str | os.PathLike[str], channels: dict[str, np.ndarray], half: bool = False) -> None:
    """Write named (H, W) channels to a single-part EXR (ZIP compressed), atomically.

    Args:
        channels: e.g. ``{"R": r, "G": g, "B": b}`` or ``{"Z": depth}``; all the same shape.
        half: store 16-bit floats (enough for colour, not for depth).
    """
    dtype = np.float16 if half else np.float32
    data = {name: np.ascontiguousarray(values, dtype=dtype) for name, values in channels.items()}
    shapes = {v.shape for v in data.values()}
    check(len(shapes) == 1, f"EXR channels differ in size: {shapes}")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_write(path) as tmp:
        OpenEXR.File(header, data).write(str(tmp))


# --------------------------------------------------------------------------------------------- PFM
def read_pfm(path: str | os.PathLike[str]) -> np.ndarray:
    """A PFM file as (H, W) or (H, W, 3) float32, top row first."""
    p = _require_file(path, "PFM")
    with open(p, "rb") as f:
        kind = f.readline().strip()
        check(kind in (b"Pf", b"PF"), f"{p} is not a PFM file (header {kind[:8]!r})")
        dims = f.readline().split()
        while dims and dims[0].startswith(b"#"):
            dims = f.readline().split()
        check(len(dims) == 2, f"PFM {p} has a malformed size line")
        width, height = int(dims[0]), int(dims[1])
        scale = float(f.readline().strip())
        endian = "<" if scale < 0 else ">"
        channels = 3 if kind == b"PF" else 1
        data = np.fromfile(f, dtype=endian + "f4")
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
        f.write(np.ascontiguousarray(v[::-1]).astype("<f4").tobytes())


# ------------------------------------------------------------------------------------------ images
def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image as (H, W, C) float32 scene-linear, C in {1, 3, 4}.

    EXR is read as linear; 8/16-bit PNG, JPEG and TIFF are sRGB and are linearised (alpha is not).
    """
    p = _require_file(path, "image")
    ext = _suffix(p)
    check(ext in IMAGE_EXTENSIONS, f"unsupported image type {ext or '(none)'} for {p}; "
                                   f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    if ext == ".exr":
        return _colour_from_channels(read_exr_channels(p), p).astype(np.float32)
    raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    check(raw is not None, f"cannot read image {p} (corrupt or not a {ext[1:].upper()} file)")
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.shape[2] >= 3:
        order = [2, 1, 0] + ([3] if raw.shape[2] == 4 else [])
        raw = raw[..., order]
    if raw.dtype == np.uint8:
        values = raw.astype(np.float32) / 255.0
    elif raw.dtype == np.uint16:
        values = raw.astype(np.float32) / 65535.0
    else:
        return raw.astype(np.float32)  # float TIFF: already linear
    colour = min(values.shape[2], 3)
    values[..., :colour] = srgb_to_linear(values[..., :colour])
    return values


def write_image(path: str | os.PathLike[str], image: np.ndarray, bit_depth: int | None = None) -> None:
    """Write a (H, W, C) scene-linear image, format by extension, atomically.

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
        write_exr(path, {n: img[..., i] for i, n in enumerate(names)}, half=bit_depth == 16)
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
    encoded = img.copy()
    colour = min(img.shape[2], 3)
    encoded[..., :colour] = linear_to_srgb(img[..., :colour])
    encoded = np.clip(encoded, 0.0, 1.0)
    scale, dtype = (255.0, np.uint8) if depth == 8 else (65535.0, np.uint16)
    out = np.round(encoded * scale).astype(dtype)
    if out.shape[2] >= 3:
        order = [2, 1, 0] + ([3] if out.shape[2] == 4 else [])
        out = out[..., order]
    with atomic_write(path) as tmp:
        # Full-resolution chroma: 4:2:0 subsampling smears colour edges that a refocus must keep.
        params = ([cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
                  if ext in (".jpg", ".jpeg") else [])
        check(cv2.imwrite(str(tmp), out, params), f"cannot write {path}")


# -------------------------------------------------------------------------------------------- maps
def read_map(path: str | os.PathLike[str], channel: str | None = None, what: str = "depth") -> np.ndarray:
    """A per-pixel map (depth in metres, disparity in pixels) as (H, W) float32.

    Args:
        channel: EXR channel name to use (full ``ViewLayer.Depth.Z`` or just ``Z``); by default a
            one-channel EXR's only channel, else the Z/Depth layer.
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
        try:
            values = np.load(p, allow_pickle=False)
        except Exception as exc:
            fail(f"cannot read NPY {p}: {exc}")
        values = np.squeeze(values)
        check(values.ndim == 2, f"{what} NPY {p} must be 2-D after squeezing, got shape {values.shape}")
        check(np.issubdtype(values.dtype, np.number), f"{what} NPY {p} is not numeric ({values.dtype})")
    return np.asarray(values, dtype=np.float32)


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


# ---------------------------------------------------------------------------------------- atomics
@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    The temporary name keeps the extension, because encoders (OpenCV) choose the format from it.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    check(parent.is_dir(), f"output folder does not exist: {parent}")
    tmp = parent / f".{target.stem}.{os.getpid()}.tmp{target.suffix}"
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def is_image_path(path: str | os.PathLike[str]) -> bool:
    return _suffix(path) in IMAGE_EXTENSIONS
