"""Score the built-in Mono Depth network on held-out data, against a ground-plane prior.

    python -m models.mono.evaluate --weights models/weights/mono_deeplens.pt --test data/mono/test \\
        --png models/weights/mono_deeplens_eval.png

Two sets: the held-out Cycles ``mono`` test split (photographs and a layout mix training never
saw), and the real Middlebury 2014 Motorcycle pair that scikit-image ships (left image; truth
Z = f B / (d + dx) from its disparity d and the calibration in its docstring; pixels without
truth are masked). Metrics (models.mono.metrics): AbsRel and delta1 after a least-squares scale
and shift in inverse depth, and DeepLens' MAE of min-max normalised inverse depth. The baseline
is a ground-plane prior (inverse depth linear from the top row to the bottom one), same fit.

Real images run at ``--size`` pixels on their long side (both sides rounded to multiples of 32),
the prediction bilinearly resized back to the image. The PNG grid shows image, truth and
prediction for Cycles test samples, Motorcycle, and scikit-image photographs without truth.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from core.cli import OneLineParser
from core.errors import InputError
from core.mono.network import MULTIPLE, MonoDepthNet, load_model
from models.data.mono import MonoDepthDataset

from .metrics import ground_plane_prior, mean_metrics, relative_depth_metrics

# Middlebury 2014 Motorcycle, quarter size, as scikit-image documents it.
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_DOFFS_PX = 31.086
PHOTOS = ("coffee", "chelsea", "rocket", "astronaut")


def processing_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(H, W) with the long side ~``long_side`` and the aspect kept, each a multiple of 32."""
    scale = long_side / max(height, width)
    return (max(MULTIPLE, round(height * scale / MULTIPLE) * MULTIPLE),
            max(MULTIPLE, round(width * scale / MULTIPLE) * MULTIPLE))


@torch.no_grad()
def predict_srgb(model: MonoDepthNet, image: np.ndarray, long_side: int) -> torch.Tensor:
    """Normalised inverse depth (H, W) of an (H, W, 3) sRGB uint8 or [0, 1] float image."""
    rgb = torch.from_numpy(np.ascontiguousarray(image)).float()
    if image.dtype == np.uint8:
        rgb = rgb / 255.0
    x = rgb.permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    size = processing_size(h, w, long_side)
    small = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    pred = model(small)["inverse_depth"]
    return F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)[0, 0]


def motorcycle() -> tuple[np.ndarray, np.ndarray]:
    """The Motorcycle left image (H, W, 3) uint8 sRGB and its planar depth (H, W) metres (NaN: no truth)."""
    import skimage.data

    left, _, disparity = skimage.data.stereo_motorcycle()
    depth = MOTORCYCLE_FOCAL_PX * MOTORCYCLE_BASELINE_M / (disparity.astype(np.float64) + MOTORCYCLE_DOFFS_PX)
    return left, depth.astype(np.float32)


@torch.no_grad()
def evaluate_cycles(model: MonoDepthNet, folder: str | Path, split: str = "test") -> tuple[dict, dict, list]:
    """Mean metrics of the model and of the baseline over a ``mono`` folder, and the items (for the grid)."""
    data = MonoDepthDataset(folder, split)
    rows, base, items = [], [], []
    for i in range(len(data)):
        item = data[i]
        pred = model(item["image"][None])["inverse_depth"][0, 0]
        depth = item["depth"][0]
        rows.append(relative_depth_metrics(pred, depth))
        base.append(relative_depth_metrics(ground_plane_prior(*depth.shape), depth))
        items.append((item, pred))
    return mean_metrics(rows), mean_metrics(base), items


def evaluate_motorcycle(model: MonoDepthNet, long_side: int) -> tuple[dict, dict, tuple]:
    image, depth = motorcycle()
    z = torch.from_numpy(depth)
    valid = torch.isfinite(z) & (z > 0)
    pred = predict_srgb(model, image, long_side)
    model_metrics = relative_depth_metrics(pred, z, valid)
    base_metrics = relative_depth_metrics(ground_plane_prior(*z.shape), z, valid)
    return model_metrics, base_metrics, (image, z, valid, pred)


