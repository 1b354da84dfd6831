"""Train CameraNet, the camera-aware focal-stack network: ``python -m models.dff.train_camera``.

``python -m models.dff.train_camera --config tiny|shipped --data DIR [--data DIR ...] --val DIR
[--val DIR ...] --out models/weights``

CameraNet (core.focal_stack.camera_net) reads the physical cost volume, which is computed with each
stack's own camera, so training data should vary the camera as widely as possible: the Cycles
``defocusnet`` folders rendered with ``--camera random`` (4-85 mm, f/1.4-f/8, focus ranges from
0.1-1.5 m to 1-20 m, 3-10 slices, phone to full-frame sensors; add ``--breathing --shake`` for a
real lens's imperfections). ``synthetic:COUNT`` (models.dff.synthetic) is a stand-in for tests.

Every stack is turned into network inputs once, before training (the cost volume is the expensive
part), ``--variants`` times: the first with all its slices, the others with a random subset of at
least 3 in random order; each with Poisson-Gaussian sensor noise at a random level, the same in
every slice (core.focal_stack.noise), or none in one variant of five. The renders are denoised, so
this noise is the only noise and behaves like a camera's (issue 21).

Training: random crops of the half-resolution volumes, flips; Adam with a cosine decay; the loss is
an L1 on log depth (relative error, what AbsRel and the delta thresholds score), counted fully
where the truth lies in the focus range and at ``--out-of-range`` weight (truth clamped to the
range) elsewhere, plus a small cross-entropy that keeps the bins' distribution honest for the
uncertainty. The checkpoint kept is the one with the best validation AbsRel (scored every
``--val-every`` steps on the ``--val`` folders, noisy as the test protocol: gain and read noise
0.002); test splits are never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from core.errors import InputError, check
from core.focal_stack.camera_learned import save_model
from core.focal_stack.camera_net import CameraNet, CameraNetConfig, feature_count, read_position, volume_features
from core.focal_stack.defocus_volume import physical_volume
from core.focal_stack.noise import DEFAULT_GAIN, DEFAULT_READ_NOISE, poisson_gaussian
from core.progress import ProgressBar

from ..training_cli import run_training
from .data import open_source


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch: int
    crop: int          # crop side at half resolution, pixels
    lr: float
    width: int         # CameraNet width
    variants: int      # inputs per training stack
    synthetic_size: int = 96
    abs_rel_loss: float = 1.0  # share of the depth loss taken as |d - d*| / d* (else |log d - log d*|)


TRAIN_CONFIGS = {
    "tiny": TrainConfig(steps=40, batch=4, crop=32, lr=1e-3, width=8, variants=1, synthetic_size=64),
    "shipped": TrainConfig(steps=6000, batch=8, crop=64, lr=1e-3, width=12, variants=2),
}


@dataclass
class Example:
    """One network input: ``features`` (C, h, w) float16, ``log_depth`` (1, h, w) true log metres,
    ``weight`` (1, h, w) loss weight, ``lo``/``span`` the bins' dioptre range."""

    features: torch.Tensor
    log_depth: torch.Tensor
    weight: torch.Tensor
    lo: float
    span: float


def _noise_level(rng: random.Random) -> tuple[float, float] | None:
    if rng.random() < 0.2:
        return None
    return math.exp(rng.uniform(math.log(2e-4), math.log(6e-3))), math.exp(rng.uniform(math.log(5e-4), math.log(5e-3)))


