"""Score depth from focus, classical and learned, on a held-out split: a metrics table and a PNG.

``python -m models.dff.evaluate --data DIR [--data DIR2 ...] [--weights models/weights/dff_full.pt]
[--grid out.png] [--limit N]``

Each ``--data`` is one split (a Cycles ``defocusnet`` folder, or ``synthetic:COUNT``); both methods
run on every stack of it and are scored with core.focal_stack.metrics (per image, averaged over
images). Depth is scored where the ground truth lies within the stack's focus range, as
AiFDepthNet and DfF in the Wild score it: outside it neither method has focus evidence. The grid
shows, per row, the nearest and farthest slices, the ground truth and both methods' depth (turbo
colour map of inverse depth over the focus range) and the learned all-in-focus image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from blender_scenes.dataset_preview import depth_tile
from blender_scenes.sheet import caption, grid, tile, write_png
from core.errors import InputError
from core.focal_stack.camera_learned import camera_learned_depth
from core.focal_stack.camera_learned import load_model as load_camera_model
from core.focal_stack.defocus_volume import physical_depth
from core.focal_stack.depth_from_focus import depth_from_focus
from core.focal_stack.learned import learned_depth, load_model
from core.focal_stack.metrics import MetricTable, aif_metrics, depth_metrics
from core.focal_stack.noise import poisson_gaussian
from core.progress import ProgressBar

from .data import open_source

# Methods a table can hold: the short argmax baseline (modified Laplacian, argmax, parabolic fit in
# dioptres: depth_from_focus without its guided filter), the classical method, the physical one
# (core.focal_stack.defocus_volume, given the sample's camera), FocalStackNet and CameraNet (given
# the sample's camera).
METHODS = ("argmax", "classical", "physical", "learned", "learned-camera")


def evaluate(model: torch.nn.Module | None, dataset: Dataset, device: torch.device | str = "cpu", label: str = "",
             limit: int | None = None, table: MetricTable | None = None, grid_rows: list | None = None,
             suffix: str = "", grid_limit: int = 4, methods: tuple[str, ...] = ("classical", "learned"),
             noise: tuple[float, float] | None = None, camera_model: torch.nn.Module | None = None) -> MetricTable:
    """Score ``methods`` (``learned`` only with a ``model``, ``learned-camera`` only with a
    ``camera_model``) on ``dataset``; returns the table.

    ``grid_rows``, when a list, receives up to ``grid_limit`` preview rows of tiles from this
    dataset. ``suffix`` is appended to the row names (e.g. the split). ``noise`` (gain, read noise)
    adds Poisson-Gaussian sensor noise to every stack (core.focal_stack.noise; the same level in
    every slice, seeded by the stack's index), as a camera would.
    """
    table = table if table is not None else MetricTable()
    count = len(dataset) if limit is None else min(limit, len(dataset))
    bar = ProgressBar(f"scoring {label}".strip(), unit=" stacks")
    rows_before = len(grid_rows) if grid_rows is not None else 0
    for i in range(count):
        sample = dataset[i]
        stack, fd, gt = sample["stack"].to(device), sample["focus_distances"], sample["depth"][None].to(device)
        if noise is not None:
            stack = poisson_gaussian(stack.cpu(), noise[0], noise[1], torch.Generator().manual_seed(1000 + i)).to(device)
        inv_fd = 1.0 / fd.double()
        near, far = 1.0 / float(inv_fd.max()), 1.0 / float(inv_fd.min())
        in_range = (gt >= near) & (gt <= far)
        results = {}
        for method in methods:
            if method == "argmax":
                results[method] = depth_from_focus(stack, fd.tolist(), radius=0)
            elif method == "classical":
                results[method] = depth_from_focus(stack, fd.tolist())
            elif method in ("physical", "learned-camera"):
                k = sample.get("coc_px_per_dioptre", sample.get("defocus_scale"))
                try:
                    if method == "physical":
                        results[method] = physical_depth(stack, fd.tolist(), coc_per_dioptre_px=k)
                    elif camera_model is not None:
                        results[method] = camera_learned_depth(stack, fd.tolist(), model=camera_model,
                                                               coc_per_dioptre_px=k)
                except InputError:  # a camera that cannot blur the range apart: the classical answer
                    results[method] = depth_from_focus(stack, fd.tolist())
                    table.add(f"{method}{suffix}", {"refused": torch.ones(1, dtype=torch.float64)})
            elif method == "learned" and model is not None:
                results[method] = learned_depth(stack, fd, model)
        for name, result in results.items():
            row = f"{name}{suffix}"
            table.add(row, depth_metrics(result.depth, gt, in_range))
            if "aif" in sample:
                table.add(row, aif_metrics(result.all_in_focus[:, :3], sample["aif"][None].to(device)))
        if grid_rows is not None and len(grid_rows) - rows_before < grid_limit:
            grid_rows.append(_preview_row(sample, results, near, far, label))
        bar(i + 1, count)
    return table


def _preview_row(sample: dict[str, torch.Tensor], results: dict, near: float, far: float,
                 label: str = "") -> list[np.ndarray]:
    def hwc(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy().transpose(1, 2, 0)

    order = torch.argsort(sample["focus_distances"])
    first, last = int(order[0]), int(order[-1])
    fd = sample["focus_distances"]
    where = f"{label}: " if label else ""
    row = [caption(tile(hwc(sample["stack"][first])), f"{where}slice at {float(fd[first]):.2f} m"),
           caption(tile(hwc(sample["stack"][last])), f"slice at {float(fd[last]):.2f} m"),
           caption(depth_tile(sample["depth"][0].numpy(), near, far), "ground truth")]
    for name, result in results.items():
        row.append(caption(depth_tile(result.depth[0, 0].cpu().numpy(), near, far), f"{name} depth"))
    best = results.get("learned-camera", results.get("learned", results.get("physical", next(iter(results.values())))))
    row.append(caption(tile(hwc(best.all_in_focus[0])), "all-in-focus"))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.dff.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--data", action="append", required=True, help="a held-out split folder or synthetic:COUNT")
    p.add_argument("--weights", help="FocalStackNet weights (default: the shipped ones)")
    p.add_argument("--camera-weights", help="CameraNet weights for learned-camera (default: the shipped ones)")
    p.add_argument("--classical-only", action="store_true")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=["classical", "learned"],
                   help="methods to score (default classical learned)")
    p.add_argument("--noise", type=float, nargs=2, metavar=("GAIN", "READ"),
                   help="add Poisson-Gaussian sensor noise: gain (1/photo-electrons at white) and read noise")
    p.add_argument("--grid", help="write a PNG preview grid here")
    p.add_argument("--limit", type=int, help="score at most this many stacks per split")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    try:
        methods = tuple(m for m in args.methods if not (args.classical_only and m == "learned"))
        model = load_model(args.weights, args.device) if "learned" in methods else None
        camera_model = (load_camera_model(args.camera_weights, args.device) if "learned-camera" in methods
                        else None)
        table = MetricTable()
        rows: list = []
        per_split = max(2, 4 // len(args.data))  # preview rows from every split
        for data in args.data:
            split = data if data.startswith("synthetic") else Path(data).name
            evaluate(model, open_source(data, seed=1000), args.device, split, args.limit, table,
                     rows if args.grid else None, suffix=f" / {split}" if len(args.data) > 1 else "",
                     grid_limit=per_split, methods=methods, noise=tuple(args.noise) if args.noise else None,
                     camera_model=camera_model)
    except InputError as exc:
        sys.stderr.write(f"models.dff.evaluate: error: {exc}\n")
        return 2
    print(table.markdown())
    if args.grid and rows:
        write_png(args.grid, grid(rows, title="Focal stack depth: classical vs learned"))
        print(f"wrote {args.grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
