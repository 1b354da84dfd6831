"""Memory over a long dataset run: is the generator's peak RSS flat over hundreds of samples?

Renders ``--count`` tiny samples (32x32, one sample per pixel, no denoiser) in this one process,
through the generator (claims, commits, manifest), while a thread records this process's resident
memory (psutil) every ``--interval`` seconds against the number of samples complete. Writes the
curve as a PNG (drawn with OpenCV) and the figures as JSON, and prints them::

    OMP_NUM_THREADS=1 nice python -m bench.dataset_soak --count 300 --kind defocusnet
    # -> out/dataset_soak_defocusnet.png, out/dataset_soak_defocusnet.json

The figures: RSS after the first tenth of the samples (warm), at the end, the peak, and the slope
of a straight line fitted over the second half (MB per 100 samples): flat memory has a slope near
zero. ``--ray`` runs (``generate --ray``) start a new process per shard, so their memory resets
at every shard whatever this shows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

from blender_scenes import dataset_io as io
from blender_scenes.dataset_render import Quality
from blender_scenes.dataset_samples import Options
from blender_scenes.generate import generate

OUT = Path(__file__).resolve().parents[1] / "out"


def watch(root: Path, interval: float, stop: threading.Event, trace: list[tuple[float, int, float]]) -> None:
    """Append (seconds, samples complete, RSS MB) every ``interval`` until ``stop``."""
    process, start = psutil.Process(), time.monotonic()
    while not stop.wait(interval):
        try:
            done = sum(1 for name in os.listdir(root) if len(name) == 6 and name.isdigit())
        except FileNotFoundError:
            done = 0
        trace.append((time.monotonic() - start, done, process.memory_info().rss / 2**20))


def figures(trace: np.ndarray, count: int) -> dict[str, float]:
    done, rss = trace[:, 1], trace[:, 2]
    warm = rss[done >= max(1, count // 10)]
    half = trace[done >= count // 2]
    slope = float(np.polyfit(half[:, 1], half[:, 2], 1)[0]) * 100 if len(np.unique(half[:, 1])) > 2 else 0.0
    return {"samples": count, "rss_warm_mb": float(warm[0]) if warm.size else float(rss[0]),
            "rss_end_mb": float(rss[-1]), "rss_peak_mb": float(rss.max()),
            "slope_second_half_mb_per_100_samples": slope, "seconds": float(trace[-1, 0])}


def draw(trace: np.ndarray, stats: dict[str, float], title: str, path: Path) -> None:
    """RSS (MB) against samples complete, on a white 900x500 canvas."""
    w, h, left, right, top, bottom = 900, 500, 80, 30, 50, 60
    image = np.full((h, w, 3), 255, np.uint8)
    done, rss = trace[:, 1], trace[:, 2]
    x_max = max(float(done.max()), 1.0)
    y_max = float(rss.max()) * 1.1
    y_min = 0.0

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + x / x_max * (w - left - right)
        py = h - bottom - (y - y_min) / (y_max - y_min) * (h - top - bottom)
        return np.stack([px, py], axis=-1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for k in range(6):  # grid and tick labels
        y = y_min + (y_max - y_min) * k / 5
        p = to_px(np.array([0.0]), np.array([y]))[0]
        cv2.line(image, (left, int(p[1])), (w - right, int(p[1])), (225, 225, 225), 1)
        cv2.putText(image, f"{y:.0f}", (8, int(p[1]) + 5), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
        x = x_max * k / 5
        q = to_px(np.array([x]), np.array([y_min]))[0]
        cv2.putText(image, f"{x:.0f}", (int(q[0]) - 12, h - bottom + 20), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    cv2.polylines(image, [to_px(done, rss)], False, (180, 80, 20), 2, cv2.LINE_AA)
    cv2.putText(image, title, (left, 30), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "samples complete", (w // 2 - 70, h - 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "RSS MB", (8, top - 10), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    note = (f"warm {stats['rss_warm_mb']:.0f} MB, end {stats['rss_end_mb']:.0f} MB, peak {stats['rss_peak_mb']:.0f} MB, "
            f"2nd-half slope {stats['slope_second_half_mb_per_100_samples']:+.1f} MB/100 samples")
    cv2.putText(image, note, (left + 10, h - bottom - 12), font, 0.45, (0, 0, 160), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--kind", default="defocusnet", choices=io.KINDS)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between RSS readings")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    options = Options(width=args.size, height=args.size, quality=Quality(samples=1, denoise=False, threads=1),
                      slices=2, frames=4, dof_renders=1)
    work = Path(tempfile.mkdtemp(prefix="refocus-soak-"))
    root = work / "data"
    trace: list[tuple[float, int, float]] = []
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(root, args.interval, stop, trace), daemon=True)
    thread.start()
    try:
        generate(args.kind, args.count, root, seed=0, options=options, progress=True, preview=False)
    finally:
        stop.set()
        thread.join()
        shutil.rmtree(work, ignore_errors=True)
    data = np.array(trace)
    stats = figures(data, args.count)
    name = f"dataset_soak_{args.kind}"
    draw(data, stats, f"generate --kind {args.kind}: {args.count} samples {args.size}x{args.size} in one process",
         args.out / f"{name}.png")
    (args.out / f"{name}.json").write_text(json.dumps({**stats, "trace": data.tolist()}) + "\n")
    for key, value in stats.items():
        print(f"{key:40s} {value:10.2f}")
    print(f"curve: {args.out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
