"""Score video depth from defocus on rendered focus sweeps: per-frame AbsRel and temporal flicker.

``python -m models.dff.evaluate_video --data data/sweep/test [--noise GAIN READ] [--rough DIOPTRES]``

For every clip of a ``sweep`` folder (``python -m blender_scenes.generate --kind sweep``),
core.focal_stack.video.video_depth runs once; its output holds both the temporally fused depth and
the independent per-frame estimates it started from. Reported per clip and in total:

* AbsRel per frame (depth scored where the truth lies within the sweep's focus range), and mean;
* flicker: the mean |d_t - d_{t-1}| (metres) over *static* pixels, those whose true depth changes by
  under 0.1 % between the frames (the moving objects excluded), for fused and independent depth;
* with ``--rough``, the focus distances are perturbed by that many dioptres (alternating sign,
  seeded) and refined (``video_depth(refine=True)``); the focus error before and after is printed.
"""

from __future__ import annotations

import argparse
import sys

import torch

from core.errors import InputError
from core.focal_stack.noise import poisson_gaussian
from core.focal_stack.video import video_depth
from models.data.sweep import SweepDataset


def flicker(depth: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> float:
    """Mean frame-to-frame |change| of ``depth`` (T, 1, H, W) over pixels static in ``gt``."""
    static = ((gt[1:] - gt[:-1]).abs() / gt[1:] < 1e-3) & valid[1:] & valid[:-1]
    return float((depth[1:] - depth[:-1]).abs()[static].mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.dff.evaluate_video", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a sweep folder")
    p.add_argument("--noise", type=float, nargs=2, metavar=("GAIN", "READ"), help="add Poisson-Gaussian noise")
    p.add_argument("--rough", type=float, default=0.0, help="perturb the focus distances by this many dioptres")
    p.add_argument("--limit", type=int, help="clips to score")
    p.add_argument("--carry", type=float, default=0.95, help="temporal fusion: share of evidence carried per frame")
    args = p.parse_args(argv)
    try:
        data = SweepDataset(args.data)
    except InputError as exc:
        sys.stderr.write(f"models.dff.evaluate_video: error: {exc}\n")
        return 2
    totals = {"fused": [], "independent": [], "flicker fused": [], "flicker independent": []}
    for i in range(len(data) if args.limit is None else min(args.limit, len(data))):
        clip = data[i]
        frames, gt, focus = clip["frames"], clip["depth"], clip["focus_distances"].double()
        if args.noise:
            frames = poisson_gaussian(frames, args.noise[0], args.noise[1], torch.Generator().manual_seed(100 + i))
        given = focus
        if args.rough > 0:
            signs = torch.tensor([(-1.0) ** t for t in range(len(focus))], dtype=torch.float64)
            given = 1.0 / (1.0 / focus + args.rough * signs)
        out = video_depth(frames, given.tolist(), float(clip["coc_px_per_dioptre"]), refine=args.rough > 0,
                          carry=args.carry)
        near, far = float(focus.min()), float(focus.max())
        valid = (gt >= near) & (gt <= far)
        rel = lambda d: [float(((d[t] - gt[t]).abs() / gt[t])[valid[t]].mean()) for t in range(len(d))]  # noqa: E731
        fused, independent = rel(out.depth), rel(out.independent_depth)
        print(f"clip {i}: {len(focus)} frames, focus {near:.2f}-{far:.2f} m")
        print("  AbsRel per frame, fused:       " + " ".join(f"{v:.3f}" for v in fused))
        print("  AbsRel per frame, independent: " + " ".join(f"{v:.3f}" for v in independent))
        f_fused, f_ind = flicker(out.depth, gt, valid), flicker(out.independent_depth, gt, valid)
        print(f"  flicker on static pixels: fused {f_fused:.4f} m, independent {f_ind:.4f} m "
              f"(ratio {f_fused / max(f_ind, 1e-12):.2f})")
        if args.rough > 0:
            before = float((1.0 / given - 1.0 / focus).abs().mean())
            after = float((1.0 / torch.tensor(out.focus_distances, dtype=torch.float64) - 1.0 / focus).abs().mean())
            print(f"  focus error: given {before:.3f} D, refined {after:.3f} D")
        totals["fused"] += fused
        totals["independent"] += independent
        totals["flicker fused"].append(f_fused)
        totals["flicker independent"].append(f_ind)
    mean = {k: sum(v) / max(len(v), 1) for k, v in totals.items()}
    print(f"mean AbsRel: fused {mean['fused']:.4f}, independent {mean['independent']:.4f}; mean flicker: fused "
          f"{mean['flicker fused']:.4f} m, independent {mean['flicker independent']:.4f} m "
          f"(ratio {mean['flicker fused'] / max(mean['flicker independent'], 1e-12):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
