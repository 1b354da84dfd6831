"""Train the Stereo Depth network: ``python -m models.stereonet.train``.

Examples::

    # Tiny configuration on the Cycles ``stereo`` data (CPU, minutes):
    python -m models.stereonet.train --config tiny --data data/stereo/train --val data/stereo/test \\
        --out models/weights/stereonet_tiny.pt
    # Full configuration on a GPU:
    python -m models.stereonet.train --config full --data data/stereo/train --val data/stereo/test \\
        --out models/weights/stereonet_full.pt --device cuda
    # Without rendered data, on the synthetic textured planes:
    python -m models.stereonet.train --config tiny --data synthetic:2000 --out /tmp/stereonet.pt

``--data`` is a folder written by ``python -m blender_scenes.generate --kind stereo`` (split
``train``), or ``synthetic[:COUNT]`` (:mod:`models.stereonet.synthetic`). Training follows SteReFo:
RMSProp with an exponentially decaying learning rate, Barron's loss (alpha 1, c 2) on every scale.
Weights are written atomically to ``--out`` every ``--save-every`` steps and at the end, with the
validation metrics in their ``meta``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from core.cli import EXIT_BAD_INPUT
from core.devices import pick_device
from core.errors import InputError, check
from core.progress import ProgressBar
from core.stereo.learned import save_model
from core.stereo.metrics import stereo_metrics

from .loss import disparity_loss
from core.stereo.nets import CONFIGS, NetConfig, StereoNet, parameter_count
from .synthetic import SyntheticStereo


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings; each configuration has its defaults (:data:`SETTINGS`)."""

    steps: int
    batch: int
    crop: tuple[int, int]
    lr: float
    final_lr_fraction: float = 0.05


SETTINGS = {
    "tiny": TrainSettings(steps=1500, batch=4, crop=(96, 160), lr=1e-3),
    "full": TrainSettings(steps=60000, batch=8, crop=(256, 256), lr=1e-3),
}


# --------------------------------------------------------------------------------------------- data
def open_source(spec: str, split: str, crop: tuple[int, int], max_disparity: float, seed: int,
                augment: bool) -> tuple[Dataset, str]:
    """A dataset for ``--data``/``--val`` and a one-line description of it."""
    if spec.startswith("synthetic"):
        count = int(spec.split(":", 1)[1]) if ":" in spec else 2000
        check(count > 0, f"synthetic count must be positive, got {count}")
        # Validation pairs come from another seed so they never repeat a training pair.
        data = SyntheticStereo(count, crop, 0.75 * max_disparity, seed=seed if split == "train" else seed + 7919)
        return data, f"synthetic textured planes, {count} pairs of {crop[1]}x{crop[0]}"
    from models.data import Augment, ColourJitter, StereoDataset

    aug = Augment(crop=crop, flip=True, jitter=ColourJitter()) if augment else None
    data = StereoDataset(spec, split=split, augment=aug)
    return data, f"Cycles stereo {spec} ({split}, {len(data)} pairs)"


