"""Dataset throughput: seconds per sample by kind, resolution and slice count (bpy)::

    python -m blender_scenes.dataset_speed            # the default grid, a few samples each
    python -m blender_scenes.dataset_speed --quick    # 256 px defocusnet only

For each configuration it renders a few samples (different scenes) into a temporary folder and
prints the fastest wall time and the median CPU time per sample (all threads). On a machine
shared with other work the wall time is noisy and the CPU time is the steadier figure: on an
idle machine with C cores a sample takes about CPU / C seconds (Cycles and the denoiser use every
core) plus a small serial part (building the scene, writing files: about 0.2 s).

The last column is the peer: each sample's wall time over that of a plain Cycles render of one
view of the same scene at 32 samples (no denoiser), measured right before it, so that both see
the same load. The issue's target, a 5-slice 256 px ``defocusnet`` sample in under 2 s where the
plain render takes about 1 s, is a ratio under 2.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .dataset_io import sample_seed
from .dataset_render import CameraState, DatasetRenderer, Quality
from .dataset_samples import Options, render_sample
from .dataset_scenes import defocusnet_scene, deeplens_scene, stereo_scene, sweep_scene

SCENES = {"defocusnet": defocusnet_scene, "deeplens": deeplens_scene, "stereo": stereo_scene, "sweep": sweep_scene}

GRID = [
    ("defocusnet", dict(width=256, height=256, slices=5)),
    ("defocusnet", dict(width=128, height=128, slices=5)),
    ("defocusnet", dict(width=512, height=512, slices=5)),
    ("defocusnet", dict(width=256, height=256, slices=2, focus="even")),
    ("defocusnet", dict(width=256, height=256, slices=10, focus="even")),
    ("deeplens", dict(width=256, height=256)),
    ("stereo", dict(width=256, height=256)),
    ("sweep", dict(width=256, height=256, frames=16)),
]


def plain_render_seconds(kind: str, seed: int, options: Options, folder: Path) -> float:
    """Wall seconds of one plain 32-sample render (no denoiser) of the scene of sample ``seed``."""
    scene = SCENES[kind](np.random.default_rng(seed))
    renderer = DatasetRenderer(scene, options.width, options.height, Quality(samples=32, denoise=False), seed,
                               folder / "plain")
    start = time.perf_counter()
    renderer.render(CameraState(scene.lens.focus_distance), "plain")
    seconds = time.perf_counter() - start
    shutil.rmtree(folder / "plain")
    return seconds


def measure(kind: str, options: Options, samples: int, folder: Path) -> tuple[float, float, float]:
    """(fastest wall seconds, median CPU seconds, median ratio to a plain render) per sample."""
    walls, cpus, ratios = [], [], []
    for index in range(samples):
        out = folder / f"{kind}-{index}"
        out.mkdir(parents=True)
        seed = sample_seed(0, kind, "train", index)
        plain = plain_render_seconds(kind, seed, options, folder)
        wall, cpu = time.perf_counter(), time.process_time()
        render_sample(kind, "train", index, seed, options, out)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        ratios.append(walls[-1] / plain)
        shutil.rmtree(out)
    return min(walls), statistics.median(cpus), statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dataset_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=4, help="scenes per configuration (default 4)")
    parser.add_argument("--quick", action="store_true", help="256 px defocusnet only")
    args = parser.parse_args(argv)
    grid = GRID[:1] if args.quick else GRID
    print(f"{'kind':<11} {'size':>9} {'views':>5} {'wall s':>7} {'CPU s':>7} {'CPU/view':>8} {'x plain':>7}")
    with tempfile.TemporaryDirectory(prefix="refocus-speed-") as tmp:
        for kind, settings in grid:
            options = Options(**settings)  # type: ignore[arg-type]
            views = {"defocusnet": options.slices + 1, "deeplens": 4 + options.dof_renders, "stereo": 2,
                     "sweep": 2 * options.frames}[kind]
            wall, cpu, ratio = measure(kind, options, args.samples, Path(tmp))
            print(f"{kind:<11} {options.width:>4}x{options.height:<4} {views:>5} {wall:>7.2f} {cpu:>7.2f} "
                  f"{cpu / views:>8.3f} {ratio:>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