# --------------------------------------------------------------------------------------------- grid
def _colourise(inverse: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) inverse depth to a BGR uint8 magma image, min-max over ``valid``; invalid pixels black."""
    valid = np.isfinite(inverse) if valid is None else valid & np.isfinite(inverse)
    v = np.where(valid, inverse, 0.0)
    low, high = v[valid].min(), v[valid].max()
    v = np.clip((v - low) / max(high - low, 1e-12), 0.0, 1.0)
    out = cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_MAGMA)
    out[~valid] = 0
    return out


def _tile(bgr: np.ndarray, height: int, label: str = "") -> np.ndarray:
    h, w = bgr.shape[:2]
    tile = cv2.resize(bgr, (round(w * height / h), height), interpolation=cv2.INTER_AREA)
    if label:
        cv2.putText(tile, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _row(tiles: list[np.ndarray], width: int) -> np.ndarray:
    row = np.concatenate(tiles, 1)
    if row.shape[1] < width:
        row = np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)))
    return row


def write_grid(path: Path, cycles_items: list, moto: tuple, photos: list[tuple[str, np.ndarray, torch.Tensor]],
               height: int = 112, count: int = 6) -> None:
    """Rows of (image, truth, prediction): Cycles test samples, Motorcycle, photographs (no truth)."""
    rows = []
    for item, pred in cycles_items[:count]:
        srgb = (item["image"].permute(1, 2, 0).numpy()[..., ::-1] * 255).astype(np.uint8)
        truth = 1.0 / item["depth"][0].numpy()
        rows.append([_tile(srgb, height, f"Cycles test {int(item['index']):03d}"),
                     _tile(_colourise(truth), height, "truth"), _tile(_colourise(pred.numpy()), height, "prediction")])
    image, z, valid, pred = moto
    rows.append([_tile(image[..., ::-1].copy(), height, "Middlebury Motorcycle"),
                 _tile(_colourise(np.where(valid.numpy(), 1.0 / np.maximum(z.numpy(), 1e-6), 0.0), valid.numpy()), height, "truth"),
                 _tile(_colourise(pred.numpy()), height, "prediction")])
    for name, photo, pred in photos:
        blank = np.full_like(_colourise(pred.numpy()), 40)
        rows.append([_tile(photo[..., ::-1].copy(), height, name), _tile(blank, height, "no truth"),
                     _tile(_colourise(pred.numpy()), height, "prediction")])
    width = max(sum(t.shape[1] for t in r) for r in rows)
    grid = np.concatenate([_row(r, width) for r in rows], 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    return np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]


def format_table(results: dict) -> str:
    lines = ["| set | method | AbsRel | delta1 | MAE (normalised inverse depth) |", "| --- | --- | --- | --- | --- |"]
    for name, pair in results.items():
        for method, m in (("Mono Depth", pair["model"]), ("ground-plane prior", pair["baseline"])):
            lines.append(f"| {name} | {method} | {m['absrel']:.3f} | {m['delta1']:.3f} | {m['mae']:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="models.mono.evaluate", description="Score the Mono Depth network on held-out data.")
    p.add_argument("--weights", default=None, help="weights file (default: the shipped ones)")
    p.add_argument("--test", default="data/mono/test", help="held-out Cycles folder (split test)")
    p.add_argument("--split", default="test", help="the folder's split (val while choosing; test to report)")
    p.add_argument("--size", type=int, default=192, help="long side for real images, pixels (default 192)")
    p.add_argument("--png", default=None, help="write the image / truth / prediction grid here")
    p.add_argument("--json", default=None, help="write the metrics here")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        model = load_model(args.weights)
        results = {}
        cycles, cycles_base, items = evaluate_cycles(model, args.test, args.split)
        results[f"Cycles {args.split} ({len(items)})"] = {"model": cycles, "baseline": cycles_base}
        moto, moto_base, moto_view = evaluate_motorcycle(model, args.size)
        results["Middlebury Motorcycle"] = {"model": moto, "baseline": moto_base}
    except InputError as exc:
        sys.stderr.write(f"models.mono.evaluate: error: {exc}\n")
        return 2
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    if args.png:
        photos = [(name, _photo(name), predict_srgb(model, _photo(name), args.size)) for name in PHOTOS]
        write_grid(Path(args.png), items, moto_view, photos)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
