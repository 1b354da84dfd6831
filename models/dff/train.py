"""Train FocalStackNet: ``python -m models.dff.train --config tiny|full --data DIR --out DIR``.

``--data`` is a Cycles ``defocusnet`` training folder (issue 5's generator) or ``synthetic[:COUNT]``
(models.dff.synthetic, for quick checks); repeat it to train on several folders at once (say, stacks
rendered at different f-numbers). Each step draws a batch of random crops with a random
number of slices (2..N) in random order; Adam (beta 0.9, 0.99; seed 004's settings) with a cosine
learning-rate decay. At the end the model is scored on ``--val`` (a held-out folder, or the last
tenth of a synthetic source) against the classical method, and ``dff_<config>.pt`` plus a model
card ``dff_<config>.md`` are written to ``--out``.

The tiny configuration runs on a CPU in minutes; the full one wants a GPU (``--device cuda``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from core.errors import check
from core.focal_stack.learned import save_model
from core.progress import ProgressBar

from ..training_cli import run_training
from .data import collate, open_source, random_view
from .evaluate import evaluate
from .loss import LossWeights, dff_loss
from core.focal_stack.nets import CONFIGS, FocalStackNet, count_parameters


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch: int
    crop: int
    lr: float
    sample_size: int  # synthetic samples' side, pixels
    max_slices: int = 5
    warmup: int = 0          # steps of linear learning-rate warm-up before the cosine decay
    slice_ce: float = 0.0    # weight of the slice cross-entropy (models.dff.loss)


TRAIN_CONFIGS = {
    "tiny": TrainConfig(steps=800, batch=4, crop=96, lr=2e-3, sample_size=128),
    "small": TrainConfig(steps=1600, batch=4, crop=96, lr=2e-3, sample_size=128),
    "guided": TrainConfig(steps=1800, batch=4, crop=96, lr=1e-3, sample_size=128, warmup=100, slice_ce=0.2),
    # whole 192 px training frames: the context block needs a view of the scene, not a 96 px patch
    "context": TrainConfig(steps=1600, batch=2, crop=192, lr=3e-4, sample_size=128, warmup=100, slice_ce=0.2),
    "full": TrainConfig(steps=40000, batch=8, crop=256, lr=1e-3, sample_size=256),
}


class _Cached(Dataset):
    """Keeps every sample of a small source in memory (synthetic samples cost a render each)."""

    def __init__(self, source: Dataset, label: str) -> None:
        bar = ProgressBar(f"preparing {label}", unit=" samples")
        self.items = []
        for i in range(len(source)):
            self.items.append(source[i])
            bar(i + 1, len(source))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.items[i]


def rescale(sample: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """A sample reduced by ``scale`` (area-averaged images, nearest depth): its blur in pixels
    shrinks by ``scale``, as a narrower aperture's would, its focus distances stay."""
    import torch.nn.functional as F

    h, w = sample["depth"].shape[-2:]
    size = (max(8, round(h * scale)), max(8, round(w * scale)))
    out = dict(sample)
    out["stack"] = F.interpolate(sample["stack"], size=size, mode="area")
    out["aif"] = F.interpolate(sample["aif"][None], size=size, mode="area")[0]
    out["depth"] = F.interpolate(sample["depth"][None], size=size, mode="nearest")[0]
    if "defocus_scale" in sample:
        out["defocus_scale"] = sample["defocus_scale"] * scale
    return out


