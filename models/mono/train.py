"""Train the built-in Mono Depth network (core.mono.network.MonoDepthNet) on ``mono`` Cycles folders.

    python -m models.mono.train --config default --data data/mono/train --val data/mono/val \\
        --out models/weights/mono_deeplens.pt --steps 3000 --threads 1

The loss is DeepLens' normalised loss on normalised inverse depth plus gamma times the foreground
BCE (models.mono.loss; ``--ssi``, ``--gradient`` and ``--l1`` add the other terms). Every
``--eval-every`` steps the network is scored on the validation folder (AbsRel after the MiDaS
scale-and-shift fit, models.mono.metrics) and the best state so far is what is written: the
validation split chooses, the test split never does. ``--config tiny --steps 40`` runs in about a
minute on one CPU core (the test suite's configuration).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader

from core.cli import OneLineParser
from core.errors import check
from core.mono.network import MonoDepthConfig, MonoDepthNet, save_model
from models.data.mono import MonoDepthDataset

from ..training_cli import run_training
from .loss import LossWeights, mono_loss
from .metrics import mean_metrics, relative_depth_metrics


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="models.mono.train", description="Train the built-in Mono Depth network.")
    p.add_argument("--config", default="default", help="network size: default or tiny")
    p.add_argument("--data", required=True, help="training folder (generate --kind mono --split train)")
    p.add_argument("--val", default=None, help="validation folder (split val): chooses the best step")
    p.add_argument("--out", required=True, help="weights file to write (.pt)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock budget: the schedule anneals by whichever of steps and minutes runs out first")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--l1", type=float, default=0.0, help="weight of plain L1 on normalised inverse depth")
    p.add_argument("--normalised", type=float, default=1.0, help="weight of DeepLens' normalised loss (Eq. 5)")
    p.add_argument("--ssi", type=float, default=0.0, help="weight of the scale-and-shift-invariant L1")
    p.add_argument("--gradient", type=float, default=0.0, help="weight of multi-scale gradient matching")
    p.add_argument("--seg", type=float, default=0.1, help="gamma: weight of the foreground segmentation BCE")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="read only the first N training samples")
    p.add_argument("--init", default=None, help="start from these weights (same configuration)")
    return p


@torch.no_grad()
def evaluate_folder(model: MonoDepthNet, data: MonoDepthDataset) -> dict[str, float]:
    """Mean AbsRel, delta1 and MAE over a folder's whole images (sides must be multiples of 32)."""
    was_training = model.training
    model.eval()
    rows = []
    for start in range(0, len(data), 16):
        items = [data[i] for i in range(start, min(start + 16, len(data)))]
        images = torch.stack([it["image"] for it in items])
        prediction = model(images)["inverse_depth"]
        rows += [relative_depth_metrics(prediction[k, 0], it["depth"][0]) for k, it in enumerate(items)]
    model.train(was_training)
    return mean_metrics(rows)


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    config = MonoDepthConfig.named(args.config)
    weights = LossWeights(l1=args.l1, normalised=args.normalised, ssi=args.ssi, gradient=args.gradient,
                          segmentation=args.seg)
    check(weights.l1 + weights.normalised + weights.ssi + weights.gradient > 0, "give at least one depth loss weight")
    check(args.steps >= 1 and args.batch >= 1, "--steps and --batch must be at least 1")
    check(all(c % 32 == 0 and c > 0 for c in args.crop), f"--crop must be multiples of 32, got {args.crop}")
    data = MonoDepthDataset(args.data, "train", augment=True, crop=tuple(args.crop), limit=args.limit)
    val = MonoDepthDataset(args.val, "val") if args.val else None
    model = MonoDepthNet(config)
    if args.init:
        from core.mono.network import load_model
        model.load_state_dict(load_model(args.init).state_dict())
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warmup = max(1, min(100, args.steps // 10))

    def progress(step: int) -> float:
        done = step / args.steps
        if args.minutes:
            done = max(done, (time.monotonic() - start) / (60.0 * args.minutes))
        return min(done, 1.0)

    def rate(step: int) -> float:  # linear warm-up, cosine decay to 2% of the rate
        if step < warmup:
            return (step + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress(step)))

    loader = DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=len(data) >= args.batch,
                        generator=torch.Generator().manual_seed(args.seed))
    best = {"step": 0, "val": None}
    best_state = copy.deepcopy(model.state_dict())
    history, step, start, running = [], 0, time.monotonic(), {}
    finished = False
    for group in optimiser.param_groups:
        group["lr"] = args.lr * rate(0)
    while not finished:
        for batch in loader:
            output = model(batch["image"])
            loss, terms = mono_loss(output, batch["inverse_depth"], batch["mask"], weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            finished = progress(step) >= 1.0
            for group in optimiser.param_groups:
                group["lr"] = args.lr * rate(step)
            for k, v in {"loss": float(loss.detach()), **terms}.items():
                running[k] = running.get(k, 0.0) + v
            if step % args.log_every == 0 or finished:
                n = args.log_every if step % args.log_every == 0 else step % args.log_every
                means = {k: v / n for k, v in running.items()}
                history.append({"step": step, **means})
                running = {}
                print(f"step {step} " + " ".join(f"{k} {v:.4f}" for k, v in means.items())
                      + f" ({time.monotonic() - start:.0f} s)", flush=True)
            if val is not None and (step % args.eval_every == 0 or finished):
                metrics = evaluate_folder(model, val)
                print(f"  val step {step}: " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
                if best["val"] is None or metrics["absrel"] < best["val"]["absrel"]:
                    best = {"step": step, "val": metrics}
                    best_state = copy.deepcopy(model.state_dict())
            if finished:
                break
    if val is None:
        best = {"step": step, "val": None}
        best_state = model.state_dict()
    model.load_state_dict(best_state)
    meta = {
        "command": "python -m models.mono.train " + " ".join(sys.argv[1:]),
        "config_name": args.config, "loss": weights.to_dict(), "steps": step, "max_steps": args.steps,
        "minutes": args.minutes, "best_step": best["step"],
        "val": best["val"], "batch": args.batch, "crop": list(args.crop), "lr": args.lr, "seed": args.seed,
        "train_samples": len(data), "train_data": str(args.data), "val_data": str(args.val) if args.val else None,
        "seconds": round(time.monotonic() - start, 1), "history": history,
        "input": "sRGB-encoded [0, 1], sides multiples of 32", "output": "normalised inverse depth, 1 = nearest",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_model(args.out, model, meta)
    print(f"wrote {args.out} (best val step {best['step']}: {best['val']})", flush=True)
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    return run_training("models.mono.train", train, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
