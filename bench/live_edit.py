"""Edit to pixels: a Refocus node edited after a render, next to Blender's own Defocus node.

    python -m bench.live_edit                 # 960x540 (issue 19's target: at most 1 s on the CPU)
    python -m bench.live_edit --size 480 270  # quicker

The extension is installed the way a user installs it. The three-plane scene of the add-on tests is
rendered once as F12 renders it (in a thread; ``tests/artist_fixtures.py``), then the Layered
Defocus node (its own lens, f/1) is edited five times: focus distance, f-stop, aperture blades,
kernel limit, focus distance again. Each edit runs the interface's update to the end: the passes of
the render (kept), probes, the worker, the node's pixels. The peer is what an edit of Blender's
Defocus node costs: compositing the same frame from the same passes through it (use_zbuffer,
blur_max just above the largest CoC), as Blender does on an edit. Printed as seconds and as ratios.
Numbers depend on the machine's load: the worker computes on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def native(out: str, width: int, height: int, focus_m: float, repeats: int) -> dict[str, Any]:
    """(Blender side) F12 once, then Render Layers -> Defocus -> output composited again from the
    kept passes, ``repeats`` times (each what an edit of the node costs)."""
    import math

    import bpy

    import addon_fixtures as af
    import artist_fixtures as A
    from blender_scenes.defocus_node import fitted_blur_max
    from core.imageio import read_map
    from core.optics import Lens

    scene, tree = A._scene_and_tree(width, height)
    A._own_lens(tree.nodes["Layered Defocus"], focus_m)
    scene.camera.data.dof.use_dof = False
    A.f12(scene)
    A.follow_up()
    last = af._addon("render_jobs").last_render(scene)
    lens = Lens(focal_length_mm=50.0, f_stop=1.0, focus_distance=focus_m)
    native_tree = af._tree(scene, "Native")
    rl = native_tree.nodes.new("CompositorNodeRLayers")
    defocus = native_tree.nodes.new("CompositorNodeDefocus")
    defocus.scene, defocus.use_zbuffer = scene, True
    defocus.f_stop, defocus.blur_max = lens.f_stop, fitted_blur_max(read_map(str(last.path)), lens)
    native_tree.links.new(rl.outputs["Image"], defocus.inputs["Image"])
    native_tree.links.new(rl.outputs["Depth"], defocus.inputs["Z"])
    native_tree.links.new(defocus.outputs[0], native_tree.nodes["Group Output"].inputs[0])
    camera = scene.camera.data
    camera.dof.use_dof, camera.dof.focus_distance, camera.dof.aperture_fstop = True, focus_m, 1.0
    recomposite = af._addon("renders").recomposite
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        recomposite(scene, last.path)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "blur_max": defocus.blur_max, "lens_ok": math.isfinite(defocus.blur_max)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_edit", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(960, 540), metavar=("W", "H"))
    args = parser.parse_args(argv)
    sys.path[:0] = [str(REPO / "tests"), str(REPO)]
    from addon_fixtures import run_session
    from blender_scenes.build_extension import build

    width, height = args.size
    with tempfile.TemporaryDirectory(prefix="refocus-bench-") as tmp:
        root = Path(tmp)
        run_session("install", root / "user", zip_path=str(build(root / "dist")))
        (root / "live").mkdir()
        (root / "native").mkdir()
        live = run_session("live", root / "user", timeout=1800, script=REPO / "tests" / "artist_fixtures.py",
                           out=str(root / "live"), width=width, height=height, edits=5)
        peer = run_session("native", root / "user", timeout=1800, script=Path(__file__).resolve(),
                           out=str(root / "native"), width=width, height=height, focus_m=3.0, repeats=3)
    blender = min(peer["seconds"])
    print(f"Edit to pixels at {width}x{height}, CPU (first F12 follow-up, worker start included: "
          f"{live['first_s']:.2f} s; Cycles renders during the edits: {live['cycles_during_edits']})")
    print(f"{'edit':<16}{'seconds':>10}{'Defocus / this':>16}")
    for edit in live["edits"]:
        print(f"{edit['edit']:<16}{edit['seconds']:>10.2f}{blender / edit['seconds']:>15.1f}x")
    print(f"{'Blender Defocus':<16}{blender:>10.2f}{1.0:>15.1f}x  (blur_max {peer['blur_max']:.0f}, best of "
          f"{len(peer['seconds'])})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "native":  # the Blender side, run by run_session
        sys.path[:0] = [str(REPO / "tests"), str(REPO)]
        result = native(**json.loads(sys.argv[2]))
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        sys.stdout.flush()
    else:
        raise SystemExit(main())