def split_sources(data: list[str], val: str | None, size: int, seed: int) -> tuple[Dataset, Dataset]:
    synthetic = [d for d in data if d.startswith("synthetic")]
    check(not synthetic or len(data) == 1, "--data synthetic cannot be mixed with folders")
    sources = [open_source(d, size=size, seed=seed, allow_incomplete=True) for d in data]
    source = sources[0] if len(sources) == 1 else ConcatDataset(sources)
    if val is not None:
        return source, open_source(val, size=size, seed=seed + 1)
    check(bool(synthetic), "give --val, a held-out folder, to score a model trained on a folder")
    n_val = max(1, len(source) // 10)
    return Subset(source, range(n_val, len(source))), Subset(source, range(n_val))


def init_from(model: FocalStackNet, path: str) -> None:
    """Load trained weights of the same configuration into ``model``; a ``context`` network may
    also start from the same network without the context block (which starts at zero)."""
    from core.focal_stack.learned import load_model

    init, config = load_model(path), model.config
    grows = config.context and not init.config.context and replace(init.config, context=True) == config
    check(init.config == config or grows, f"{path} does not hold a {config} FocalStackNet")
    model.load_state_dict(init.state_dict(), strict=not grows)


def train(args: argparse.Namespace) -> Path:
    config, tc = CONFIGS[args.config], TRAIN_CONFIGS[args.config]
    tc = replace(tc, batch=args.batch or tc.batch, crop=args.crop or tc.crop)
    check(tc.batch >= 1 and tc.crop >= 16, f"--batch must be >= 1 and --crop >= 16, got {tc.batch} and {tc.crop}")
    steps = args.steps or tc.steps
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train_set, val_set = split_sources(args.data, args.val, tc.sample_size, args.seed)
    if _synthetic(args) or args.cache:
        train_set = _Cached(train_set, "training stacks")
    model = FocalStackNet(config).to(device)
    if args.init:  # fine-tune: start from trained weights
        init_from(model, args.init)
    lr = args.lr or tc.lr
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    warmup = min(tc.warmup, steps // 2)

    def lr_factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(s - warmup, steps - warmup) / max(1, steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_factor)
    loss_weights = LossWeights(slice_ce=tc.slice_ce, depth_l1=args.depth_l1, in_range_only=args.in_range_loss,
                               halo=args.halo)
    print(f"FocalStackNet {args.config}: {count_parameters(model):,} parameters, {len(train_set)} training stacks, "
          f"{steps} steps of {tc.batch} x {tc.crop}px on {device}", flush=True)

    def batches():
        loader = DataLoader(train_set, batch_size=None, shuffle=True, num_workers=args.workers,
                            generator=torch.Generator().manual_seed(args.seed))
        while True:
            views: list[dict[str, torch.Tensor]] = []
            for sample in loader:
                if not views:
                    slices = rng.randint(2, min(tc.max_slices, sample["stack"].shape[0]))
                    # smaller circles of confusion in pixels (narrower apertures) by downscaling
                    scale = rng.uniform(args.min_scale, 1.0) if rng.random() < args.scale_prob else 1.0
                if scale < 1.0:
                    sample = rescale(sample, scale)
                views.append(random_view(sample, tc.crop, rng, slices))
                if len(views) == tc.batch:
                    yield collate(views)
                    views = []

    bar = ProgressBar("training", unit=" steps")
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    model.train()
    for step, batch in zip(range(1, steps + 1), batches()):
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch["stack"], batch["focus_distances"])
        loss, parts = dff_loss(out, batch, loss_weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        history.append({"step": step, "loss": float(loss.detach()), **parts})
        if step % args.log_every == 0 or step == steps:
            recent = history[-args.log_every:]
            mean = sum(h["loss"] for h in recent) / len(recent)
            print(f"step {step}/{steps} loss {mean:.4f} ({', '.join(f'{k} {v:.4f}' for k, v in parts.items())})",
                  flush=True)
        bar(step, steps)
    seconds = time.perf_counter() - start
    model.eval()

    table = evaluate(model, val_set, device=device, label=str(args.val or f"{args.data[0]} (held-out tenth)"))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"dff_{args.config}.pt"
    meta = {"config_name": args.config, "data": args.data, "val": args.val, "steps": steps,
            "train": asdict(tc), "init": args.init, "lr": lr, "min_scale": args.min_scale,
            "scale_prob": args.scale_prob, "depth_l1": args.depth_l1, "in_range_loss": args.in_range_loss,
            "halo": args.halo, "seed": args.seed, "seconds": round(seconds, 1), "device": str(device),
            "final_loss": sum(h["loss"] for h in history[-50:]) / len(history[-50:]),
            "metrics": {row: table.mean(row) for row in table.rows()}}
    save_model(weights, model, meta)
    write_card(out_dir / f"dff_{args.config}.md", args, model, meta, table.markdown(), weights)
    print(table.markdown())
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) in {seconds / 60:.1f} min", flush=True)
    return weights


def _synthetic(args: argparse.Namespace) -> bool:
    return args.data[0].startswith("synthetic")


def write_card(path: Path, args: argparse.Namespace, model: FocalStackNet, meta: dict, table: str,
               weights: Path) -> None:
    synthetic = _synthetic(args)
    note = " (synthetic layered-defocus stacks: a development model, not the shipped one)" if synthetic else ""
    limits = "synthetic textures without lighting or noise" if synthetic else "Cycles scenes of random objects"
    val = f"--val {args.val} " if args.val else ""
    extra = "".join([f" --init {args.init}" if args.init else "", f" --lr {args.lr}" if args.lr else "",
                     f" --min-scale {args.min_scale} --scale-prob {args.scale_prob}" if args.min_scale < 1 else "",
                     f" --steps {args.steps}" if args.steps else "",
                     f" --batch {args.batch}" if args.batch else "", f" --crop {args.crop}" if args.crop else "",
                     f" --depth-l1 {args.depth_l1}" if args.depth_l1 else "",
                     " --in-range-loss" if args.in_range_loss else "",
                     f" --halo {args.halo}" if args.halo else "",
                     f" --seed {args.seed}" if args.seed else "",
                     f" --threads {args.threads}" if args.threads else "", " --cache" if args.cache else ""])
    data = " ".join(f"--data {d}" for d in args.data)
    command = f"python -m models.dff.train --config {args.config} {data} {val}--out {args.out}{extra}"
    train = meta["train"]
    text = f"""# FocalStackNet `{args.config}`: model card

Depth and an all-in-focus image from a focal stack of any number of slices (models/dff/network.py).

- Weights: `{weights.name}`, {count_parameters(model):,} parameters ({weights.stat().st_size / 1e6:.2f} MB),
  architecture `{json.dumps(model.config.to_dict())}`.
- Trained on: `{', '.join(args.data)}`{note};
  {meta['steps']} steps, batch {train['batch']}, crops {train['crop']} px, 2..{train['max_slices']}
  slices per stack in random order, seed {meta['seed']}, {meta['seconds'] / 60:.1f} min on {meta['device']}.
- Retrain: `{command}`
- Inputs: scene-linear RGB slices, aligned (core.focal_stack.alignment), and their focus distances in metres.
  Output depth lies within the stack's focus range.
- Limits: trained on {limits};
  texture-less surfaces and depth outside the focus range are guesses.

## Held-out scores (per-image metrics averaged over images; depth in metres)

{table}
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.dff.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    p.add_argument("--data", required=True, action="append",
                   help="defocusnet training folder (repeat for several), or synthetic[:COUNT]")
    p.add_argument("--val", help="held-out defocusnet folder to score on (default for synthetic: a tenth)")
    p.add_argument("--out", default="models/weights", help="folder for dff_<config>.pt and its model card")
    p.add_argument("--steps", type=int, help="override the configuration's number of steps")
    p.add_argument("--init", help="start from these weights (same --config, or guided ones for context): fine-tuning")
    p.add_argument("--batch", type=int, help="override the configuration's batch size")
    p.add_argument("--crop", type=int,
                   help="override the configuration's crop side, pixels (at most the smallest training frame's side)")
    p.add_argument("--lr", type=float, help="override the configuration's peak learning rate")
    p.add_argument("--min-scale", type=float, default=1.0,
                   help="downscale some batches by a random factor down to this (smaller blur in pixels)")
    p.add_argument("--scale-prob", type=float, default=0.5, help="share of batches downscaled (with --min-scale)")
    p.add_argument("--depth-l1", type=float, default=0.0,
                   help="weight of an L1 loss on depth in metres (models.dff.loss; default 0: off)")
    p.add_argument("--in-range-loss", action="store_true",
                   help="depth losses only where the truth lies in the stack's focus range (the scored pixels)")
    p.add_argument("--halo", type=float, default=0.0,
                   help="extra weight of the depth losses on the backdrop side of occlusions (models.dff.loss)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (folders only)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (1 is fastest on a busy shared CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", action="store_true",
                   help="read every training stack into memory once (about 3 MB per 192x192 5-slice stack)")
    p.add_argument("--log-every", type=int, default=50)
    return run_training("models.dff.train", train, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
