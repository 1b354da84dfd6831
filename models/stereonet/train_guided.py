"""Train the SGBM-guided refinement network (StereoNet-R): ``python -m models.stereonet.train_guided``.

    python -m models.stereonet.train_guided --data data/stereo/train --cache data/stereo/cache \\
        --out models/weights/stereonet_refined.pt --minutes 40 --threads 1

The network (:mod:`core.stereo.refiner_net`) corrects SGBM's disparity, so every training pair
needs SGBM's result. SGBM is slow next to the small network, so it runs once per pair and view
order (the pair and its mirror image, whose left view is the mirrored right one) and is cached in
``--cache`` (one ``.pt`` per pair; a rerun reuses it). SGBM searches ``ceil(1.1 max true
disparity / 16) * 16`` pixels, as ``models.stereonet.evaluate`` asks of every method.

The last ``--holdout`` pairs of ``--data`` (by index) are kept out of training and serve as the
validation set that picks nothing but is reported; the ``test`` split is never read here.

Augmentation: mirror (with the mirrored pair's own SGBM), vertical flip, random down-scaling
(0.6-1: images area-averaged, disparities scaled), random crop, per-view exposure, contrast and
gamma, and sensor noise. Adam, cosine learning rate over the time budget, Barron's loss on every
scale (:func:`loss_fn`).
Training stops after ``--steps`` or ``--minutes``, whichever comes first. Every ``--save-every``
steps and at the end the held-out pairs are scored; ``--out`` keeps the weights with the best sum of
EPE and bad-2 relative to SGBM's on them (``--last``: the last weights), written atomically.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from core.imageio import atomic_write
from core.stereo.learned import save_model
from core.stereo.metrics import stereo_metrics
from core.stereo.sgbm import SGBMParams, round_disparity_range, stereo_sgbm

from .evaluate import search_range as evaluation_range
from core.stereo.refiner_net import GuidedConfig, GuidedStereoNet
from .loss import barron_loss
from core.stereo.nets import parameter_count

KEYS_F16 = ("left", "right", "truth", "sgbm", "confidence")
KEYS_U8 = ("valid", "occluded")


def search_range(truth: torch.Tensor) -> int:
    """SGBM's range for a pair: :func:`models.stereonet.evaluate.search_range`, at least SGBM's minimum."""
    num, _ = round_disparity_range(evaluation_range(truth))
    return num


def sample_folders(root: Path) -> list[Path]:
    """Finished sample folders (the generator writes each atomically), by index."""
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "sample.json").is_file())


def read_pair(folder: Path) -> dict[str, torch.Tensor]:
    from models.data.folder import read_colour, read_plane

    return {"left": read_colour(folder / "left.exr")[:3], "right": read_colour(folder / "right.exr")[:3],
            "disparity_left": read_plane(folder / "disparity_left.exr"),
            "disparity_right": read_plane(folder / "disparity_right.exr")}


def sgbm_inputs(left: torch.Tensor, right: torch.Tensor, num: int) -> dict[str, torch.Tensor]:
    """SGBM's dense disparity, confidence, valid and occluded masks for one (3, H, W) pair, (1, H, W) each."""
    r = stereo_sgbm(left[None], right[None], SGBMParams(num_disparities=num))
    return {"sgbm": r.disparity[0], "confidence": r.confidence[0], "valid": r.valid[0], "occluded": r.occluded[0]}


def build_cache(folder: Path, cache: Path) -> Path:
    """Both view orders of one Cycles pair with SGBM's result for each, stored compactly; returns the file."""
    return _cache_views(cache / f"{folder.parent.name}_{folder.name}.pt", lambda: read_pair(folder))


def synthetic_pair(index: int, seed: int) -> dict[str, torch.Tensor]:
    """Synthetic training pair ``index`` (:mod:`models.stereonet.synthetic`): 256x256 textured
    planes whose largest disparity is 32-112 px and whose background lies anywhere from 1 px to
    0.4 x that, where the Cycles scenes put theirs at a few pixels."""
    from .synthetic import make_pair

    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    top = float(32 + 80 * torch.rand((), generator=g))
    return make_pair(g, 256, 256, top)


def build_synthetic_cache(index: int, seed: int, cache: Path) -> Path:
    """As :func:`build_cache` for :func:`synthetic_pair` ``index``."""
    return _cache_views(cache / f"synthetic{seed}_{index:06d}.pt", lambda: synthetic_pair(index, seed))