def make_example(sample: dict[str, torch.Tensor], slices: list[int], noise: tuple[float, float] | None,
                 noise_seed: int, out_of_range: float, bins: int) -> Example | None:
    """The input and target of one stack view, or None when its camera cannot blur the range apart."""
    stack = sample["stack"][slices]
    fd = sample["focus_distances"][slices]
    k = sample.get("coc_px_per_dioptre", sample["defocus_scale"].expand(len(sample["focus_distances"])))
    k = k.reshape(-1)[slices] if k.numel() > 1 else k
    if noise is not None:
        stack = poisson_gaussian(stack, noise[0], noise[1], torch.Generator().manual_seed(noise_seed))
    try:
        volume = physical_volume(stack, fd.tolist(), coc_per_dioptre_px=k)
    except InputError:
        return None
    features = volume_features(volume, bins, focus_evidence=True)[0]  # all channels; a config takes its own
    lo, span = volume.focus_range
    hi = lo + span
    h, w = features.shape[-2:]
    inv_true = 1.0 / sample["depth"][..., ::2, ::2][..., :h, :w].to(torch.float64)
    inside = (inv_true >= lo) & (inv_true <= hi)
    log_depth = -inv_true.clamp(lo, hi).log()
    weight = torch.where(inside, 1.0, out_of_range)
    return Example(features.to(torch.float16), log_depth.to(torch.float32), weight.to(torch.float32), lo, span)


def build_examples(sources: list[str], variants: int, seed: int, out_of_range: float, bins: int, size: int,
                   label: str, fixed_noise: tuple[float, float] | None = None,
                   cache: Path | None = None) -> list[Example]:
    """Every stack of ``sources`` as ``variants`` examples (see the module doc). ``fixed_noise``:
    one view per stack, all slices, at that noise (the validation protocol). ``cache``: a folder
    where each example is kept once computed (a folder that is still rendering adds only its new
    stacks on the next run)."""
    datasets = [open_source(s, size=size, seed=seed, allow_incomplete=True) for s in sources]
    total = sum(len(d) for d in datasets) * (1 if fixed_noise else variants)
    bar = ProgressBar(f"cost volumes ({label})", unit=" views")
    examples: list[Example] = []
    done = 0
    for d_index, dataset in enumerate(datasets):
        for i in range(len(dataset)):
            sample = dataset[i]
            n = sample["stack"].shape[0]
            for v in range(1 if fixed_noise else variants):
                # Each view's draws come from its own generator, so a cached view is the same view.
                view_rng = random.Random(f"{seed}/{sources[d_index]}/{i}/{v}")
                chosen = list(range(n)) if v == 0 else view_rng.sample(range(n), view_rng.randint(min(3, n), n))
                noise = fixed_noise if fixed_noise else _noise_level(view_rng)
                digest = hashlib.sha1(f"{seed}/{noise}/{chosen}/{out_of_range}/{bins}/focus".encode()).hexdigest()[:12]
                key = f"{Path(sources[d_index]).name}/{i:06d}_{v}_{digest}"
                path = cache / f"{key}.pt" if cache is not None and not sources[d_index].startswith("synthetic") else None
                if path is not None and path.is_file():
                    stored = torch.load(path, weights_only=True)
                    ex = Example(**stored) if stored else None  # {}: a stack its camera cannot resolve
                else:
                    ex = make_example(sample, chosen, noise, seed * 7919 + d_index * 100003 + i * 17 + v,
                                      out_of_range, bins)
                    if path is not None:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        torch.save(asdict(ex) if ex is not None else {}, path)
                if ex is not None:
                    examples.append(ex)
                done += 1
                bar(done, total)
    check(bool(examples), f"no usable stacks in {', '.join(sources)}")
    return examples


def _crop_batch(examples: list[Example], crop: int, rng: random.Random) -> dict[str, torch.Tensor]:
    feats, targets, weights, los, spans = [], [], [], [], []
    # One crop size for the batch: views cropped by focus breathing may be smaller than ``crop``.
    ch = min([crop] + [ex.features.shape[-2] for ex in examples])
    cw = min([crop] + [ex.features.shape[-1] for ex in examples])
    for ex in examples:
        h, w = ex.features.shape[-2:]
        y, x = rng.randint(0, h - ch), rng.randint(0, w - cw)
        views = [t[..., y:y + ch, x:x + cw] for t in (ex.features, ex.log_depth, ex.weight)]
        if rng.random() < 0.5:
            views = [t.flip(-1) for t in views]
        if rng.random() < 0.5:
            views = [t.flip(-2) for t in views]
        feats.append(views[0].float())
        targets.append(views[1])
        weights.append(views[2])
        los.append(ex.lo)
        spans.append(ex.span)
    return {"features": torch.stack(feats), "log_depth": torch.stack(targets), "weight": torch.stack(weights),
            "lo": torch.tensor(los).view(-1, 1, 1, 1), "span": torch.tensor(spans).view(-1, 1, 1, 1)}


