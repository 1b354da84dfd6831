"""Speed of Focal Stack Depth on a 512x512, 5-slice stack: ``python -m bench.focal_stack_speed``.

Times (the minimum of several runs, as the CPU is shared) of:

* the classical method with each focus measure, against a peer measured in the same run: the
  plainest depth from focus in OpenCV (|Laplacian|, box filter, argmax per pixel), so the ratio
  says what the filtering, the sub-slice fit, the confidence and the all-in-focus image cost;
* alignment: the breathing warp alone and ECC refinement with each motion model (seed 004 reports
  0.87 s for its homography baseline on a Ryzen 3600 and 0.09 s for its network on a GPU);
* the physical cost volume (core.focal_stack.defocus_volume), one and two passes;
* FocalStackNet inference (tiny and full; weights do not change the time);
* the camera-aware learned method (the physical cost volume read out by CameraNet), end to end.

Targets (issues 6 and 21): classical and physical <= 1 s on the 2-core CPU; learned <= 3 s on the
CPU, <= 20 ms on an H100.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import cv2
import numpy as np
import torch

from core.focal_stack.alignment import align_stack, breathing_scales, scale_about_centre, warp_images
from core.focal_stack.camera_learned import camera_learned_depth
from core.focal_stack.camera_net import CameraNet, CameraNetConfig
from core.focal_stack.defocus_volume import physical_depth
from core.focal_stack.depth_from_focus import depth_from_focus
from core.focal_stack.focus_measures import MEASURES
from core.focal_stack.synthetic import dioptre_spaced, noise_texture, render_stack, slanted_plane
from core.optics import Lens
from core.focal_stack.nets import CONFIGS, FocalStackNet


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocations, OpenCV and MKL-DNN initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def opencv_peer(slices: list[np.ndarray]) -> np.ndarray:
    """The textbook DfF: per-slice |Laplacian| summed over a 9x9 box, index of the maximum."""
    measures = [cv2.boxFilter(np.abs(cv2.Laplacian(s, cv2.CV_32F)), -1, (9, 9)) for s in slices]
    return np.argmax(np.stack(measures), axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.focal_stack_speed", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--slices", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 wins on a busy CPU)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size, n = args.size, args.slices
    device = torch.device(args.device)
    print(f"{size}x{size}, {n} slices, torch {torch.__version__}, {torch.get_num_threads()} threads, {device}")

    g = torch.Generator().manual_seed(0)
    image = noise_texture(size, size, g)
    depth = slanted_plane(size, size, 0.4, 2.0)
    focus = dioptre_spaced(0.4, 2.0, n)
    stack = render_stack(image, depth, Lens(50.0, 2.8, sensor_width_mm=36.0), focus, k_max=11).to(device)

    grey = [np.ascontiguousarray(s.mean(dim=0).cpu().numpy()) for s in stack]
    peer = best_of(lambda: opencv_peer(grey), args.repeats)
    print(f"\npeer: OpenCV |Laplacian| + box + argmax      {peer * 1e3:8.1f} ms")
    print("classical depth from focus (guided filter, sub-slice fit, confidence, all-in-focus):")
    for measure in sorted(MEASURES):
        t = best_of(lambda: depth_from_focus(stack, focus, measure=measure), args.repeats)
        print(f"  {measure:<24} {t * 1e3:8.1f} ms  ({t / peer:5.1f}x the peer; target <= 1000 ms)")

    lens = Lens(50.0, 2.8, sensor_width_mm=36.0)
    print("physical cost volume (camera-aware; target <= 1000 ms):")
    for passes in (1, 2):
        t = best_of(lambda: physical_depth(stack, focus, lens, passes=passes), args.repeats)
        print(f"  {f'{passes} pass(es)':<24} {t * 1e3:8.1f} ms  ({t / peer:5.1f}x the peer)")

    f_mm = 50.0
    scales, ref = breathing_scales(focus, f_mm)
    truth = np.stack([scale_about_centre(float(s), size, size, (0.7, -0.4)) for s in scales])
    truth[ref] = np.eye(3)
    captured = warp_images(stack, torch.from_numpy(np.linalg.inv(truth)))
    print(f"\nalignment of {n} slices (seed 004: homography 870 ms on a CPU, its network 92 ms on a GPU):")
    t = best_of(lambda: align_stack(captured, focus, f_mm, refine=None), args.repeats)
    print(f"  {'breathing warp only':<24} {t * 1e3:8.1f} ms")
    for motion in ("translation", "affine", "homography"):
        t = best_of(lambda: align_stack(captured, focus, f_mm, refine=motion), args.repeats)
        ecc = align_stack(captured, focus, f_mm, refine=motion).seconds
        print(f"  {'breathing + ECC ' + motion:<24} {t * 1e3:8.1f} ms  (ECC {ecc * 1e3:.0f} ms)")

    print("\nFocalStackNet inference:")
    for name, config in CONFIGS.items():
        net = FocalStackNet(config).to(device).eval()
        fd = torch.tensor([focus], device=device)
        with torch.no_grad():
            def run() -> None:
                net(stack[None], fd)
                if device.type == "cuda":
                    torch.cuda.synchronize()
            t = best_of(run, max(2, args.repeats // 2))
        print(f"  {name:<24} {t * 1e3:8.1f} ms  ({t / peer:5.1f}x the peer)")

    print("\ncamera-aware learned method (physical cost volume + CameraNet; target <= 3000 ms on the CPU):")
    camera_net = CameraNet(CameraNetConfig(width=12)).to(device).eval()  # the shipped width

    def learned_camera() -> None:
        camera_learned_depth(stack, focus, lens, camera_net)
        if device.type == "cuda":
            torch.cuda.synchronize()
    t = best_of(learned_camera, max(2, args.repeats // 2))
    print(f"  {'end to end':<24} {t * 1e3:8.1f} ms  ({t / peer:5.1f}x the peer)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