def _cache_views(out: Path, load: Callable[[], dict[str, torch.Tensor]]) -> Path:
    if out.is_file():
        return out
    pair = load()
    views = []
    for mirrored in (False, True):
        if mirrored:  # mirroring swaps the views: the mirrored right view is the new left one
            left, right = pair["right"].flip(-1), pair["left"].flip(-1)
            truth = pair["disparity_right"].flip(-1)
        else:
            left, right, truth = pair["left"], pair["right"], pair["disparity_left"]
        num = search_range(truth)
        s = sgbm_inputs(left, right, num)
        view = {"left": left, "right": right, "truth": truth, **s}
        views.append({k: (v.half() if k in KEYS_F16 else v.to(torch.uint8)) for k, v in view.items()}
                     | {"range": torch.tensor(num)})
    with atomic_write(out) as tmp:
        torch.save(views, tmp)
    return out


class CachedPairs(torch.utils.data.Dataset):
    """The cached pairs in memory; ``augment`` draws a random view order, flip, scale, crop and colour."""

    def __init__(self, files: list[Path], crop: tuple[int, int] | None, augment: bool) -> None:
        self.items = [torch.load(f, weights_only=True) for f in files]
        self.crop, self.augment = crop, augment

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        mirrored = bool(torch.rand(()) < 0.5) if self.augment else False
        v = {k: (t.float() if t.dtype != torch.int64 else t) for k, t in self.items[i][int(mirrored)].items()}
        v["valid"], v["occluded"] = v["valid"] > 0.5, v["occluded"] > 0.5
        if not self.augment:
            return v
        if torch.rand(()) < 0.5:
            v = {k: (t.flip(-2) if t.dim() == 3 else t) for k, t in v.items()}
        if torch.rand(()) < 0.5:
            v = rescale(v, float(0.6 + 0.4 * torch.rand(())))
        h, w = v["left"].shape[-2:]
        ch, cw = min(self.crop[0], h), min(self.crop[1], w)
        top, left = int(torch.randint(0, h - ch + 1, ())), int(torch.randint(0, w - cw + 1, ()))
        v = {k: (t[..., top:top + ch, left:left + cw] if t.dim() == 3 else t) for k, t in v.items()}
        if (ch, cw) != tuple(self.crop):  # a down-scaled pair narrower than the crop: pad (masked in the loss)
            ph, pw = self.crop[0] - ch, self.crop[1] - cw
            v = {k: (F.pad(t.float()[None], (0, pw, 0, ph), mode="replicate")[0].to(t.dtype) if t.dim() == 3 else t)
                 for k, t in v.items()}
            v["truth"][..., ch:, :] = float("nan")
            v["truth"][..., :, cw:] = float("nan")
        v["left"], v["right"] = photometric(v["left"], v["right"])
        return v


def rescale(v: dict[str, torch.Tensor], s: float) -> dict[str, torch.Tensor]:
    """Down-scale a cached view by ``s``: images area-averaged, disparities scaled, masks nearest."""
    h, w = v["left"].shape[-2:]
    size = (max(int(round(h * s)), 8), max(int(round(w * s)), 8))
    sx = size[1] / w
    out = dict(v)
    for k in ("left", "right", "confidence"):
        out[k] = F.interpolate(v[k][None], size=size, mode="area")[0]
    out["sgbm"] = F.interpolate(v["sgbm"][None], size=size, mode="area")[0] * sx
    out["truth"] = F.interpolate(v["truth"][None], size=size, mode="nearest")[0] * sx
    for k in ("valid", "occluded"):
        out[k] = F.interpolate(v[k][None].float(), size=size, mode="nearest")[0] > 0.5
    out["range"] = torch.tensor(max(int(round(float(v["range"]) * sx)), 1))
    return out


