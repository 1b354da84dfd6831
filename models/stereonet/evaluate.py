"""Score Stereo Depth methods: ``python -m models.stereonet.evaluate``.

    python -m models.stereonet.evaluate --data motorcycle --data /work/stereo_data/test \\
        --weights models/weights/stereonet_tiny.pt --png out/stereo_eval.png

For each data source (``motorcycle``: Middlebury's pair as scikit-image ships it; a Cycles
``stereo`` folder of split ``test``; ``synthetic[:COUNT]``) it runs SGBM and, given weights, the
network, and prints the benchmark table (EPE, D1, bad-1, bad-2, density on all and non-occluded
pixels; folder scores are means over its pairs) with the mean time per pair. ``--png`` writes the
first pair of each source: left view, ground truth and each method's disparity on one colour scale.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from core.cli import EXIT_BAD_INPUT
from core.colour import linear_to_srgb
from core.errors import InputError, check
from core.imageio import atomic_write
from core.stereo import StereoMetrics, benchmark, estimate_disparity
from core.stereo.learned import is_refiner, load_model
from core.stereo.metrics import format_table

Pair = tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]  # name, left, right (1, 3, H, W), truth (H, W)


def pairs(spec: str, limit: int) -> Iterator[Pair]:
    """The pairs of one ``--data`` source."""
    if spec == "motorcycle":
        from core.stereo.reference import motorcycle

        p = motorcycle()
        yield p.name, *(torch.from_numpy(v).permute(2, 0, 1)[None] for v in (p.left, p.right)), \
            torch.from_numpy(p.disparity)
        return
    if spec.startswith("synthetic"):
        from .synthetic import SyntheticStereo

        count = int(spec.split(":", 1)[1]) if ":" in spec else 16
        data = SyntheticStereo(count, (192, 288), 64.0, seed=104729)
    else:
        from models.data import StereoDataset

        data = StereoDataset(spec, split="test")
    for i in range(min(len(data), limit)):
        s = data[i]
        yield f"{spec} #{i}", s["left"][None], s["right"][None], s["disparity_left"][0]


def search_range(truth: torch.Tensor) -> int:
    """The disparity range every method searches on a pair with ground truth ``truth`` (H, W)
    pixels: a little beyond the true range, as a user who knows the rig would (1.1 x the largest
    true disparity, rounded up to a multiple of 16)."""
    known = truth[torch.isfinite(truth)]
    return int(np.ceil(float(known.max()) * 1.1 / 16) * 16)


def mean_metrics(rows: list[dict[str, StereoMetrics]]) -> dict[str, StereoMetrics]:
    out = {}
    for region in rows[0]:
        values = {f.name: float(np.mean([getattr(r[region], f.name) for r in rows])) for f in fields(StereoMetrics)}
        values["pixels"] = int(sum(r[region].pixels for r in rows))
        out[region] = StereoMetrics(**values)
    return out


def colour_disparity(d: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H, W) disparity to an (H, W, 3) uint8 BGR picture (TURBO), black where unknown."""
    t = np.clip((np.nan_to_num(d, nan=low) - low) / max(high - low, 1e-6), 0, 1)
    picture = cv2.applyColorMap(np.round(t * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    picture[~np.isfinite(d)] = 0
    return picture


def sheet_row(left: torch.Tensor, truth: torch.Tensor, estimates: dict[str, torch.Tensor]) -> np.ndarray:
    known = truth[torch.isfinite(truth)]
    low, high = float(known.min()), float(known.max())
    image = (linear_to_srgb(left[0, :3].permute(1, 2, 0).numpy()) * 255).round().astype(np.uint8)[..., ::-1]
    tiles = [image, colour_disparity(truth.numpy(), low, high)]
    tiles += [colour_disparity(e.numpy(), low, high) for e in estimates.values()]
    labelled = []
    for tile, label in zip(tiles, ["left", "ground truth", *estimates]):
        tile = np.ascontiguousarray(tile)
        cv2.putText(tile, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        labelled.append(tile)
    return np.concatenate(labelled, axis=1)


def evaluate(sources: list[str], weights: str | None, limit: int, device: torch.device, png: str | None
             ) -> str:
    model = load_model(weights, device) if weights else None
    methods = ["sgbm"] + (["learned"] if model is not None else [])
    # The SGBM-guided refiner runs through the same ``learned`` entry point; name it for what it is.
    label = {"sgbm": "sgbm", "learned": "sgbm+refine" if model is not None and is_refiner(model) else "learned"}
    table: dict[str, dict[str, StereoMetrics]] = {}
    timing: list[str] = []
    sheet = []
    for spec in sources:
        scores: dict[str, list] = {m: [] for m in methods}
        seconds: dict[str, float] = {m: 0.0 for m in methods}
        count = 0
        for n, (name, left, right, truth) in enumerate(pairs(spec, limit)):
            max_disparity = search_range(truth)
            estimates = {}
            for method in methods:
                start = time.perf_counter()
                result = estimate_disparity(left.to(device), right.to(device), method, max_disparity,
                                            model=model)
                seconds[method] += time.perf_counter() - start
                estimates[label[method]] = result.disparity[0, 0].cpu()
                scores[method].append(benchmark(estimates[label[method]], truth))
            count += 1
            if n == 0 and png:
                sheet.append(sheet_row(left, truth, estimates))
        check(count > 0, f"data source {spec} has no pairs")
        for method in methods:
            table[f"{label[method]} on {spec}"] = mean_metrics(scores[method])
            timing.append(f"{label[method]} on {spec}: {seconds[method] / count:.3f} s per pair ({count} pairs, "
                          f"{device})")
    if png and sheet:
        width = max(row.shape[1] for row in sheet)
        rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))) for row in sheet]
        with atomic_write(png) as tmp:
            check(cv2.imwrite(str(tmp), np.concatenate(rows, axis=0)), f"cannot write {png}")
    return format_table(table) + "\n\n" + "\n".join(timing)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.stereonet.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True,
                   help="motorcycle, a stereo test folder, or synthetic[:COUNT]; repeat for several")
    p.add_argument("--weights", help="network weights (.pt); without, SGBM only")
    p.add_argument("--limit", type=int, default=50, help="at most this many pairs per source (default 50)")
    p.add_argument("--png", help="write a comparison sheet (.png)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.png:
            check(Path(args.png).suffix.lower() == ".png", f"--png must name a .png file, got {args.png}")
        print(evaluate(args.data, args.weights, args.limit, torch.device(args.device), args.png))
    except InputError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