def batches(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches, reshuffled every epoch."""
    while True:
        yield from loader


def validate(model: StereoNet, data: Dataset, device: torch.device, max_disparity: int,
             limit: int = 64) -> dict[str, float]:
    """Mean EPE and bad-2 over up to ``limit`` validation pairs (all pixels with ground truth)."""
    model.eval()
    epe, bad2, n = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(min(len(data), limit)):
            sample = data[i]
            out = model(sample["left"][None].to(device), sample["right"][None].to(device), max_disparity)
            m = stereo_metrics(out["disparity"][0, 0].cpu(), sample["disparity_left"][0])
            epe, bad2, n = epe + m.epe, bad2 + m.bad2, n + 1
    model.train()
    return {"epe": epe / max(n, 1), "bad2": bad2 / max(n, 1), "pairs": n}


# -------------------------------------------------------------------------------------------- train
def train(config: NetConfig, settings: TrainSettings, data: Dataset, out: Path, device: torch.device,
          val: Dataset | None = None, seed: int = 0, workers: int = 0, save_every: int = 500,
          meta: dict | None = None, quiet: bool = False, log_every: int = 100) -> tuple[StereoNet, dict]:
    """Train a fresh :class:`StereoNet`; returns it and the ``meta`` written with its weights."""
    torch.manual_seed(seed)
    model = StereoNet(config).to(device).train()
    optimiser = torch.optim.RMSprop(model.parameters(), lr=settings.lr)
    decay = settings.final_lr_fraction ** (1.0 / max(settings.steps, 1))
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, decay)
    loader = DataLoader(data, batch_size=settings.batch, shuffle=True, num_workers=workers, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    check(len(loader) > 0, f"the training data has {len(data)} pairs, fewer than one batch of {settings.batch}")
    meta = dict(meta or {})
    meta.update({"config": config.to_dict(), "steps": settings.steps, "batch": settings.batch,
                 "crop": list(settings.crop), "lr": settings.lr, "parameters": parameter_count(model)})
    bar = ProgressBar("train", unit=" steps", enabled=not quiet)
    start, running = time.perf_counter(), None
    stream = batches(loader)
    for step in range(1, settings.steps + 1):
        batch = next(stream)
        left, right = batch["left"].to(device), batch["right"].to(device)
        truth = batch["disparity_left"].to(device)
        prediction = model(left, right)
        loss = disparity_loss(prediction["levels"], truth, config.max_disparity)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        bar(step, settings.steps)
        if not quiet and (step % log_every == 0 or step == settings.steps):
            print(f"step {step}/{settings.steps} loss {running:.4f} lr {schedule.get_last_lr()[0]:.2e} "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        if step % save_every == 0 or step == settings.steps:
            meta.update({"trained_steps": step, "loss": running, "seconds": round(time.perf_counter() - start, 1)})
            if val is not None:
                meta["validation"] = validate(model, val, device, config.max_disparity)
                if not quiet:
                    print(f"validation {meta['validation']}", file=sys.stderr, flush=True)
            save_model(out, model, meta)
    return model.eval(), meta


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m models.stereonet.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=sorted(CONFIGS), default="tiny", help="network size (default tiny)")
    p.add_argument("--data", required=True, help="stereo dataset folder, or synthetic[:COUNT]")
    p.add_argument("--val", help="held-out folder (split test), or synthetic[:COUNT]; default: none")
    p.add_argument("--out", required=True, help="weights file to write (.pt)")
    p.add_argument("--steps", type=int, help="optimiser steps (default per config)")
    p.add_argument("--batch", type=int, help="batch size (default per config)")
    p.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), help="training crop (default per config)")
    p.add_argument("--lr", type=float, help="initial learning rate (default 1e-3)")
    p.add_argument("--max-disparity", type=int, help="cost-volume range in pixels (default per config)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data-loading processes (default 0)")
    p.add_argument("--save-every", type=int, default=500, help="write the weights every N steps")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; 1 on a busy shared CPU)")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = CONFIGS[args.config]
        if args.max_disparity is not None:
            check(args.max_disparity > 0, f"--max-disparity must be positive, got {args.max_disparity}")
            config = replace(config, max_disparity=int(math.ceil(args.max_disparity / config.factor)) * config.factor)
        base = SETTINGS[args.config]
        settings = replace(base, steps=args.steps or base.steps, batch=args.batch or base.batch,
                           crop=tuple(args.crop) if args.crop else base.crop, lr=args.lr or base.lr)
        check(settings.steps > 0 and settings.batch > 0, "--steps and --batch must be positive")
        out = Path(args.out)
        check(out.suffix == ".pt", f"--out must be a .pt file, got {out}")
        check(out.parent.is_dir(), f"output folder does not exist: {out.parent}")
        device = pick_device(args.device)
        data, description = open_source(args.data, "train", settings.crop, config.max_disparity, args.seed, True)
        val = None
        if args.val:
            val, val_description = open_source(args.val, "test", settings.crop, config.max_disparity, args.seed,
                                               False)
        meta = {"data": description, "validation_data": val_description if args.val else None,
                "command": "python -m models.stereonet.train " + " ".join(argv if argv is not None else sys.argv[1:])}
        _, meta = train(config, settings, data, out, device, val, args.seed, args.workers, args.save_every, meta,
                        args.quiet)
    except InputError as exc:
        print(f"train: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {out} ({meta['parameters']} parameters, {out.stat().st_size / 1e6:.1f} MB); "
          f"validation {meta.get('validation')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
