"""A preview grid of a dataset a person can look at: one row per sample (no bpy).

Each row shows what the sample holds: the all-in-focus image, its depth as a colour map (turbo on
inverse depth: red near, blue far), then the kind's own images (focal-stack slices, DeepLens
layers over grey and depth-of-field renders, the stereo pair and its disparity, sweep frames).
Tiles are labelled with what they show (focus distance, f-stop, disparity range).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from core.imageio import read_image, read_map

from . import dataset_io as io
from .sheet import caption, grid, tile, write_png


def depth_tile(depth: np.ndarray, near: float | None = None, far: float | None = None) -> np.ndarray:
    """(H, W) planar depth in metres as an (H, W, 3) uint8 sRGB turbo map of inverse depth."""
    valid = depth[np.isfinite(depth) & (depth > 0)]
    near = float(valid.min()) if near is None else near
    far = float(valid.max()) if far is None else far
    inv = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-9), 0.0)
    span = max(1.0 / near - 1.0 / far, 1e-9)
    grey = np.clip((inv - 1.0 / far) / span, 0.0, 1.0)
    return cv2.applyColorMap(np.round(grey * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]


def value_tile(values: np.ndarray) -> np.ndarray:
    """(H, W) values (disparity, normalised inverse depth) as a turbo map from their min to max."""
    low, high = float(values.min()), float(values.max())
    grey = (values - low) / max(high - low, 1e-9)
    return cv2.applyColorMap(np.round(grey * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]


def rgba_tile(rgba: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA over a mid-grey checkerboard, so that the layer's coverage shows."""
    h, w = rgba.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 0.18, 0.32).astype(np.float32)[..., None]
    return tile(rgba[..., :3] + (1.0 - rgba[..., 3:4]) * board)


def _row(folder: Path, record: dict) -> list[np.ndarray]:
    kind = record["kind"]
    if kind == "stereo":
        disparity = read_map(folder / "disparity_left.exr")
        return [caption(tile(read_image(folder / "left.exr")), "left"),
                caption(tile(read_image(folder / "right.exr")), "right"),
                caption(value_tile(disparity), f"disparity {disparity.min():.1f}-{disparity.max():.1f} px"),
                caption(depth_tile(read_map(folder / "depth_left.exr")), f"depth {record['depth_range'][0]:.1f}-"
                                                                         f"{record['depth_range'][1]:.1f} m")]
    if kind == "track":  # blender_scenes.kind_track: frames with the subject's box and its distance
        frames = record["frames"]
        picks = sorted({0, len(frames) // 3, record["occluder"]["cross_frame"], 2 * len(frames) // 3,
                        len(frames) - 1})
        row = [caption(depth_tile(read_map(folder / frames[0]["depth_file"])), "depth, frame 0")]
        for t in picks:
            image = tile(read_image(folder / frames[t]["file"]))
            x0, y0, x1, y1 = frames[t]["box"]
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (40, 230, 40), 1)
            row.append(caption(image, f"frame {t}: {frames[t]['subject_depth_m']:.2f} m"))
        return row
    if kind == "sweep":
        frames = record["frames"]
        picks = sorted({0, len(frames) // 3, 2 * len(frames) // 3, len(frames) - 1})
        row = [caption(tile(read_image(folder / frames[0]["aif_file"])), "all in focus, frame 0"),
               caption(depth_tile(read_map(folder / frames[0]["depth_file"])), "depth, frame 0")]
        return row + [caption(tile(read_image(folder / frames[t]["file"])),
                              f"frame {t}: focus {frames[t]['focus_distance']:.2f} m") for t in picks]
    near, far = record["depth_range"]
    row = [caption(tile(read_image(folder / "image.exr")), "all in focus"),
           caption(depth_tile(read_map(folder / "depth.exr")), f"depth {near:.2f}-{far:.2f} m")]
    if kind == "defocusnet":
        row += [caption(tile(read_image(folder / s["file"])), f"focus {s['focus_distance']:.2f} m f/{s['f_stop']:g}")
                for s in record["slices"]]
    elif kind == "mono":
        row.append(caption(value_tile(read_map(folder / "mask.exr", what="mask")), "foreground mask"))
    else:  # deeplens
        row += [caption(rgba_tile(read_image(folder / layer["file"])), f"layer {i}")
                for i, layer in enumerate(record["layers"])]
        row += [caption(tile(read_image(folder / d["file"])), f"focus {d['focus_distance']:.1f} m f/{d['f_stop']:.1f}")
                for d in record["dof"]]
    return row


def write_preview(root: str | os.PathLike[str], rows: int = 3, path: str | os.PathLike[str] | None = None) -> Path:
    """Write a grid of the first ``rows`` complete samples to ``root/preview.png`` (or ``path``)."""
    root = Path(root)
    description = io.read_json(root / io.DATASET_FILE)
    indices = io.complete_indices(root)[:rows]
    lines = []
    for index in indices:
        folder = io.sample_dir(root, index)
        lines.append(_row(folder, io.read_json(folder / io.SAMPLE_FILE)))
    title = (f"{description['kind']} / {description['split']}: samples {', '.join(io.sample_name(i) for i in indices)} "
             f"of {description['count']} (seed {description['seed']})")
    target = Path(path) if path is not None else root / io.PREVIEW_FILE
    write_png(target, grid(lines, title=title))
    return target
