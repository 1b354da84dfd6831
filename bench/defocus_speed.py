"""Speed: core's refocus vs Blender's Defocus node on the same 1920x1080 frame, in one run.

    python -m bench.defocus_speed [--out out/bench] [--rerender] [--repeats N]

A textured Cycles scene with everything between 1 and 10 m is rendered once at 1920x1080 without
and with depth of field (50 mm, f/2; cached under ``OUT/speed/``, ``--rerender`` redoes it). Both
refocusers then run on the all-in-focus render and its Z pass with the same camera: core (median
of ``--repeats`` runs after a warm-up) and Blender's compositor Defocus node (one run, blur_max
just above the largest CoC). Printed: both times, their ratio, both PSNR/SSIM against Cycles'
depth of field, and core's time and peak memory at 3840x2160 (measured in a fresh subprocess so
that nothing else counts against it). Where CUDA is available, 1080p and 4K GPU times too.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from core.tensors import image_to_tensor, map_to_tensor, tensor_to_image
from core.defocus import refocus
from core.optics import Lens

SIZE_1080P = (1920, 1080)
SIZE_4K = (3840, 2160)
LENS = Lens(focal_length_mm=50.0, f_stop=2.0, focus_distance=3.0)
TARGET_RATIO = 20.0
TARGET_4K_GB = 6.0


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


def render_settings(width: int, height: int):
    from blender_scenes import scene as bs

    # Denoised, so that a 1080p ground truth takes minutes, not an hour; used for PSNR only.
    return bs.RenderSettings(width=width, height=height, samples=64, adaptive_threshold=0.02, denoise=True)


def cached_renders(folder: Path, rerender: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All-in-focus image, its Z pass and Cycles' DoF render at 1080p, rendered once and cached."""
    from blender_scenes import scene as bs

    paths = folder / "aif.exr", folder / "dof.exr"
    if rerender or not all(p.is_file() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        scn = bs.build(speed_scene(), render_settings(*SIZE_1080P), LENS)
        for path, dof in zip(paths, (False, True)):
            start = time.perf_counter()
            print(f"rendering {path.name} with Cycles at 1920x1080 (cached for later runs) ...", file=sys.stderr, flush=True)
            bs.render(scn, path, dof=dof)
            print(f"  {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    aif = bs.read_frame(paths[0])
    return aif.image, aif.depth, bs.read_frame(paths[1]).image


def tensors(image: np.ndarray, depth: np.ndarray, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    return image_to_tensor(image, torch.device(device)), map_to_tensor(depth, torch.device(device))


def upscale(image: np.ndarray, depth: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The 1080p inputs resampled to ``size`` (w, h): a 4K frame with the same content and blur."""
    return (cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST))


def core_options(k_max: int | None) -> dict[str, int]:
    """Keyword arguments for refocus: core's own defaults unless a k_max is asked for."""
    return {} if k_max is None else {"k_max": k_max}


def time_core(image: torch.Tensor, depth: torch.Tensor, repeats: int, k_max: int | None = None) -> tuple[float, torch.Tensor]:
    """Median seconds of ``repeats`` refocus runs after one warm-up (CUDA-synchronised on a GPU)."""
    sync = torch.cuda.synchronize if image.is_cuda else (lambda: None)
    options = core_options(k_max)
    with torch.no_grad():
        out = refocus(image, depth, LENS, **options)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = refocus(image, depth, LENS, **options)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure_4k_child(aif_path: str, k_max: int | None) -> None:
    """Subprocess body: refocus a 4K frame once, print time and peak resident memory as JSON."""
    from core.imageio import read_image, read_map

    image, depth = upscale(read_image(aif_path)[..., :3], read_map(aif_path), SIZE_4K)
    img, dep = tensors(image, depth)
    del image, depth
    before = peak_rss_gib()
    start = time.perf_counter()
    with torch.no_grad():
        refocus(img, dep, LENS, **core_options(k_max))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_gib": peak_rss_gib(), "inputs_loaded_gib": before}))


def peak_rss_gib() -> float:
    """Peak resident memory of this process image, GiB.

    VmHWM, not getrusage's ru_maxrss: the latter survives exec, so a child started from a big
    parent (this bench holds Blender and 1080p renders) would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure_4k(aif_path: Path, k_max: int | None) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.defocus_speed", "--child-4k", str(aif_path)]
    if k_max is not None:
        command += ["--k-max", str(k_max)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def gpu_times(image: np.ndarray, depth: np.ndarray, repeats: int, k_max: int | None) -> list[str]:
    lines = []
    for label, size in (("1080p", SIZE_1080P), ("4K", SIZE_4K)):
        img, dep = tensors(*upscale(image, depth, size), device="cuda")
        torch.cuda.reset_peak_memory_stats()
        seconds, _ = time_core(img, dep, max(repeats, 10), k_max)
        peak = torch.cuda.max_memory_allocated() / 2**30
        lines.append(f"core on {torch.cuda.get_device_name()} at {label}: {seconds * 1000:.1f} ms "
                     f"(median of {max(repeats, 10)}), peak GPU memory {peak:.2f} GiB")
    return lines


def gpu_only(aif_path: Path, repeats: int, k_max: int | None) -> int:
    """GPU timings without bpy (a GPU machine need not have Blender): reads the cached render."""
    from core.imageio import read_image, read_map

    if not torch.cuda.is_available():
        print("GPU: CUDA not available", file=sys.stderr)
        return 1
    for line in gpu_times(read_image(aif_path)[..., :3], read_map(aif_path), repeats, k_max):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.defocus_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/bench", help="output folder (default out/bench)")
    p.add_argument("--rerender", action="store_true", help="render the Cycles frames again")
    p.add_argument("--repeats", type=int, default=3, help="timed core runs (default 3)")
    p.add_argument("--k-max", type=int, default=None, help="core's k_max (default: core's own default)")
    p.add_argument("--gpu-only", action="store_true", help="only the GPU timings, from the cached all-in-focus render")
    p.add_argument("--child-4k", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_4k:
        measure_4k_child(args.child_4k, args.k_max)
        return 0
    folder = Path(args.out) / "speed"
    if args.gpu_only:
        return gpu_only(folder / "aif.exr", args.repeats, args.k_max)

    from blender_scenes.agreement import score
    from blender_scenes.defocus_node import BlenderDefocus, fitted_blur_max

    image, depth, cycles = cached_renders(folder, args.rerender)
    h, w = depth.shape
    print(f"scene: {w}x{h}, depth {depth.min():.2f}-{depth.max():.2f} m, {LENS.focal_length_mm:g} mm f/{LENS.f_stop:g}, "
          f"focus {LENS.focus_distance:g} m, CPU threads {torch.get_num_threads()}", flush=True)

    img, dep = tensors(image, depth)
    core_s, core_out = time_core(img, dep, args.repeats, args.k_max)
    core_image = tensor_to_image(core_out)
    print(f"core:         {core_s:7.2f} s (median of {args.repeats}; k_max {args.k_max or 'default'})", flush=True)

    blur_max = fitted_blur_max(depth, LENS)
    print(f"Blender node: running (blur_max {blur_max:g} px); this takes a while ...", file=sys.stderr, flush=True)
    with BlenderDefocus(w, h) as node:
        node_image = node(image, depth, LENS, blur_max)
        node_s = node.seconds
    print(f"Blender node: {node_s:7.2f} s (one run, blur_max {blur_max:g} px)")
    ratio = node_s / core_s
    print(f"ratio:        core is {ratio:.1f}x faster (target >= {TARGET_RATIO:g}x: {'MET' if ratio >= TARGET_RATIO else 'NOT MET'})")
    core_score, node_score = score(core_image, cycles), score(node_image, cycles)
    print(f"vs Cycles DoF: core {core_score.psnr:.2f} dB / SSIM {core_score.ssim:.4f}, "
          f"node {node_score.psnr:.2f} dB / SSIM {node_score.ssim:.4f}")

    m = measure_4k(folder / "aif.exr", args.k_max)
    print(f"core at 3840x2160 (fresh process): {m['seconds']:.2f} s, peak memory {m['peak_gib']:.2f} GiB "
          f"(inputs loaded: {m['inputs_loaded_gib']:.2f} GiB; target within {TARGET_4K_GB:g} GB: "
          f"{'MET' if m['peak_gib'] * 2**30 / 1e9 <= TARGET_4K_GB else 'NOT MET'})")

    if torch.cuda.is_available():
        for line in gpu_times(image, depth, args.repeats, args.k_max):
            print(line)
    else:
        print("GPU: CUDA not available here; run on a GPU machine for 1080p/4K GPU times")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