def loss_of(model: CameraNet, batch: dict[str, torch.Tensor], ce_weight: float = 0.1,
            abs_rel_weight: float = 0.0) -> torch.Tensor:
    logits, gate = model(batch["features"])
    t, _ = read_position(batch["features"], logits, gate)
    inverse = (batch["lo"] + batch["span"] * t).clamp_min(1e-6)
    log_depth = -inverse.log()
    w = batch["weight"]
    error = (log_depth - batch["log_depth"]).abs()
    if abs_rel_weight > 0:  # |d - d*| / d*: what AbsRel scores, harder on reading too far than too near
        error = (1 - abs_rel_weight) * error + abs_rel_weight * (torch.exp(log_depth - batch["log_depth"]) - 1).abs()
    l1 = (w * error).sum() / w.sum().clamp_min(1.0)
    # Soft two-bin target of the true position, for an honest spread.
    bins = logits.shape[1]
    t_true = ((torch.exp(-batch["log_depth"]) - batch["lo"]) / batch["span"]).clamp(0.0, 1.0) * (bins - 1)
    lower = t_true.floor().clamp(max=bins - 2)
    frac = t_true - lower
    log_p = torch.log_softmax(logits, dim=1)
    ce = -((1 - frac) * log_p.gather(1, lower.long()) + frac * log_p.gather(1, lower.long() + 1))
    return l1 + ce_weight * (w * ce).sum() / w.sum().clamp_min(1.0)


def validation_scores(model: CameraNet, examples: list[Example]) -> tuple[float, float]:
    """Mean per-view AbsRel and delta1 at half resolution over the in-range pixels."""
    rel, delta = [], []
    with torch.no_grad():
        for ex in examples:
            t, _ = model.position(ex.features.float()[None])
            depth = 1.0 / (ex.lo + ex.span * t[0]).clamp_min(1e-6)
            truth = torch.exp(ex.log_depth)
            inside = ex.weight >= 1.0
            if inside.any():
                rel.append(float(((depth - truth).abs() / truth)[inside].mean()))
                delta.append(float((torch.maximum(depth / truth, truth / depth)[inside] < 1.25).float().mean()))
    return sum(rel) / max(1, len(rel)), sum(delta) / max(1, len(delta))


