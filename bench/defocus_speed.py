"""Speed: ``python -m core defocus`` end to end vs Blender's Defocus node, scene by scene, as ratios.

    python -m bench.defocus_speed [--out out/bench] [--rerender] [--repeats N] [--scenes A B]
                                  [--node-4k NAME ...] [--gpu-only]

A textured Cycles scene with everything between 1 and 10 m is rendered once at 640x360 without and
with depth of field (50 mm, f/2, focus 3 m; cached under ``OUT/speed/``) and enlarged to 1920x1080
and 3840x2160: the frames the two refocusers get, written as Blender writes a render (half-float
colour, 32-bit Z, ZIP). Each lens of :data:`LENSES` (focus distances, f/1.4 to f/8, a sharp and a
blurred near foreground) is then refocused

* by core through the command line's own code path in this process (``core.cli``: read the EXRs,
  refocus, write the EXR), start-up excluded: the median of ``--repeats`` runs after a warm-up;
* by Blender's compositor Defocus node (``use_zbuffer``, blur_max just above the largest CoC),
  one run: upload, node, EXR write.

Printed per lens: both wall times and their ratio, and both process CPU times and their ratio (the
fair figure on a shared machine: wall time there depends on what else runs; run with ``--threads 1``
so that core's CPU time holds no OpenMP spin-waiting). Then core at 4K in a
fresh process (time and peak memory), the fast preview's PSNR cost against the full render, PSNR
against Cycles' depth of field for the lens it was rendered with, and GPU milliseconds where a CUDA
or MPS device is present.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from core.optics import Lens

SIZE_1080P = (1920, 1080)
SIZE_4K = (3840, 2160)
RENDER_SIZE = (640, 360)
RENDER_LENS = Lens(focal_length_mm=50.0, f_stop=2.0, focus_distance=3.0)
# name -> lens: the README's scene, near and far focus, wide open to stopped down.
LENSES = {
    "f2-3m": RENDER_LENS,
    "f1.4-1.2m": Lens(50.0, 1.4, 1.2),
    "f2.8-10m": Lens(50.0, 2.8, 10.0),
    "f4-5m": Lens(50.0, 4.0, 5.0),
    "f8-2m": Lens(50.0, 8.0, 2.0),
}
TARGET_RATIO = 20.0
GOAL_RATIO = 30.0
TARGET_4K_S = 3.0


def speed_scene():
    """A room-sized scene from 1 to 10 m: posts and balls near, boxes and lights farther, a wall at 10 m."""
    from blender_scenes import scene as bs

    M, T = bs.Material, bs.Texture

    def light(x: float, y: float, z: float, colour: tuple[float, float, float]) -> bs.Primitive:
        return bs.Primitive("ico_sphere", (x, y, z), (0.05, 0.05, 0.05),
                            material=M(T("flat", (0.0, 0.0, 0.0)), emission=40.0, emission_colour=colour))

    return bs.SceneSpec(objects=(
        bs.Plane(10.0, (16.0, 9.0), offset=(0.0, 3.5), material=M(T("brick", (0.55, 0.25, 0.15), (0.45, 0.4, 0.35), 4.0))),
        bs.Ground(z=0.0, size=24.0, centre=(0.0, 6.0), material=M(T("checker", (0.7, 0.68, 0.62), (0.2, 0.18, 0.16), 2.0))),
        bs.Primitive("cube", (-0.3, 1.0, 0.5), (0.06, 0.06, 1.2), material=M(T("noise", (0.6, 0.4, 0.2), (0.25, 0.12, 0.05), 30.0))),
        bs.Primitive("sphere", (0.42, 1.6, 0.42), (0.3, 0.3, 0.3), material=M(T("voronoi", (0.9, 0.85, 0.3), (0.1, 0.3, 0.5), 30.0))),
        bs.Primitive("cube", (-0.4, 3.0, 0.3), (0.6, 0.6, 0.6), rotation=(0.0, 0.0, 0.6),
                     material=M(T("checker", (0.2, 0.45, 0.8), (0.9, 0.9, 0.9), 10.0))),
        bs.Primitive("cylinder", (1.1, 4.5, 0.5), (0.5, 0.5, 1.0), material=M(T("brick", (0.8, 0.8, 0.75), (0.3, 0.3, 0.35), 12.0))),
        bs.Primitive("sphere", (-1.6, 6.5, 0.6), (1.2, 1.2, 1.2), material=M(T("noise", (0.2, 0.6, 0.3), (0.9, 0.95, 0.7), 4.0))),
        bs.Primitive("torus", (1.8, 8.0, 0.9), (1.2, 1.2, 1.2), rotation=(1.2, 0.0, 0.3),
                     material=M(T("voronoi", (0.9, 0.5, 0.6), (0.3, 0.2, 0.6), 8.0))),
        light(-0.8, 9.0, 1.6, (1.0, 0.8, 0.5)), light(0.6, 9.2, 2.1, (0.6, 0.8, 1.0)),
        light(2.6, 8.8, 1.9, (1.0, 0.5, 0.4)), light(-2.4, 9.5, 2.4, (0.9, 1.0, 0.8)),
        bs.Sun(rotation=(0.8, 0.0, 0.6), strength=3.0),
    ), world=(0.45, 0.5, 0.6), pose=bs.CameraPose((0.0, 0.0, 0.5), (0.0, 10.0, 0.3)))


def cached_renders(folder: Path, rerender: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All-in-focus image, its Z pass and Cycles' DoF render at RENDER_SIZE, rendered once and cached."""
    from blender_scenes import scene as bs

    paths = folder / "aif640.exr", folder / "dof640.exr"
    if rerender or not all(p.is_file() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        # Denoised, one thread (a shared machine); about a CPU-minute each.
        settings = bs.RenderSettings(width=RENDER_SIZE[0], height=RENDER_SIZE[1], samples=64,
                                     adaptive_threshold=0.02, denoise=True, threads=1)
        scn = bs.build(speed_scene(), settings, RENDER_LENS)
        for path, dof in zip(paths, (False, True)):
            print(f"rendering {path.name} with Cycles (cached for later runs) ...", file=sys.stderr, flush=True)
            bs.render(scn, path, dof=dof)
    aif = bs.read_frame(paths[0])
    return aif.image, aif.depth, bs.read_frame(paths[1]).image


def upscale(image: np.ndarray, depth: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Inputs resampled to ``size`` (w, h): a bigger frame with the same content and blur."""
    return (cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST))


def frame_files(folder: Path, image: np.ndarray, depth: np.ndarray, size: tuple[int, int]) -> tuple[Path, Path]:
    """The enlarged frame as Blender writes a render: half-float RGB and a 32-bit Z, ZIP; cached."""
    from core.imageio import write_exr

    tag = f"{size[0]}x{size[1]}"
    paths = folder / f"image-{tag}.exr", folder / f"depth-{tag}.exr"
    if not all(p.is_file() for p in paths):
        img, dep = upscale(image, depth, size)
        write_exr(paths[0], {"R": img[..., 0], "G": img[..., 1], "B": img[..., 2]}, half=True)
        write_exr(paths[1], {"Z": dep})
    return paths


def cli_args(image: Path, depth: Path, lens: Lens, output: Path, extra: list[str] = ()) -> list[str]:
    return ["defocus", "--image", str(image), "--depth", str(depth), "--focus-distance", str(lens.focus_distance),
            "--f-stop", str(lens.f_stop), "--focal-length", str(lens.focal_length_mm), "--output", str(output),
            "--quiet", "--device", "cpu", *extra]


def time_cli(argv: list[str], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of the command line's run, in this process (start-up excluded)."""
    from core.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    args.run(args)  # warm-up: imports, caches
    walls, cpus = [], []
    for _ in range(repeats):
        args = parser.parse_args(argv)
        wall, cpu = time.perf_counter(), time.process_time()
        args.run(args)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def time_node(node, image: np.ndarray, depth: np.ndarray, lens: Lens) -> tuple[float, float, np.ndarray]:
    """Wall (the node's own: upload, composite, EXR write) and CPU seconds of one Defocus node run."""
    from blender_scenes.defocus_node import fitted_blur_max

    cpu = time.process_time()
    out = node(image, depth, lens, fitted_blur_max(depth, lens))
    return node.seconds, time.process_time() - cpu, out


def peak_rss_gib() -> float:
    """Peak resident memory of this process image, GiB (VmHWM: unlike ru_maxrss, not inherited over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child_4k(argv: list[str]) -> None:
    """Subprocess body: one 4K command-line run after the imports; time and peak memory as JSON."""
    from core.cli import build_parser

    import core.defocus  # noqa: F401  (the imports are start-up, not the run)
    import core.pipelines.defocus  # noqa: F401

    args = build_parser().parse_args(argv)
    before = peak_rss_gib()
    wall, cpu = time.perf_counter(), time.process_time()
    args.run(args)
    print(json.dumps({"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu,
                      "peak_gib": peak_rss_gib(), "start_gib": before}))


def measure_4k(argv: list[str], threads: int | None = None) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.defocus_speed", "--child-4k", json.dumps(argv)]
    if threads:
        command += ["--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def gpu_lines(image: np.ndarray, depth: np.ndarray, repeats: int) -> list[str]:
    """1080p and 4K milliseconds of core's refocus on a CUDA or MPS device, if there is one."""
    from core.defocus import refocus
    from core.tensors import image_to_tensor, map_to_tensor

    if torch.cuda.is_available():
        device, name, sync = torch.device("cuda"), torch.cuda.get_device_name(), torch.cuda.synchronize
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, name, sync = torch.device("mps"), "Apple MPS", torch.mps.synchronize
    else:
        return ["GPU: not measured: no device lent (no CUDA or MPS here)"]
    lines = []
    for label, size in (("1080p", SIZE_1080P), ("4K", SIZE_4K)):
        img, dep = upscale(image, depth, size)
        x, d = image_to_tensor(img, device), map_to_tensor(dep, device)
        times = []
        with torch.no_grad():
            refocus(x, d, RENDER_LENS)
            sync()
            for _ in range(max(repeats, 5)):
                start = time.perf_counter()
                refocus(x, d, RENDER_LENS)
                sync()
                times.append(time.perf_counter() - start)
        lines.append(f"GPU ({name}) {label}: {statistics.median(times) * 1000:.1f} ms (median of {len(times)})")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.defocus_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/bench", help="output folder (default out/bench)")
    p.add_argument("--rerender", action="store_true", help="render the Cycles frames again")
    p.add_argument("--repeats", type=int, default=3, help="timed core runs per lens (default 3)")
    p.add_argument("--scenes", nargs="*", choices=sorted(LENSES), help="only these lenses (default: all)")
    p.add_argument("--node-4k", nargs="*", default=[], choices=sorted(LENSES),
                   help="also time Blender's node at 4K for these lenses (minutes each)")
    p.add_argument("--gpu-only", action="store_true", help="only the GPU timings (no Blender needed)")
    p.add_argument("--threads", type=int, help="core's torch threads (default: torch's own); 1 gives core's CPU "
                                                "time without OpenMP's spin-waiting on a busy machine")
    p.add_argument("--child-4k", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_4k:
        child_4k(json.loads(args.child_4k))
        return 0
    folder = Path(args.out) / "speed"
    if args.gpu_only:
        from core.imageio import read_image, read_map

        path = folder / "aif640.exr"
        for line in gpu_lines(read_image(path)[..., :3], read_map(path), args.repeats):
            print(line)
        return 0

    from blender_scenes.agreement import score
    from blender_scenes.defocus_node import BlenderDefocus
    from core.imageio import read_image, read_map

    small, small_depth, cycles_small = cached_renders(folder, args.rerender)
    files = {size: frame_files(folder, small, small_depth, size) for size in (SIZE_1080P, SIZE_4K)}
    out = folder / "core.exr"
    image, depth = read_image(files[SIZE_1080P][0]), read_map(files[SIZE_1080P][1])
    print(f"frame: 1920x1080 (a {RENDER_SIZE[0]}x{RENDER_SIZE[1]} Cycles render enlarged), depth "
          f"{depth.min():.2f}-{depth.max():.2f} m, 50 mm; half-float colour in, half-float EXR out; "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    head = f"{'lens':<11}{'CoC px':>14}{'core s':>9}{'node s':>9}{'wall x':>8}{'core cpu':>10}{'node cpu':>10}{'cpu x':>8}"
    print(head)
    print("-" * len(head))
    chosen = [n for n in LENSES if not args.scenes or n in args.scenes]
    ratios = []
    node_out = {}
    with BlenderDefocus(*SIZE_1080P) as node:
        for name in chosen:
            lens = LENSES[name]
            coc = lens.coc_scale(*SIZE_1080P) * (1.0 / lens.focus_distance - 1.0 / depth)
            core_wall, core_cpu = time_cli(cli_args(*files[SIZE_1080P], lens, out), args.repeats)
            node_wall, node_cpu, node_out[name] = time_node(node, image, depth, lens)
            ratios.append((node_wall / core_wall, node_cpu / core_cpu))
            print(f"{name:<11}{f'{coc.min():.0f}..{coc.max():.0f}':>14}{core_wall:>9.2f}{node_wall:>9.2f}"
                  f"{node_wall / core_wall:>7.1f}x{core_cpu:>10.2f}{node_cpu:>10.2f}{node_cpu / core_cpu:>7.1f}x", flush=True)
    print("-" * len(head))
    wall_min, cpu_min = min(r[0] for r in ratios), min(r[1] for r in ratios)
    verdict = lambda r: "MET" if r >= TARGET_RATIO else "NOT MET"  # noqa: E731
    print(f"lowest ratio: wall {wall_min:.1f}x, CPU {cpu_min:.1f}x (target >= {TARGET_RATIO:g}x: wall {verdict(wall_min)}, "
          f"CPU {verdict(cpu_min)}; goal {GOAL_RATIO:g}x)")

    m = measure_4k(cli_args(*files[SIZE_4K], RENDER_LENS, folder / "core4k.exr"), args.threads)
    print(f"core at 3840x2160, {'f2-3m'} (command line, fresh process): {m['seconds']:.2f} s wall, {m['cpu_seconds']:.2f} s CPU, "
          f"peak memory {m['peak_gib']:.2f} GiB (target <= {TARGET_4K_S:g} s: {'MET' if m['seconds'] <= TARGET_4K_S else 'NOT MET'})",
          flush=True)
    if args.node_4k:
        image4, depth4 = read_image(files[SIZE_4K][0]), read_map(files[SIZE_4K][1])
        with BlenderDefocus(*SIZE_4K) as node4:
            for name in args.node_4k:
                lens = LENSES[name]
                core_wall, core_cpu = time_cli(cli_args(*files[SIZE_4K], lens, folder / "core4k.exr"), 1)
                node_wall, node_cpu, _ = time_node(node4, image4, depth4, lens)
                print(f"4K {name}: core {core_wall:.2f} s / {core_cpu:.2f} s CPU, node {node_wall:.2f} s / {node_cpu:.2f} s CPU: "
                      f"{node_wall / core_wall:.1f}x wall, {node_cpu / core_cpu:.1f}x CPU", flush=True)

    # Quality: the full render and the fast preview against Cycles' depth of field (the lens it was
    # rendered with), and the preview against the full render.
    from core.defocus import refocus
    from core.pipelines.defocus import LayeredDefocusParams
    from core.tensors import image_to_tensor, map_to_tensor, tensor_to_image

    cycles = cv2.resize(cycles_small, SIZE_1080P, interpolation=cv2.INTER_LINEAR)
    x, d = image_to_tensor(image, torch.device("cpu")), map_to_tensor(depth, torch.device("cpu"))
    renders = {}
    for scale in (1, 2, 4):
        effects = LayeredDefocusParams(focal_length_mm=50.0, f_stop=2.0, focus_distance_m=3.0,
                                       preview_scale=scale).effects()
        with torch.no_grad():
            start = time.process_time()
            renders[scale] = tensor_to_image(refocus(x, d, RENDER_LENS, effects=effects))
            seconds = time.process_time() - start
        versus = "" if scale == 1 else f", {score(renders[scale], renders[1]).psnr:.2f} dB against the full render"
        label = "full render" if scale == 1 else f"preview 1/{scale}"
        print(f"{label}: {seconds:.2f} s CPU (compute only), {score(renders[scale], cycles).psnr:.2f} dB against "
              f"Cycles{versus}")
    print(f"Blender node against Cycles: {score(node_out.get('f2-3m', renders[1]), cycles).psnr:.2f} dB"
          if "f2-3m" in node_out else "")
    for line in gpu_lines(small, small_depth, args.repeats):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
