"""What a Refocus node costs inside a compositor render, next to Blender's own Defocus node.

    python -m bench.compositor_speed                # 1920x1080, the demo scene, one process
    python -m bench.compositor_speed --size 480 270 # quicker

One frame of the compositor demo's scene (ball and box near, lamps far, 50 mm f/1.4 focused at
1.6 m) is rendered through four trees in one run, with the extension installed the way a user
installs it:

* Render Layers -> Group Output: the render alone, the baseline;
* Render Layers -> Defocus (Blender's node, use_zbuffer, the scene camera, blur_max just above
  the largest CoC) -> Group Output;
* Render Layers -> Refocus Layered Defocus (Use Scene Camera) -> Group Output, the first time in
  the session: this includes starting the worker process;
* the same again with the result cache emptied: the steady cost per frame of an animation.

Each tree's cost is its time minus the baseline's (best of ``--repeats``, the trees interleaved).
Printed as seconds and as the ratio between the two nodes. The cache is emptied rather than the
frame changed so every Refocus run computes the same thing; the worker keeps running between them.
Note that the Refocus path renders the scene's passes for the node itself (Python cannot read
Render Result pixels), so its cost includes that render.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from blender_scenes import demo_compositor as demo


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(out: Path, size: tuple[int, int], samples: int, repeats: int) -> dict[str, float]:
    import bpy

    from blender_scenes.defocus_node import fitted_blur_max
    from blender_scenes.scene import quiet
    from core.imageio import read_map
    from core.optics import Lens

    out.mkdir(parents=True, exist_ok=True)
    demo.install_extension(out)
    scn = demo.build_scene(frames=2, samples=samples, out=out)
    scn.render.resolution_x, scn.render.resolution_y, scn.render.resolution_percentage = *size, 100
    scn.frame_set(1)
    tree = scn.compositing_node_group
    nodes, links = tree.nodes, tree.links
    layers, output = nodes["Render Layers"], nodes["Group Output"]
    refocus = nodes["Layered Defocus"]
    for node in [n for n in nodes if n.bl_idname == "CompositorNodeOutputFile"]:
        nodes.remove(node)  # the demo saves its input; not part of what is measured

    def render() -> None:
        with quiet():
            bpy.ops.render.render(scene=scn.name)

    def route(node: Any | None) -> None:
        for link in list(output.inputs[0].links):
            links.remove(link)
        links.new((node or layers).outputs["Image"], output.inputs[0])

    # The depth the Defocus node will meet, for its blur_max: one render with a File Output of Z.
    saver = nodes.new("CompositorNodeOutputFile")
    saver.directory, saver.file_name = str(out) + "/", "depth_"
    saver.format.media_type = "IMAGE"
    saver.format.file_format, saver.format.color_depth = "OPEN_EXR", "32"
    saver.file_output_items.new("FLOAT", "depth")
    links.new(layers.outputs["Depth"], saver.inputs[0])
    route(None)
    render()  # also the warm-up: Cycles loads its kernels and builds the scene once
    depth = read_map(next(out.glob("depth_*.exr")), "R")  # a float socket is written as grey RGBA
    nodes.remove(saver)
    camera = scn.camera.data
    lens = Lens(focal_length_mm=camera.lens, f_stop=camera.dof.aperture_fstop,
                focus_distance=float(demo.FOCUS_PATH[0]), sensor_width_mm=camera.sensor_width)

    defocus = nodes.new("CompositorNodeDefocus")
    defocus.scene, defocus.use_zbuffer = scn, True
    defocus.f_stop, defocus.blur_max = lens.f_stop, fitted_blur_max(depth, lens)
    links.new(layers.outputs["Image"], defocus.inputs["Image"])
    links.new(layers.outputs["Depth"], defocus.inputs["Z"])

    evaluator = importlib.import_module(f"{demo.MODULE}.frame_evaluation")
    times: dict[str, float] = {}
    route(refocus)
    times["Refocus, first frame (starts the worker)"] = _timed(render)
    if refocus.state != "DONE":
        raise SystemExit(f"bench.compositor_speed: the Layered Defocus node failed: {refocus.message}")

    def refocus_again() -> None:
        evaluator.cache().clear()
        render()

    # Best of `repeats`, the trees interleaved so that a slow spell of the machine hits them all.
    best = {"render alone": np.inf, "Blender Defocus node": np.inf, "Refocus, next frames": np.inf}
    for _ in range(repeats):
        for name, node, fn in (("render alone", None, render), ("Blender Defocus node", defocus, render),
                               ("Refocus, next frames", refocus, refocus_again)):
            route(node)
            best[name] = min(best[name], _timed(fn))
    times.update(best)
    client = importlib.import_module(f"{demo.MODULE}.worker_client").current_client()
    times["worker start"] = client.start_seconds if client is not None else float("nan")
    times["blur_max"] = defocus.blur_max
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compositor_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/bench_compositor", help="scratch folder (default out/bench_compositor)")
    p.add_argument("--size", type=int, nargs=2, default=(1920, 1080), metavar=("W", "H"))
    p.add_argument("--repeats", type=int, default=2, help="renders of each tree, the best kept (default 2)")
    p.add_argument("--samples", type=int, default=4, help="Cycles samples (default 4: the render is not what is measured)")
    args = p.parse_args(argv)
    if "bpy" in sys.modules:
        p.error("run this as its own process: Blender's user folders are fixed once bpy is imported")
    out = Path(args.out).resolve()
    os.environ["BLENDER_USER_RESOURCES"] = str(out / "blender_user")
    os.environ.setdefault("REFOCUS_PYTHON", sys.executable)
    t = run(out, tuple(args.size), args.samples, args.repeats)
    base = t["render alone"]
    blender = t["Blender Defocus node"] - base
    first = t["Refocus, first frame (starts the worker)"] - base
    steady = t["Refocus, next frames"] - base
    w, h = args.size
    print(f"compositor render of one {w}x{h} frame, {args.samples} Cycles samples, 50 mm f/1.4 focused at "
          f"{demo.FOCUS_PATH[0]} m (Defocus blur_max {t['blur_max']:.0f})")
    print(f"{'tree':<44}{'seconds':>9}{'added':>9}")
    for name in ("render alone", "Blender Defocus node", "Refocus, first frame (starts the worker)",
                 "Refocus, next frames"):
        print(f"{name:<44}{t[name]:9.2f}{t[name] - base:9.2f}")
    print(f"worker start (spawn to ready, torch imported): {t['worker start']:.2f} s; "
          f"the first frame adds {first:.2f} s in all")
    print(f"Refocus node adds {steady:.2f} s a frame, Blender's Defocus node {blender:.2f} s: "
          f"ratio {blender / max(steady, 1e-6):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