def photometric(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One random exposure, contrast and gamma for both scene-linear views, a slight exposure
    difference between them, then sensor noise on each."""
    gain = float(torch.empty(()).uniform_(0.6, 1.6))
    gamma = float(torch.empty(()).uniform_(0.85, 1.15))
    contrast = float(torch.empty(()).uniform_(0.8, 1.2))
    sigma = float(torch.empty(()).uniform_(0.0, 0.01))
    out = []
    for image, g in ((left, gain), (right, gain * float(torch.empty(()).uniform_(0.92, 1.08)))):
        x = (image * g).clamp_min(0.0) ** gamma
        mean = x.mean()
        x = ((x - mean) * contrast + mean).clamp_min(0.0)
        out.append((x + sigma * torch.randn_like(x) * (x + 0.01).sqrt()).clamp_min(0.0))
    return out[0], out[1]


LEVEL_WEIGHTS = (0.1, 0.1, 0.2)  # the coarser scales: Barron alpha 1 (pseudo-Huber), c 1 px


def loss_fn(levels: list[torch.Tensor], truth: torch.Tensor) -> torch.Tensor:
    """Pseudo-Huber on the coarser scales; on the final one Barron's alpha 0 (Cauchy) plus a
    quarter of pseudo-Huber, both with c = 1 px. The Cauchy term is mode-seeking: between a
    foreground and a background hypothesis it commits to one instead of averaging them, which is
    what bad-1/bad-2 reward, and a pixel that is already right costs much to move."""
    valid = torch.isfinite(truth) & (truth > 0)
    target = torch.where(valid, truth, torch.zeros_like(truth))
    count = valid.sum().clamp_min(1)
    total = truth.new_zeros(())
    for weight, estimate in zip(LEVEL_WEIGHTS, levels[:-1]):
        total = total + weight * (barron_loss(estimate - target, 1.0, 1.0) * valid).sum() / count
    err = levels[-1] - target
    final = barron_loss(err, 0.0, 1.0) + 0.25 * barron_loss(err, 1.0, 1.0)
    return total + (final * valid).sum() / count


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    out = {k: torch.stack([it[k] for it in items]) for k in items[0] if k != "range"}
    out["range"] = torch.stack([it["range"] for it in items]).float()
    return out


def run_model(model: GuidedStereoNet, b: dict[str, torch.Tensor]) -> dict:
    # One search range per batch (the largest): it only scales an input of the network.
    return model(b["left"], b["right"], b["sgbm"], b["confidence"], b["valid"], b["occluded"],
                 float(b["range"].max()))


def validate(model: GuidedStereoNet, data: CachedPairs) -> dict[str, float]:
    model.eval()
    rows = {"net_epe": 0.0, "net_bad2": 0.0, "sgbm_epe": 0.0, "sgbm_bad2": 0.0}
    with torch.no_grad():
        for i in range(len(data)):
            v = collate([data[i]])
            est = run_model(model, v)["disparity"][0, 0]
            truth = v["truth"][0, 0]
            net, sg = stereo_metrics(est, truth), stereo_metrics(v["sgbm"][0, 0], truth)
            rows["net_epe"] += net.epe
            rows["net_bad2"] += net.bad2
            rows["sgbm_epe"] += sg.epe
            rows["sgbm_bad2"] += sg.bad2
    model.train()
    return {k: round(val / max(len(data), 1), 4) for k, val in rows.items()} | {"pairs": len(data)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.stereonet.train_guided", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="stereo dataset folder (split train)")
    p.add_argument("--cache", required=True, help="folder for the SGBM cache (created)")
    p.add_argument("--out", required=True, help="weights file to write (.pt)")
    p.add_argument("--holdout", type=int, default=40, help="last pairs kept for validation (default 40)")
    p.add_argument("--limit", type=int, help="use at most this many pairs (default all finished ones)")
    p.add_argument("--synthetic", type=int, default=0, metavar="COUNT",
                   help="add COUNT synthetic textured-plane pairs (models/stereonet/synthetic.py), a tenth held out")
    p.add_argument("--init", help="start from these refiner weights (fine-tuning; their configuration wins)")
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--minutes", type=float, default=40.0, help="stop training after this long (default 40)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, nargs=2, default=(144, 160), metavar=("H", "W"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--cache-only", action="store_true", help="fill the cache and stop")
    p.add_argument("--last", action="store_true",
                   help="write the last weights (default: the best on the held-out training pairs)")
    p.add_argument("--normalize", action="store_true",
                   help="locally contrast-normalised inputs (GuidedConfig.normalize)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    folders = sample_folders(Path(args.data))
    if args.limit:
        folders = folders[: args.limit]
    files = []
    for n, folder in enumerate(folders):
        files.append(build_cache(folder, cache))
        if (n + 1) % 100 == 0:
            print(f"cache {n + 1}/{len(folders)} {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    synthetic = []
    for i in range(args.synthetic):
        synthetic.append(build_synthetic_cache(i, args.seed, cache))
        if (i + 1) % 100 == 0:
            print(f"synthetic cache {i + 1}/{args.synthetic}", file=sys.stderr, flush=True)
    cache_seconds = time.perf_counter() - start
    if args.cache_only:
        print(f"cached {len(files) + len(synthetic)} pairs in {cache_seconds:.0f} s")
        return 0
    train_files, val_files = files[: len(files) - args.holdout], files[len(files) - args.holdout:]
    if synthetic:
        cut = len(synthetic) - max(1, len(synthetic) // 10)
        train_files, val_files = train_files + synthetic[:cut], val_files + synthetic[cut:]
    data = CachedPairs(train_files, tuple(args.crop), augment=True)
    val = CachedPairs(val_files, None, augment=False)
    if args.init:
        from core.stereo.learned import load_model

        model = load_model(args.init).train()
        if not isinstance(model, GuidedStereoNet):
            print(f"models.stereonet.train_guided: error: {args.init} is not an SGBM refiner", file=sys.stderr)
            return 2
        config = model.config
    else:
        config = GuidedConfig(normalize=args.normalize)
        model = GuidedStereoNet(config).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=True,
                                         collate_fn=collate, generator=torch.Generator().manual_seed(args.seed))
    meta = {"method": "SGBM + learned StereoNet-style hierarchical refinement (models/stereonet/guided.py)",
            "data": f"Cycles stereo {args.data}" + (f" and {args.synthetic} synthetic pairs" if args.synthetic else "")
                    + f": {len(train_files)} training pairs, {len(val_files)} held out",
            "init": args.init,
            "command": "python -m models.stereonet.train_guided "
                       + " ".join(argv if argv is not None else sys.argv[1:]),
            "parameters": parameter_count(model), "batch": args.batch, "crop": list(args.crop), "lr": args.lr,
            "cache_seconds": round(cache_seconds, 1)}
    budget = args.minutes * 60.0
    t0 = time.perf_counter()
    step, running, best = 0, None, math.inf
    total_steps = args.steps
    print(f"{meta['parameters']} parameters; {len(train_files)} training pairs; validation before training "
          f"{validate(model, val)}", file=sys.stderr, flush=True)
    done = False
    while not done:
        for batch in loader:
            step += 1
            elapsed = time.perf_counter() - t0
            # Cosine schedule over the time budget (or the steps, whichever is tighter).
            progress = min(max(elapsed / budget, step / total_steps), 1.0)
            for group in optimiser.param_groups:
                group["lr"] = args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
            loss = loss_fn(run_model(model, batch)["levels"], batch["truth"])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            value = float(loss.detach())
            running = value if running is None else 0.98 * running + 0.02 * value
            done = step >= total_steps or time.perf_counter() - t0 >= budget
            if step % 50 == 0:
                print(f"step {step} loss {running:.4f} lr {optimiser.param_groups[0]['lr']:.2e} "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
            if step % args.save_every == 0 or done:
                v = validate(model, val)
                # Both targets at once: EPE and bad-2 relative to SGBM's on the held-out pairs.
                score = v["net_epe"] / max(v["sgbm_epe"], 1e-6) + v["net_bad2"] / max(v["sgbm_bad2"], 1e-6)
                print(f"step {step} validation {v} score {score:.4f}", file=sys.stderr, flush=True)
                meta["total_steps"] = step
                meta["total_train_seconds"] = round(time.perf_counter() - t0, 1)
                if args.last or score < best:
                    best = score
                    meta.update({"trained_steps": step, "loss": running, "validation": v,
                                 "train_seconds": round(time.perf_counter() - t0, 1)})
                    save_model(args.out, model, meta)
            if done:
                break
    if not args.last and meta.get("trained_steps") != step:  # record the whole run in the kept file
        from core.weights import read_weights

        payload = read_weights(args.out, "Stereo Depth")
        kept = GuidedStereoNet(config)
        kept.load_state_dict(payload["state_dict"])
        save_model(args.out, kept, meta)
    print(f"wrote {args.out} ({meta['parameters']} parameters, step {meta['trained_steps']} of {step}); "
          f"validation {meta['validation']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
