"""Evaluate Focus Track on a ``track`` dataset split against two baselines::

    python -m core.focus_track.evaluate data/track/test --strip out/focus_track_strip.png

Per clip the subject's box at frame 0 (its visible pixels' box, from the record) starts the
track. Scored on the frames where the subject is visible (at least 12 pixels on the object-index
pass), against its median visible planar depth:

* *mean relative error* of the focus distance, |F - D| / D;
* *sharp*: the share of those frames where the subject's CoC for the clip's lens,
  A f_px |1/F - 1/D|, is under 1.5 px.

Methods: the project (smoothed; and its raw series), SteReFo's rule (median depth of the tracked
box), and two baselines: the first frame's box never moved (median depth inside it), and a
camera's centre autofocus (median depth of the central 10 % x 10 % of the frame).

Reads the dataset's records and EXRs directly (no Blender needed). Tune on ``dev``; ``test`` is
held out and is reported once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

MIN_VISIBLE_PIXELS = 12  # blender_scenes.kind_track's threshold
SHARP_COC_PX = 1.5


def median_in_box(depth: np.ndarray, box: Sequence[float]) -> float:
    h, w = depth.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    window = depth[max(y0, 0):min(max(y1, 1), h), max(x0, 0):min(max(x1, 1), w)]
    return float(np.median(window)) if window.size else float(np.median(depth))


def centre_box(width: int, height: int, share: float = 0.1) -> tuple[float, float, float, float]:
    hw, hh = 0.5 * share * width, 0.5 * share * height
    return (0.5 * width - hw, 0.5 * height - hh, 0.5 * width + hw, 0.5 * height + hh)


def load_clip(folder: Path) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    from ..imageio import read_image, read_map

    record = json.loads((folder / "sample.json").read_text())
    frames = [read_image(folder / f["file"]) for f in record["frames"]]
    depths = [read_map(folder / f["depth_file"]) for f in record["frames"]]
    return record, frames, depths


def params_for(record: dict, method: str = "csrt", box_scale: float = 1.0) -> Any:
    from ..focus_track.tracker import scale_box
    from ..pipelines.focus_track import FocusTrackParams

    cam = record["camera"]
    box = scale_box(tuple(float(v) for v in record["frames"][0]["box"]), box_scale)
    return FocusTrackParams(box_px=box, fps=float(record["fps"]),
                            method=method, focal_length_mm=cam["focal_length_mm"], f_stop=cam["f_stop"],
                            sensor_width_mm=cam["sensor_width_mm"], sensor_height_mm=cam["sensor_height_mm"],
                            sensor_fit=cam["sensor_fit"])


def score(focus_m: np.ndarray, truth_m: np.ndarray, visible: np.ndarray, coc_px_per_dioptre: float) -> dict:
    """Mean relative error and sharp share over the visible frames."""
    f, d = np.asarray(focus_m)[visible], np.asarray(truth_m)[visible]
    coc = coc_px_per_dioptre * np.abs(1.0 / f - 1.0 / d)
    return {"rel_error": float(np.mean(np.abs(f - d) / d)), "sharp": float(np.mean(coc < SHARP_COC_PX)),
            "frames": int(visible.sum())}


def evaluate_clip(folder: Path, method: str = "csrt", box_scale: float = 1.0) -> dict:
    from ..pipelines.focus_track import run

    record, frames, depths = load_clip(folder)
    cam = record["camera"]
    coc_scale = cam["focal_length_mm"] * 1e-3 / cam["f_stop"] * cam["focal_length_px"]
    truth = np.array([f["subject_depth_m"] for f in record["frames"]])
    visible = np.array([f["visible_pixels"] >= MIN_VISIBLE_PIXELS for f in record["frames"]])
    start = time.perf_counter()
    track = run(frames, depths, params_for(record, method, box_scale))
    seconds = time.perf_counter() - start
    h, w = depths[0].shape
    first_box = record["frames"][0]["box"]
    series = {
        "focus track": track.focus_distance_m,
        "focus track, raw": track.raw_focus_distance_m,
        "tracked box, median (SteReFo)": np.array([median_in_box(d, b) for d, b in zip(depths, track.boxes)]),
        "first-frame box (baseline)": np.array([median_in_box(d, first_box) for d in depths]),
        "centre autofocus (baseline)": np.array([median_in_box(d, centre_box(w, h)) for d in depths]),
    }
    scores = {name: score(values, truth, visible, coc_scale) for name, values in series.items()}
    return {"clip": folder.name, "scores": scores, "series": series, "truth": truth, "visible": visible,
            "track": track, "record": record, "frames": frames, "depths": depths, "coc_scale": coc_scale,
            "seconds_per_frame": seconds / len(frames)}


def strip(result: dict, path: Path, tiles: int = 8) -> None:
    """A PNG: frames with the box and in-focus band, and the focus distance over time below."""
    import cv2

    from ..colour import linear_to_srgb
    from .overlay import overlay_frame, plot_series

    track, frames, depths = result["track"], result["frames"], result["depths"]
    count = len(frames)
    picks = np.linspace(0, count - 1, tiles).round().astype(int)
    row = []
    for t in picks:
        good = track.status[t] not in ("lost",) and not track.held[t]
        img = overlay_frame(frames[t], depths[t], track.boxes[t], float(track.focus_distance_m[t]),
                            result["coc_scale"], SHARP_COC_PX, good, f"{t}: {track.focus_distance_m[t]:.2f} m")
        row.append((linear_to_srgb(img[..., :3])[..., ::-1] * 255.0 + 0.5).astype(np.uint8))
    top = np.hstack(row)
    plot = plot_series([("truth", result["truth"], (0, 0, 0)),
                        ("raw", track.raw_focus_distance_m, (40, 140, 255)),
                        ("smoothed", track.focus_distance_m, (200, 90, 0)),
                        ("centre AF", result["series"]["centre autofocus (baseline)"], (160, 160, 160))],
                       width=top.shape[1], height=max(200, top.shape[0] * 2), marks=~result["visible"] | track.held,
                       title=f"clip {result['clip']}: focus distance (m) over frames; grey: subject hidden or held")
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([top, plot]))


def table(results: list[dict]) -> str:
    """Markdown table of the mean over clips (clips weighted by their visible frames)."""
    names = list(results[0]["scores"])
    lines = ["| method | mean relative focus error | subject sharp (CoC < 1.5 px) |", "| --- | ---: | ---: |"]
    for name in names:
        frames = np.array([r["scores"][name]["frames"] for r in results], float)
        err = np.array([r["scores"][name]["rel_error"] for r in results])
        sharp = np.array([r["scores"][name]["sharp"] for r in results])
        lines.append(f"| {name} | {100 * np.average(err, weights=frames):.2f} % | "
                     f"{100 * np.average(sharp, weights=frames):.1f} % |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from ..errors import InputError, check

    p = argparse.ArgumentParser(prog="python -m core.focus_track.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="a track dataset split folder (blender_scenes.generate --kind track)")
    p.add_argument("--method", choices=["csrt", "kcf"], default="csrt")
    p.add_argument("--strip", help="write a PNG strip and plot of one clip here")
    p.add_argument("--strip-clip", help="the clip for --strip (default: the first)")
    p.add_argument("--json", help="write the per-clip scores here")
    p.add_argument("--box-scale", type=float, default=1.0,
                   help="start from the subject's box scaled by this (a loosely drawn box: 1.3)")
    args = p.parse_args(argv)
    try:
        root = Path(args.dataset)
        clips = sorted(c for c in root.iterdir() if c.is_dir() and (c / "sample.json").is_file())
        check(bool(clips), f"{root} holds no complete clips")
        results = []
        for clip in clips:
            r = evaluate_clip(clip, args.method, args.box_scale)
            s = r["scores"]
            print(f"{clip.name}: focus track {100 * s['focus track']['rel_error']:.2f} % "
                  f"sharp {100 * s['focus track']['sharp']:.0f} % | "
                  f"first box {100 * s['first-frame box (baseline)']['rel_error']:.1f} % "
                  f"| centre {100 * s['centre autofocus (baseline)']['rel_error']:.1f} % | "
                  f"lost {len(r['track'].info['lost_frames'])} held {len(r['track'].info['held_frames'])} | "
                  f"{1e3 * r['seconds_per_frame']:.1f} ms/frame", flush=True)
            if args.strip and (r["clip"] == args.strip_clip or (args.strip_clip is None and not results)):
                strip(r, Path(args.strip))
            for key in ("frames", "depths"):  # keep memory flat across clips
                r.pop(key)
            results.append(r)
        print(f"\n{root} ({len(results)} clips, {args.method}, box x{args.box_scale:g}):\n" + table(results))
        if args.json:
            Path(args.json).write_text(json.dumps({r["clip"]: r["scores"] for r in results}, indent=1) + "\n")
    except InputError as exc:
        sys.stderr.write(f"evaluate: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
