"""Blender sessions for the add-on tests: each runs in its own process, as a user's Blender would.

The bpy module reads ``BLENDER_USER_RESOURCES`` once, when it is imported, so every session is a
fresh ``python tests/addon_fixtures.py <scenario> <json>`` process whose user folders (preferences,
installed extensions) live in the test's temporary directory. The extension is installed there once
through Blender's extension API (:func:`install`); later sessions load the saved preferences, which
enable it, exactly as Blender does at start-up.

A scenario builds a small Cycles scene (``blender_scenes.scene``), wires a compositor tree with
Refocus nodes, renders, and prints one line ``RESULT {json}`` with what the tests need: output
paths, node states and messages, the camera's lens. The tests compare the written pixels with
``core``'s own results on the same inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
MODULE = "bl_ext.user_default.refocus"
SIZE = (96, 72)
SAMPLES = 8
# Planes at 1, 2 and 6 m; f/1 at 50 mm on a 96 px frame gives CoCs of a few pixels either side of 2 m.
FOCUS_DEPTHS = (1.0, 2.0, 6.0)
LENS_FIELDS = {"focal_length_mm": 50.0, "f_stop": 1.0, "focus_distance": 2.0}
K_MAX = 9  # the animation's non-default kernel limit
NODE_TYPES = ("RefocusLayeredDefocusNode", "RefocusStereoDepthNode", "RefocusMonoDepthNode",
              "RefocusFocalStackDepthNode", "RefocusFocusTrackNode")


# --------------------------------------------------------------------------------- test side
def blender_env(user_dir: Path, python: str | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["BLENDER_USER_RESOURCES"] = str(user_dir)
    env["REFOCUS_PYTHON"] = python or sys.executable
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    # Sessions look at failed nodes after their renders: a background render must go on (the farm
    # tests, tests/test_addon_farm.py, pass "" to get the preference's own default back).
    env.setdefault("REFOCUS_FAIL_RENDER_ON_ERROR", "0")
    return env


def run_session(scenario: str, user_dir: Path, timeout: float = 300.0, python: str | None = None,
                env: dict[str, str] | None = None, script: Path | None = None, **args: Any) -> dict[str, Any]:
    """Run ``scenario`` of ``script`` (default: this module) in a new Python process with bpy
    (``env``: extra variables); return its RESULT."""
    script = Path(__file__).resolve() if script is None else script
    proc = subprocess.run([sys.executable, str(script), scenario, json.dumps(args)],
                          cwd=REPO, env=blender_env(user_dir, python, **(env or {})), capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"scenario {scenario} failed (exit {proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["stderr"] = proc.stderr
    return result


def blender_float(value: float) -> str:
    """``value`` as Blender stores it (a float32 property), for the command line: the node used that."""
    import numpy as np

    return repr(float(np.float32(value)))


def max_diff(a: Any, b: Any) -> float:
    """The largest absolute difference of two arrays of the same shape."""
    import numpy as np

    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max())


def install_extension(root: Path) -> tuple[Path, dict[str, Any]]:
    """Build the slim extension zip in ``root/dist`` and install it through Blender's extension API
    into fresh user folders ``root/user``: (the user folder, the install session's RESULT), the
    extension checked enabled."""
    from blender_scenes.build_extension import build

    result = run_session("install", root / "user", zip_path=str(build(root / "dist")))
    assert result["enabled"], result
    return root / "user", result


# ------------------------------------------------------------------------------ Blender side
def _addon(name: str = "") -> Any:
    import importlib

    return importlib.import_module(f"{MODULE}.{name}" if name else MODULE)


def _enable_user_extensions() -> None:
    """Load the saved preferences, which enables the installed extension (Blender does this at start)."""
    import bpy

    bpy.ops.wm.read_userpref()
    assert MODULE in bpy.context.preferences.addons, "the Refocus extension is not enabled"


def _scene(width: int = SIZE[0], height: int = SIZE[1]) -> Any:
    """Three textured planes at 1, 2 and 6 m, a sun, a camera with depth of field on."""
    from blender_scenes import scene as bs
    from core.optics import Lens

    spec = bs.SceneSpec(objects=(
        bs.Plane(distance=6.0, size=(8.0, 6.0), material=bs.Material(bs.Texture("checker", scale=2.0))),
        bs.Plane(distance=2.0, size=(0.8, 0.8), offset=(-0.3, 0.0),
                 material=bs.Material(bs.Texture("checker", (0.9, 0.2, 0.1), (0.1, 0.1, 0.8), scale=10.0))),
        bs.Plane(distance=1.0, size=(0.2, 0.3), offset=(0.12, -0.04),
                 material=bs.Material(bs.Texture("noise", (0.9, 0.9, 0.2), (0.2, 0.6, 0.2), scale=30.0))),
        bs.Sun(),
    ), world=(0.3, 0.3, 0.3))
    scene = bs.build(spec, bs.RenderSettings(width=width, height=height, samples=SAMPLES), Lens(**LENS_FIELDS))
    bs.set_dof(scene, True)
    _enable_user_extensions()
    return scene


def _tree(scene: Any, name: str = "Compositing") -> Any:
    import bpy

    tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    tree.nodes.new("NodeGroupOutput")
    scene.compositing_node_group = tree
    scene.render.use_compositing = True
    return tree


def _defocus_tree(scene: Any) -> Any:
    """Render Layers -> Layered Defocus -> Group Output."""
    tree = _tree(scene)
    rl = tree.nodes.new("CompositorNodeRLayers")
    node = tree.nodes.new("RefocusLayeredDefocusNode")
    tree.links.new(rl.outputs["Image"], node.inputs["Image"])
    tree.links.new(rl.outputs["Depth"], node.inputs["Depth"])
    tree.links.new(node.outputs["Image"], tree.nodes["Group Output"].inputs[0])
    return tree


def _output(scene: Any, path: Path) -> None:
    """The composite goes to a 32-bit EXR at ``path`` (``#`` for frame numbers)."""
    r = scene.render
    r.image_settings.media_type = "IMAGE"
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_depth = "32"
    r.filepath = str(path)
    r.use_file_extension = False


def _render_still(scene: Any, path: Path) -> str:
    import bpy

    from blender_scenes.scene import quiet

    _output(scene, path)
    with quiet():
        bpy.ops.render.render(write_still=True, scene=scene.name)
    return str(path)


def _reference_passes(scene: Any, path: Path) -> str:
    """The all-in-focus passes the nodes refocus, rendered independently of the add-on."""
    from blender_scenes import scene as bs

    tree, compositing = scene.compositing_node_group, scene.render.use_compositing
    bs.render(scene, path, dof=False)
    bs.set_dof(scene, True)
    scene.compositing_node_group, scene.render.use_compositing = tree, compositing
    return str(path)


def _nodes(tree: Any) -> dict[str, dict[str, Any]]:
    return {n.name: {"state": n.state, "message": n.message, "idname": n.bl_idname}
            for n in tree.nodes if n.bl_idname.startswith("Refocus")}


def _leftovers(tree: Any) -> list[str]:
    """Data-blocks the add-on made that its nodes no longer use (helpers, probes, passes)."""
    import bpy

    used = set()
    for node in tree.nodes:
        if node.bl_idname.startswith("Refocus"):
            used.add(node.node_tree.name)
            used.update(n.image.name for n in node.node_tree.nodes if n.bl_idname == "CompositorNodeImage")
    made = [*bpy.data.scenes, *bpy.data.node_groups, *bpy.data.images]
    return sorted(x.name for x in made if x.name.startswith(".Refocus") and x.name not in used)


def _lens(scene: Any) -> dict[str, Any]:
    from blender_scenes.scene import lens_of

    return asdict(lens_of(scene.camera))


# --------------------------------------------------------------------------------- scenarios
def install(zip_path: str) -> dict[str, Any]:
    """Install and enable the extension zip the way a user does, and save the preferences."""
    import bpy

    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    bpy.ops.wm.save_userpref()
    prefs = bpy.context.preferences.addons.get(MODULE)
    tree = bpy.data.node_groups.new("Check", "CompositorNodeTree")
    sockets = {}
    for idname in NODE_TYPES:
        node = tree.nodes.new(idname)
        sockets[idname] = [[s.name for s in node.inputs], [s.name for s in node.outputs]]
    return {
        "enabled": prefs is not None,
        "sockets": sockets,
        "menu": hasattr(bpy.types, "NODE_MT_refocus"),
        "add_menu_hooked": any(getattr(f, "__module__", "").startswith(MODULE)
                               for f in bpy.types.NODE_MT_compositor_node_add_all._dyn_ui_initialize()),
        "installed_files": sorted(p.name for p in Path(bpy.utils.user_resource("EXTENSIONS"), "user_default",
                                                        "refocus").iterdir()),
    }


def still(out: str) -> dict[str, Any]:
    """Render Layers -> Layered Defocus -> Group Output, rendered twice (the second from the cache).
    A second Layered Defocus fed by the same passes but linked to no output is left alone."""
    out_dir = Path(out)
    scene = _scene()
    tree = _defocus_tree(scene)
    spare = tree.nodes.new("RefocusLayeredDefocusNode")
    spare.name = "Spare"
    tree.links.new(tree.nodes["Render Layers"].outputs["Image"], spare.inputs["Image"])
    tree.links.new(tree.nodes["Render Layers"].outputs["Depth"], spare.inputs["Depth"])
    first = _render_still(scene, out_dir / "still.exr")
    evaluation = _addon("frame_evaluation")
    hits = evaluation.cache().hits
    second = _render_still(scene, out_dir / "still_again.exr")
    result = {"still": first, "again": second, "cache_hits": evaluation.cache().hits - hits,
              "nodes": _nodes(tree), "tree_after": scene.compositing_node_group.name,
              "leftovers": _leftovers(tree), "lens": _lens(scene)}
    result["passes"] = _reference_passes(scene, out_dir / "passes.exr")
    return result


def animation(out: str, blend: str) -> dict[str, Any]:
    """A focus object moving through the three planes over frames 1-3; render(animation=True); save."""
    import bpy

    out_dir = Path(out)
    scene = _scene()
    tree = _defocus_tree(scene)
    target = bpy.data.objects.new("Focus Target", None)
    scene.collection.objects.link(target)
    for frame, depth in enumerate(FOCUS_DEPTHS, start=1):
        target.location = (0.0, depth, 0.0)
        target.keyframe_insert("location", frame=frame)
    scene.camera.data.dof.focus_object = target
    scene.frame_start, scene.frame_end = 1, len(FOCUS_DEPTHS)
    node = tree.nodes["Layered Defocus"]
    node.k_max = K_MAX  # a non-default property, to find again after reloading
    node.location = (300.0, 40.0)
    # What Render Layers give the rest of the tree: the all-in-focus passes, if the scene is not
    # rendered a second time by Blender (with the camera's depth of field).
    saver = tree.nodes.new("CompositorNodeOutputFile")
    saver.directory, saver.file_name = str(out_dir / "layers") + "/", "rl"
    saver.format.media_type, saver.format.file_format, saver.format.color_depth = "IMAGE", "OPEN_EXR", "32"
    saver.file_output_items.new("RGBA", "image")
    tree.links.new(tree.nodes["Render Layers"].outputs["Image"], saver.inputs[0])
    scene.frame_set(1)
    _output(scene, out_dir / "anim_####.exr")
    bpy.ops.render.render(animation=True, scene=scene.name)
    frames = [str(out_dir / f"anim_{f:04d}.exr") for f in range(1, len(FOCUS_DEPTHS) + 1)]
    # The scene's use_file_extension is off (for the exact frame paths): name the files for readers.
    layers = sorted(str(p.rename(p.with_name(p.name + ".exr"))) for p in (out_dir / "layers").iterdir())
    scene.frame_set(2)
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    return {"frames": frames, "nodes": _nodes(tree), "lens": _lens(scene), "leftovers": _leftovers(tree),
            "layers": layers, "passes": _reference_passes(scene, out_dir / "passes.exr")}


def reload(out: str, blend: str) -> dict[str, Any]:
    """A fresh Blender opens the saved file and renders it, as ``blender -b file.blend -a`` does; then
    the add-on is disabled and enabled again and frame 2 rendered once more."""
    import bpy

    import addon_utils  # Blender's own module: importable once bpy is
    from blender_scenes.scene import quiet

    out_dir = Path(out)
    _enable_user_extensions()
    bpy.ops.wm.open_mainfile(filepath=blend)
    scene = bpy.context.scene
    tree = scene.compositing_node_group
    node = tree.nodes["Layered Defocus"]
    kept = {"tree": tree.name, "k_max": node.k_max, "location": list(node.location), "idname": node.bl_idname,
            "links": sorted(f"{l.from_node.name}:{l.from_socket.name}->{l.to_node.name}:{l.to_socket.name}"
                            for l in tree.links),
            "focus_object": scene.camera.data.dof.focus_object.name}
    scene.render.filepath = str(out_dir / "reload_####.exr")
    with quiet():
        bpy.ops.render.render(animation=True, scene=scene.name)
    frames = [str(out_dir / f"reload_{f:04d}.exr") for f in range(1, len(FOCUS_DEPTHS) + 1)]
    addon_utils.disable(MODULE)
    disabled = {"idname": tree.nodes["Layered Defocus"].bl_idname, "nodes": len(tree.nodes)}
    addon_utils.enable(MODULE)
    disabled["k_max_after"] = tree.nodes["Layered Defocus"].k_max
    scene.frame_set(2)
    again = _render_still(scene, out_dir / "reenabled.exr")
    return {"frames": frames, "kept": kept, "disabled": disabled, "reenabled": again,
            "nodes": _nodes(scene.compositing_node_group)}


def errors(out: str) -> dict[str, Any]:
    """Wrong inputs: no depth linked, a depth of another size, a camera without depth of field.
    Each render must finish, with the error on the node and the input passed through."""
    import bpy

    from core.imageio import write_exr

    out_dir = Path(out)
    scene = _scene()
    tree = _defocus_tree(scene)
    node = tree.nodes["Layered Defocus"]
    result: dict[str, Any] = {"passes": _reference_passes(scene, out_dir / "passes.exr")}

    depth_link = node.inputs["Depth"].links[0]
    tree.links.remove(depth_link)
    result["no_depth"] = {"path": _render_still(scene, out_dir / "no_depth.exr"), **_nodes(tree)["Layered Defocus"]}

    small = out_dir / "small_depth.exr"
    write_exr(small, {"Z": __import__("numpy").full((SIZE[1] // 2, SIZE[0] // 2), 2.0, "float32")})
    reader = tree.nodes.new("CompositorNodeImage")
    reader.image = bpy.data.images.load(str(small))
    tree.links.new(reader.outputs["Image"], node.inputs["Depth"])
    result["small_depth"] = {"path": _render_still(scene, out_dir / "small_depth_out.exr"),
                             **_nodes(tree)["Layered Defocus"]}

    tree.nodes.remove(reader)
    tree.links.new(tree.nodes["Render Layers"].outputs["Depth"], node.inputs["Depth"])
    scene.camera.data.dof.use_dof = False
    result["no_dof"] = {"path": _render_still(scene, out_dir / "no_dof.exr"), **_nodes(tree)["Layered Defocus"]}

    scene.camera.data.dof.use_dof = True
    result["fixed"] = {"path": _render_still(scene, out_dir / "fixed.exr"), **_nodes(tree)["Layered Defocus"]}
    result["lens"] = _lens(scene)
    return result


def broken_worker(out: str, broken_python: str) -> dict[str, Any]:
    """A worker Python that cannot run the worker, then a worker killed in the middle of a request."""
    import signal

    import bpy

    out_dir = Path(out)
    scene = _scene()
    tree = _defocus_tree(scene)
    result: dict[str, Any] = {}
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.worker_python = broken_python
    result["bad_python"] = {"path": _render_still(scene, out_dir / "bad_python.exr"), **_nodes(tree)["Layered Defocus"]}
    prefs.worker_python = ""

    # The interactive path: start an update, kill the worker while it computes, keep polling.
    evaluator, worker_client = _addon("interactive"), _addon("worker_client")
    node = tree.nodes["Layered Defocus"]
    node.use_scene_camera, node.f_stop, node.focus_distance = False, 0.3, 6.0  # many layers: a long request
    updater = evaluator.start_update(scene, render_passes=True)
    assert updater.current is not None, "the update finished without asking the worker"
    os.kill(worker_client.current_client().process.pid, signal.SIGKILL)
    while updater.tick():
        pass
    result["killed"] = _nodes(tree)["Layered Defocus"]
    # The next render starts a new worker.
    result["recovered"] = {"path": _render_still(scene, out_dir / "recovered.exr"), **_nodes(tree)["Layered Defocus"]}
    return result


def interactive(out: str) -> dict[str, Any]:
    """The timer-driven path the interface uses: progress on the node, cancel, then a full update.
    A second node chained after the first is cancelled with it, without computing."""
    import time

    out_dir = Path(out)
    scene = _scene()
    tree = _defocus_tree(scene)
    node = tree.nodes["Layered Defocus"]
    chained = tree.nodes.new("RefocusLayeredDefocusNode")
    tree.links.new(node.outputs["Image"], chained.inputs["Image"])
    tree.links.new(tree.nodes["Render Layers"].outputs["Depth"], chained.inputs["Depth"])
    evaluator = _addon("interactive")

    blocked = evaluator.start_update(scene, render_passes=False)  # Render Layers need a render first
    while blocked.tick():
        pass
    result: dict[str, Any] = {"without_passes": _nodes(tree)["Layered Defocus"]}

    # Widest aperture and finest layers: hundreds of layers, each paused by the worker's slow motion
    # (REFOCUS_WORKER_STEP_PAUSE, set by the test), so the job is caught mid-way however fast the
    # machine: on a 96x72 frame the layers alone finish within one poll of the interface.
    node.use_scene_camera, node.f_stop, node.focus_distance, node.step = False, 0.1, 6.0, 0.1
    updater = evaluator.start_update(scene, render_passes=True)
    progress = []
    while updater.tick():
        progress.append((node.state, round(node.progress, 3)))
        if node.progress > 0.0 and node.state == "RUNNING":
            evaluator.Updater.cancel(updater)
        time.sleep(0.01)
    result["cancelled"] = {**_nodes(tree)["Layered Defocus"], "progress_seen": progress,
                           "chained": _nodes(tree)["Layered Defocus.001"]}

    node.use_scene_camera, node.step = True, 1.0
    updater = evaluator.start_update(scene, render_passes=True)
    while updater.tick():
        time.sleep(0.01)
    result["updated"] = _nodes(tree)
    result["shown"] = _save_result_image(node, out_dir / "shown.npy")
    result["passes"] = _reference_passes(scene, out_dir / "passes.exr")
    result["lens"] = _lens(scene)
    return result


def _save_result_image(node: Any, path: Path) -> str:
    """The pixels a node shows (its inner Image), top row first, as .npy."""
    import numpy as np

    image = node.node_tree.nodes["Result Image"].image
    w, h = image.size
    pixels = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    np.save(path, pixels.reshape(h, w, 4)[::-1])
    return str(path)


def sources(out: str) -> dict[str, Any]:
    """Inputs that are not Render Layers: an EXR sequence through a Movie Clip node, the layers of a
    multilayer EXR through an Image node, a Value node as the focus distance, and a second Refocus
    node chained after the first.

    The frames come from the reference passes, so no scene is rendered by the compositor."""
    import bpy
    import numpy as np

    from core.imageio import read_image, read_map, write_exr

    out_dir = Path(out)
    scene = _scene()
    passes = _reference_passes(scene, out_dir / "passes.exr")
    image, depth = read_image(passes), read_map(passes)
    sequence = []
    for frame in (1, 2):  # two different frames: the image brightens, the depth stays
        path = out_dir / f"seq_{frame:04d}.exr"
        scaled = image * (1.0 + 0.5 * (frame - 1))
        write_exr(path, {c: scaled[..., i] for i, c in enumerate("RGBA")})
        sequence.append(str(path))

    tree = _tree(scene)
    clip_node = tree.nodes.new("CompositorNodeMovieClip")
    clip_node.clip = bpy.data.movieclips.load(sequence[0])
    layers = tree.nodes.new("CompositorNodeImage")
    layers.image = bpy.data.images.load(passes)
    first = tree.nodes.new("RefocusLayeredDefocusNode")
    second = tree.nodes.new("RefocusLayeredDefocusNode")
    for node, focus in ((first, 3.0), (second, 1.0)):
        node.use_scene_camera, node.f_stop, node.focus_distance = False, 2.0, focus
    focus = tree.nodes.new("ShaderNodeValue")  # overrides the first node's 3 m when linked
    focus.outputs[0].default_value = 6.0
    tree.links.new(focus.outputs[0], first.inputs["Focus Distance"])
    tree.links.new(clip_node.outputs["Image"], first.inputs["Image"])
    tree.links.new(layers.outputs["Depth"], first.inputs["Depth"])
    tree.links.new(first.outputs["Image"], second.inputs["Image"])
    tree.links.new(layers.outputs["Depth"], second.inputs["Depth"])
    tree.links.new(second.outputs["Image"], tree.nodes["Group Output"].inputs[0])
    slot = tree.nodes.new("RefocusStereoDepthNode")
    tree.links.new(clip_node.outputs["Image"], slot.inputs["Left"])
    tree.links.new(clip_node.outputs["Image"], slot.inputs["Right"])
    viewer = tree.nodes.new("CompositorNodeViewer")  # an output too: a render computes what it shows
    tree.links.new(slot.outputs["Depth"], viewer.inputs[0])

    scene.frame_start, scene.frame_end = 1, 2
    _output(scene, out_dir / "chain_####.exr")
    bpy.ops.render.render(animation=True, scene=scene.name)
    return {"passes": passes, "sequence": sequence, "frames": [str(out_dir / f"chain_{f:04d}.exr") for f in (1, 2)],
            "nodes": _nodes(tree), "lens": _lens(scene), "leftovers": _leftovers(tree)}


def bokeh(out: str) -> dict[str, Any]:
    """A kernel image (an EXR triangle through an Image node) and Blender's Bokeh Image node as
    Layered Defocus's aperture, with its Focus Map output; frames from the reference passes."""
    import bpy
    import numpy as np

    from core.imageio import write_exr

    out_dir = Path(out)
    scene = _scene()
    passes = _reference_passes(scene, out_dir / "passes.exr")
    size = 33
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    triangle = ((yy >= 4) & (np.abs(xx - size // 2) <= (yy - 4) * 0.6) & (yy <= size - 4)).astype(np.float32)
    kernel_path = out_dir / "kernel.exr"
    write_exr(kernel_path, {c: triangle for c in "RGB"} | {"A": np.ones_like(triangle)})
    results = {}
    for case in ("image", "bokeh_node", "round"):
        tree = _tree(scene, f"Compositing {case}")
        layers = tree.nodes.new("CompositorNodeImage")
        layers.image = bpy.data.images.load(passes)
        node = tree.nodes.new("RefocusLayeredDefocusNode")
        node.use_scene_camera, node.f_stop, node.focus_distance = False, 1.0, 2.0
        tree.links.new(layers.outputs[0], node.inputs["Image"])  # the Combined layer
        tree.links.new(layers.outputs["Depth"], node.inputs["Depth"])
        if case == "image":
            kernel = tree.nodes.new("CompositorNodeImage")
            kernel.image = bpy.data.images.load(str(kernel_path))
            tree.links.new(kernel.outputs["Image"], node.inputs["Bokeh Image"])
        elif case == "bokeh_node":
            shape = tree.nodes.new("CompositorNodeBokehImage")
            shape.inputs["Flaps"].default_value = 5
            tree.links.new(shape.outputs["Image"], node.inputs["Bokeh Image"])
        tree.links.new(node.outputs["Image"], tree.nodes["Group Output"].inputs[0])
        _output(scene, out_dir / f"{case}.exr")
        bpy.ops.render.render(write_still=True, scene=scene.name)
        image = node.node_tree.nodes["Result Focus Map"].image
        w, h = image.size
        heat = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(heat)
        np.save(out_dir / f"{case}_focus_map.npy", heat.reshape(h, w, 4)[::-1])
        results[case] = {"frame": str(out_dir / f"{case}.exr"), "focus_map": str(out_dir / f"{case}_focus_map.npy"),
                         "node": {"state": node.state, "message": node.message}}
    return {"passes": passes, "kernel": str(kernel_path), "cases": results, "lens": _lens(scene)}


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    f.__name__: f for f in (install, still, animation, reload, errors, broken_worker, interactive, sources, bokeh)
}


def serve(scenarios: dict[str, Callable[..., dict[str, Any]]]) -> None:
    """The Blender side of :func:`run_session`: run the scenario named on the command line with
    its JSON arguments and print its ``RESULT`` line (every session script's ``main``)."""
    scenario, args = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, str(REPO))
    result = scenarios[scenario](**args)
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def main() -> None:
    serve(SCENARIOS)


if __name__ == "__main__":
    main()