def train(args: argparse.Namespace) -> Path:
    tc = TRAIN_CONFIGS[args.config]
    tc = replace(tc, steps=args.steps or tc.steps, lr=args.lr or tc.lr, batch=args.batch or tc.batch,
                 crop=args.crop or tc.crop, width=args.width or tc.width,
                 abs_rel_loss=tc.abs_rel_loss if args.abs_rel_loss is None else args.abs_rel_loss)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    config = CameraNetConfig(width=tc.width, focus_evidence=args.focus_evidence)
    start = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    train_set = build_examples(args.data, tc.variants, args.seed, args.out_of_range, config.bins, tc.synthetic_size,
                               "training", cache=cache)
    noise = (DEFAULT_GAIN, DEFAULT_READ_NOISE)
    val_set = build_examples(args.val, 1, args.seed + 1, args.out_of_range, config.bins, tc.synthetic_size,
                             "validation", fixed_noise=noise, cache=cache) if args.val else []
    channels = feature_count(config.bins, config.focus_evidence)
    for ex in train_set + val_set:  # the cache holds every channel; this configuration reads its own
        ex.features = ex.features[:channels]
    prepare_s = time.perf_counter() - start
    if args.prepare_only:
        print(f"{len(train_set)} training and {len(val_set)} validation views ready in {prepare_s / 60:.1f} min")
        return Path(args.cache or ".")
    model = CameraNet(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, tc.steps) / tc.steps)))
    parameters = sum(p.numel() for p in model.parameters())
    print(f"CameraNet {args.config}: {parameters:,} parameters, {len(train_set)} training views, "
          f"{len(val_set)} validation views, {tc.steps} steps of {tc.batch} x {tc.crop}px", flush=True)
    model.eval()
    baseline, baseline_delta1 = validation_scores(model, val_set) if val_set else (float("nan"), float("nan"))
    best = (baseline, 0, {k: v.clone() for k, v in model.state_dict().items()})
    print(f"untrained (the physical soft read-out): val AbsRel {baseline:.4f}, delta1 {baseline_delta1:.4f}",
          flush=True)
    history = []
    bar = ProgressBar("training", unit=" steps")
    train_start = time.perf_counter()
    for step in range(1, tc.steps + 1):
        model.train()
        batch = _crop_batch(rng.sample(train_set, min(tc.batch, len(train_set))), tc.crop, rng)
        loss = loss_of(model, batch, abs_rel_weight=tc.abs_rel_loss)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        history.append(float(loss.detach()))
        if val_set and (step % args.val_every == 0 or step == tc.steps):
            model.eval()
            score, delta1 = validation_scores(model, val_set)
            recent = history[-args.val_every:]
            print(f"step {step}: loss {sum(recent) / len(recent):.4f}, val AbsRel {score:.4f}, delta1 {delta1:.4f}",
                  flush=True)
            if score < best[0]:
                best = (score, step, {k: v.clone() for k, v in model.state_dict().items()})
        bar(step, tc.steps)
    seconds = time.perf_counter() - train_start
    if val_set:
        model.load_state_dict(best[2])
    model.eval()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"dff_camera{'' if args.config == 'shipped' else '_' + args.config}.pt"
    meta = {"config_name": args.config, "data": args.data, "val": args.val, "train": asdict(tc),
            "seed": args.seed, "out_of_range": args.out_of_range, "training_views": len(train_set),
            "prepare_seconds": round(prepare_s, 1), "train_seconds": round(seconds, 1),
            "val_abs_rel_untrained": baseline, "val_abs_rel": best[0], "best_step": best[1] if val_set else tc.steps,
            "final_loss": sum(history[-50:]) / len(history[-50:])}
    save_model(weights, model, meta)
    kept = f"kept step {best[1]} (val AbsRel {best[0]:.4f}, untrained {baseline:.4f})" if val_set else \
        f"kept the last step (no --val) of {tc.steps}"
    print(f"{kept}; wrote {weights} "
          f"({weights.stat().st_size / 1e6:.2f} MB), {prepare_s / 60:.1f} min preparing, {seconds / 60:.1f} min "
          "training", flush=True)
    return weights


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.dff.train_camera", description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=sorted(TRAIN_CONFIGS), default="tiny")
    p.add_argument("--data", action="append", required=True,
                   help="defocusnet folder rendered with --camera random (repeat), or synthetic:COUNT")
    p.add_argument("--val", action="append", default=[], help="held-out validation folder (repeat)")
    p.add_argument("--out", default="models/weights", help="folder for dff_camera[_CONFIG].pt")
    p.add_argument("--steps", type=int, help="override the configuration's number of steps")
    p.add_argument("--lr", type=float, help="override the configuration's learning rate")
    p.add_argument("--abs-rel-loss", type=float,
                   help="share of the depth loss taken as |d - d*| / d* instead of |log d - log d*| (0 to 1; "
                        "default 1: on validation the log loss lowered the training loss and raised AbsRel)")
    p.add_argument("--batch", type=int, help="override the configuration's batch size")
    p.add_argument("--crop", type=int, help="override the configuration's crop side (half-resolution pixels)")
    p.add_argument("--width", type=int, help="override the configuration's network width")
    p.add_argument("--focus-evidence", action="store_true",
                   help="give the network the focus measures' evidence on its own as well")
    p.add_argument("--out-of-range", type=float, default=0.2,
                   help="loss weight where the truth lies outside the focus range (default 0.2)")
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--cache", help="folder to keep the computed cost volumes in (e.g. data/cache/camera)")
    p.add_argument("--prepare-only", action="store_true", help="compute (and cache) the inputs, do not train")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--seed", type=int, default=0)
    return run_training("models.dff.train_camera", train, p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
