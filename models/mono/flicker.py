"""Flicker of Mono Depth on rendered moving-camera clips: independent frames against sequence alignment.

    python -m models.mono.flicker --data data/track/dev [--model builtin|PATH] [--clips 4] [--smoothing 0.5]

The clips are the ``track`` dataset kind's (blender_scenes/kind_track.py): a camera panning after a
subject that walks towards it past an occluder, clutter at many depths, per-frame planar depth. Each
frame goes through :func:`core.pipelines.mono_depth.run` three ways: alone (min-max normalised per
frame, as a still would be), aligned to the previous frame (:class:`core.mono.sequence.SequenceAligner`),
and aligned with temporal smoothing.

To compare the three in one unit, each clip's predictions are mapped onto the true inverse depth by
ONE least-squares scale and shift for the whole clip (what a constant near/far or focus fit does to a
shot), and expressed as a fraction of the clip's true inverse-depth range. Then:

* flicker: mean |x_t - x_{t-1}| over static pixels (not the subject in either frame, and the true
  inverse depth changing by under 1% of the range: the pan moves edges), :func:`core.mono.sequence.flicker`;
  the truth's own flicker on those pixels is the floor that the pan leaves. ``normalised``: the
  same on the predictions as they come (normalised inverse depth, no fit);
* AbsRel of depth after that one clip-wide fit (a gauge that wanders from frame to frame costs here),
  and, for reference, after a fit per frame (the best any per-frame gauge can do).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from core.cli import OneLineParser
from core.errors import InputError
from core.imageio import read_image, read_map
from core.mono.metric import fit_scale_shift
from core.mono.sequence import SequenceAligner, flicker
from core.pipelines.mono_depth import MonoDepthParams, run as run_pipeline

STATIC_CHANGE = 0.01  # of the clip's true inverse-depth range: larger frame-to-frame change is motion, not flicker


def load_clip(folder: Path) -> tuple[list[np.ndarray], torch.Tensor, torch.Tensor]:
    """Frames (H, W, 3) scene-linear, true planar depth (T, 1, H, W) metres and subject masks (T, 1, H, W)."""
    import cv2

    record = json.loads((folder / "sample.json").read_text())
    frames, depths, masks = [], [], []
    for f in record["frames"]:
        frames.append(read_image(folder / f["file"])[..., :3])
        depths.append(torch.from_numpy(read_map(folder / f["depth_file"])))
        masks.append(torch.from_numpy(cv2.imread(str(folder / f["mask_file"]), cv2.IMREAD_GRAYSCALE) > 127))
    return frames, torch.stack(depths)[:, None], torch.stack(masks)[:, None]


def predict(frames: list[np.ndarray], params: MonoDepthParams, aligner: SequenceAligner | None) -> torch.Tensor:
    out = [torch.from_numpy(run_pipeline(f, params, aligner=aligner).outputs["inverse_depth"][..., 0])
           for f in frames]
    return torch.stack(out)[:, None]


def clip_scores(prediction: torch.Tensor, depth: torch.Tensor, subject: torch.Tensor) -> dict[str, float]:
    """Flicker and AbsRel of a (T, 1, H, W) relative inverse-depth clip (see the module docstring)."""
    valid = torch.isfinite(depth) & (depth > 0)
    truth = torch.where(valid, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    low, high = float(truth[valid].min()), float(truth[valid].max())
    span = high - low
    scale, shift = fit_scale_shift(prediction.reshape(1, -1), truth.reshape(1, -1), valid.reshape(1, -1))
    fitted = (scale * prediction + shift).clamp_min(low)
    change = (truth[1:] - truth[:-1]).abs() / span
    static_pairs = (change < STATIC_CHANGE) & ~subject[1:] & ~subject[:-1] & valid[1:] & valid[:-1]

    def flick(x: torch.Tensor) -> float:
        return flicker(x / span, static_pairs)

    per_frame_s, per_frame_t = fit_scale_shift(prediction.flatten(1), truth.flatten(1), valid.flatten(1))
    per_frame = (per_frame_s.view(-1, 1, 1, 1) * prediction + per_frame_t.view(-1, 1, 1, 1)).clamp_min(low)

    def absrel(inverse: torch.Tensor) -> float:
        return float(((1.0 / inverse - depth).abs() / depth)[valid].mean())

    return {"flicker": flick(fitted), "flicker_normalised": flicker(prediction, static_pairs),
            "truth_flicker": flick(truth), "absrel_clip_fit": absrel(fitted),
            "absrel_frame_fit": absrel(per_frame), "static_share": float(static_pairs.float().mean())}


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m models.mono.flicker", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/track/dev", help="a folder of track clips (dev to tune, test once)")
    p.add_argument("--model", default="builtin", help="builtin, a .pt weights file or a .onnx model")
    p.add_argument("--size", type=int, default=None, help="processing size (default: the model's)")
    p.add_argument("--clips", type=int, default=0, help="use the first N clips (default all)")
    p.add_argument("--smoothing", type=float, default=0.5, help="temporal smoothing of the smoothed variant")
    p.add_argument("--json", default=None, help="write the table here")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        folders = sorted(f for f in Path(args.data).iterdir() if (f / "sample.json").is_file())
        if args.clips:
            folders = folders[:args.clips]
        if not folders:
            raise InputError(f"no clips (folders with sample.json) in {args.data}")
        params = MonoDepthParams(model=args.model, size_px=args.size, device="cpu")
        variants = {"independent": lambda: None, "aligned": lambda: SequenceAligner(),
                    f"aligned, smoothing {args.smoothing:g}": lambda: SequenceAligner(smoothing=args.smoothing)}
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for folder in folders:
            frames, depth, subject = load_clip(folder)
            for name, make in variants.items():
                rows[name].append(clip_scores(predict(frames, params, make()), depth, subject))
            print(f"{folder.name}: " + ", ".join(f"{n} {rows[n][-1]['flicker']:.4f}" for n in variants),
                  file=sys.stderr, flush=True)
    except InputError as exc:
        sys.stderr.write(f"{p.prog}: error: {exc}\n")
        return 2
    table = {name: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for name, rs in rows.items()}
    print(f"{len(folders)} clips of {args.data}, model {args.model}")
    print(f"{'':28s} {'flicker':>8s} {'truth':>8s} {'normalised':>11s} {'AbsRel clip fit':>16s} "
          f"{'AbsRel frame fit':>17s}")
    for name, m in table.items():
        print(f"{name:28s} {m['flicker']:8.4f} {m['truth_flicker']:8.4f} {m['flicker_normalised']:11.4f} "
              f"{m['absrel_clip_fit']:16.3f} {m['absrel_frame_fit']:17.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, "model": args.model, "clips": len(folders),
                                               "table": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
