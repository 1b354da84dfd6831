"""Depth from a real focal stack nobody rendered, as a PNG grid a person can judge by eye.

``python -m models.dff.real_demo [--stack FOLDER] [--focal-length MM] [--weights PATH] --out grid.png``

The default stack is ``models/dff/samples/balls`` (ten phone photographs, infinity to 10 cm; see
its README). The slices are aligned for focus breathing from the focus distances and the focal
length, refined by ECC, then both methods run: the classical one always, the learned one when
weights are given or shipped, and with ``--f-stop`` the physical method and CameraNet (the camera's
blur; ``--sensor-width``). There is no ground truth; the grid shows the nearest and farthest
slices, then per method the all-in-focus image, depth (turbo colour map of inverse depth over the
focus range: red near, blue far) and confidence (white: sure).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from blender_scenes.dataset_preview import depth_tile
from blender_scenes.sheet import caption, grid, tile, write_png
from core.errors import InputError, check
from core.focal_stack.alignment import align_stack
from core.focal_stack.depth_from_focus import FocusResult, depth_from_focus
from core.focal_stack.learned import default_weights, learned_depth, load_model
from core.imageio import is_image_path, read_image

SAMPLE = Path(__file__).resolve().parent / "samples" / "balls"


def read_stack(folder: Path) -> tuple[torch.Tensor, list[float]]:
    """The slices of a folder (sorted by name) and its focus_distances.txt (metres)."""
    files = sorted(f for f in folder.iterdir() if is_image_path(f))
    lines = (folder / "focus_distances.txt").read_text(encoding="utf-8").splitlines()
    distances = [float(v) for v in (line.split("#")[0].strip() for line in lines) if v]
    check(len(files) == len(distances), f"{folder}: {len(files)} images but {len(distances)} focus distances")
    stack = torch.stack([torch.from_numpy(np.ascontiguousarray(read_image(f)[..., :3].transpose(2, 0, 1)))
                         for f in files])
    return stack, distances


def method_row(name: str, result: FocusResult, near: float, far: float, seconds: float) -> list[np.ndarray]:
    conf = np.repeat(np.round(result.confidence[0, 0].cpu().numpy() * 255).astype(np.uint8)[..., None], 3, axis=2)
    return [caption(tile(result.all_in_focus[0].permute(1, 2, 0).cpu().numpy()), f"{name}: all-in-focus"),
            caption(depth_tile(result.depth[0, 0].cpu().numpy(), near, far),
                    f"{name}: depth {near:.2f}-{far:.1f} m ({seconds:.1f} s)"),
            caption(conf, f"{name}: confidence")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.dff.real_demo", description=__doc__.split("\n")[0])
    p.add_argument("--stack", type=Path, default=SAMPLE, help="folder of slices with focus_distances.txt")
    p.add_argument("--focal-length", type=float, default=2.0, help="lens focal length, mm (the sample's: 2)")
    p.add_argument("--weights", help="FocalStackNet weights (default: the shipped ones, if any)")
    p.add_argument("--f-stop", type=float, help="aperture f-number: adds the physical and learned-camera rows (they "
                                                "need the camera)")
    p.add_argument("--camera-weights", help="CameraNet weights (default: the shipped ones)")
    p.add_argument("--sensor-width", type=float, default=5.6, help="sensor width, mm, for the physical method (5.6)")
    p.add_argument("--far", type=float, default=1.0, help="far end of the colour map, m (default 1)")
    p.add_argument("--out", required=True, help="PNG to write")
    args = p.parse_args(argv)
    try:
        stack, distances = read_stack(args.stack)
        start = time.perf_counter()
        aligned = align_stack(stack, distances, args.focal_length)
        print(f"aligned {len(distances)} slices of {stack.shape[-1]}x{stack.shape[-2]} in "
              f"{time.perf_counter() - start:.2f} s (ECC {aligned.seconds:.2f} s)", flush=True)
        near, far = min(distances), args.far
        order = np.argsort(distances)
        rows = [[caption(tile(aligned.images[i].permute(1, 2, 0).numpy()), f"slice focused at {distances[i]:.2f} m")
                 for i in (order[0], order[len(order) // 2], order[-2])]]
        start = time.perf_counter()
        classical = depth_from_focus(aligned.images, distances)
        rows.append(method_row("classical", classical, near, far, time.perf_counter() - start))
        if args.f_stop is not None:
            from core.focal_stack.defocus_volume import physical_depth
            from core.optics import Lens

            lens = Lens(args.focal_length, args.f_stop, 1.0, args.sensor_width)
            start = time.perf_counter()
            physical = physical_depth(aligned.images, distances, lens)
            rows.append(method_row("physical", physical, near, far, time.perf_counter() - start))
            try:
                from core.focal_stack.camera_learned import camera_learned_depth, load_model as load_camera_model

                camera_model = load_camera_model(args.camera_weights)
                start = time.perf_counter()
                any_camera = camera_learned_depth(aligned.images, distances, lens, camera_model)
                rows.append(method_row("learned-camera", any_camera, near, far, time.perf_counter() - start))
            except InputError as exc:
                print(f"no CameraNet row: {exc}", flush=True)
        weights = args.weights
        if weights is None:
            try:
                weights = str(default_weights())
            except InputError:
                print("no FocalStackNet weights shipped yet: classical only", flush=True)
        if weights is not None:
            model = load_model(weights)
            start = time.perf_counter()
            learned = learned_depth(aligned.images, distances, model)
            rows.append(method_row("learned", learned, near, far, time.perf_counter() - start))
    except InputError as exc:
        sys.stderr.write(f"models.dff.real_demo: error: {exc}\n")
        return 2
    write_png(args.out, grid(rows, title=f"Focal stack depth on {args.stack.name}: {len(distances)} real slices"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
