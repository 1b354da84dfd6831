"""Agreement with Cycles' depth of field: core's refocus vs Blender's Defocus node, scene by scene.

    python -m bench.cycles_agreement [--out out/bench] [--rerender] [--samples N] [--k-max K]

Renders each scene of :mod:`blender_scenes.agreement` with Cycles without and with depth of field
(cached under ``OUT/agreement/``; ``--rerender`` redoes them), refocuses the all-in-focus render
with core and with Blender's compositor Defocus node, and prints PSNR/SSIM of both against
Cycles, with the margin. Writes ``OUT/cycles_agreement.png``: per scene, Cycles | core | node and
the two error maps.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from blender_scenes import agreement as ag
from blender_scenes.sheet import caption, error_tile, grid, tile, write_png

TARGET_MEAN_DB = 2.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cycles_agreement", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/bench", help="output folder (default out/bench)")
    p.add_argument("--rerender", action="store_true", help="render again even if cached renders exist")
    p.add_argument("--samples", type=int, default=ag.BENCH_SETTINGS.samples, help="Cycles samples per pixel")
    p.add_argument("--k-max", type=int, default=None, help="core's k_max (default: core's own default)")
    p.add_argument("--scenes", nargs="*", help="only these scenes (default: all)")
    p.add_argument("--noise-floor", action="store_true",
                   help="also render each scene with another seed and report PSNR between the two Cycles renders")
    return p.parse_args(argv)


def table(results: list[ag.Comparison], floors: dict[str, float]) -> str:
    head = f"{'scene':<17}{'core PSNR':>10}{'SSIM':>8}{'node PSNR':>11}{'SSIM':>8}{'core-node':>11}{'core s':>8}{'node s':>8}"
    head += f"{'noise':>8}" if floors else ""
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.scene.name:<17}{r.core_score.psnr:>10.2f}{r.core_score.ssim:>8.4f}"
                     f"{r.node_score.psnr:>11.2f}{r.node_score.ssim:>8.4f}{r.margin_db:>+10.2f} "
                     f"{r.core_seconds:>8.2f}{r.node_seconds:>8.2f}"
                     + (f"{floors[r.scene.name]:>8.2f}" if floors else ""))
    n = len(results)
    mean = lambda f: sum(f(r) for r in results) / n  # noqa: E731
    lines.append("-" * len(head))
    lines.append(f"{'mean':<17}{mean(lambda r: r.core_score.psnr):>10.2f}{mean(lambda r: r.core_score.ssim):>8.4f}"
                 f"{mean(lambda r: r.node_score.psnr):>11.2f}{mean(lambda r: r.node_score.ssim):>8.4f}"
                 f"{mean(lambda r: r.margin_db):>+10.2f}")
    return "\n".join(lines)


def verdict(results: list[ag.Comparison]) -> str:
    behind = [r.scene.name for r in results if r.margin_db <= 0.0]
    mean = sum(r.margin_db for r in results) / len(results)
    ok = not behind and mean >= TARGET_MEAN_DB
    detail = f"mean margin {mean:+.2f} dB (target >= {TARGET_MEAN_DB:.0f})"
    if behind:
        detail += f"; core not above the node on: {', '.join(behind)}"
    return f"target {'MET' if ok else 'NOT MET'}: {detail}"


def comparison_sheet(results: list[ag.Comparison]) -> np.ndarray:
    rows = []
    for r in results:
        rows.append([
            caption(tile(r.cycles), f"{r.scene.name}: Cycles DoF"),
            caption(tile(r.core), f"core {r.core_score.psnr:.2f} dB / {r.core_score.ssim:.3f}"),
            caption(tile(r.node), f"Blender node {r.node_score.psnr:.2f} dB / {r.node_score.ssim:.3f}"),
            caption(error_tile(r.core, r.cycles), "|core - Cycles| x4"),
            caption(error_tile(r.node, r.cycles), "|node - Cycles| x4"),
        ])
    return grid(rows, title="Refocus vs Blender's Defocus node, against Cycles' depth of field (sRGB)")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = replace(ag.BENCH_SETTINGS, samples=args.samples)
    chosen = [s for s in ag.scenes() if not args.scenes or s.name in args.scenes]
    if not chosen:
        sys.stderr.write(f"no such scene: {', '.join(args.scenes)}; have {', '.join(s.name for s in ag.scenes())}\n")
        return 2
    results, floors = [], {}
    for index, scene in enumerate(chosen, 1):
        start = time.perf_counter()
        print(f"[{index}/{len(chosen)}] {scene.name}: {scene.description}", file=sys.stderr, flush=True)
        aif, cycles = ag.render_pair(scene, settings, out / "agreement", args.rerender)
        results.append(ag.compare(scene, aif, cycles, k_max=args.k_max))
        if args.noise_floor:
            # Two renders differ by twice the noise variance of one: one render against the
            # noiseless truth sits about 3 dB above the PSNR printed here.
            other = ag.render_pair(scene, replace(settings, seed=settings.seed + 1), out / "agreement", args.rerender)[1]
            floors[scene.name] = ag.score(other, cycles).psnr
        print(f"      done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    print(f"Cycles agreement, {settings.width}x{settings.height}, {settings.samples} samples, "
          f"PSNR (dB) / SSIM on display sRGB; k_max {args.k_max or 'default'}")
    print(table(results, floors))
    if floors:
        print("noise: PSNR between two Cycles DoF renders with different seeds; one render against the noiseless "
              "truth scores about 3 dB higher, the ceiling for any refocuser here")
    print(verdict(results))
    sheet_path = out / "cycles_agreement.png"
    write_png(sheet_path, comparison_sheet(results))
    print(f"comparison grid: {sheet_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
