"""Blender sessions for the artist's paths: F12 in a render thread, live edits, farm renders.

Each scenario runs in its own process through :func:`addon_fixtures.run_session` (``script=`` this
file), on the small three-plane scene of ``addon_fixtures``.

F12 is reproduced as closely as headless Blender allows: ``bpy.ops.render.render()`` is called from
a Python thread, so Blender calls the add-on's render handlers from a thread that is not the main
one, as the interface's render job does; the main thread then runs the interface's timers
(``interactive.step``), as Blender's event loop would. What the artist sees is the Render Result,
saved with ``Image.save_render``.

Renders are counted by a ``render_pre`` handler: a render *renders the scene* (Cycles runs) when
its engine is Cycles and its compositor reads Render Layers (or is off); Blender skips the scene
when the tree it composites holds none (the add-on's probes and the passes engine).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import addon_fixtures as af

RENDERS: list[dict[str, Any]] = []


def _count_renders() -> None:
    import bpy

    def counter(scene: Any, *args: Any) -> None:
        tree = scene.compositing_node_group
        reads_layers = (not scene.render.use_compositing or tree is None
                        or any(n.bl_idname == "CompositorNodeRLayers" and not n.mute for n in tree.nodes))
        RENDERS.append({"scene": scene.name, "engine": scene.render.engine,
                        "cycles": scene.render.engine == "CYCLES" and reads_layers,
                        "thread": threading.current_thread() is not threading.main_thread()})

    bpy.app.handlers.render_pre.append(counter)


def _cycles_renders(since: int = 0) -> int:
    return sum(1 for r in RENDERS[since:] if r["cycles"])


def f12(scene: Any) -> None:
    """Render a still as F12 does: in a thread that is not Blender's main thread."""
    import bpy

    failures: list[BaseException] = []

    def job() -> None:
        try:
            bpy.ops.render.render(write_still=False, scene=scene.name)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=job, name="render job")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def f12_animation(scene: Any) -> None:
    """Render the frame range as Ctrl+F12 does: in a thread, writing each frame."""
    import bpy

    thread = threading.Thread(target=lambda: bpy.ops.render.render(animation=True, scene=scene.name))
    thread.start()
    thread.join()


def follow_up(timeout_s: float = 240.0) -> float:
    """Run the interface's timers until the add-on has nothing left to do; the seconds it took."""
    interactive = af._addon("interactive")
    start = time.perf_counter()
    while interactive.step():
        time.sleep(0.005)
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError("the add-on's follow-up did not finish")
    return time.perf_counter() - start


def render_result(scene: Any, path: Path) -> str:
    """What the F12 window shows: the Render Result's composite, as a 32-bit EXR."""
    import bpy

    settings = scene.render.image_settings
    settings.media_type, settings.file_format = "IMAGE", "OPEN_EXR"
    settings.color_mode, settings.color_depth = "RGBA", "32"
    bpy.data.images["Render Result"].save_render(str(path), scene=scene)
    return str(path)


def _own_lens(node: Any, focus_m: float) -> None:
    node.use_scene_camera = False
    node.focal_length, node.f_stop, node.focus_distance = af.LENS_FIELDS["focal_length_mm"], 1.0, focus_m
    node.sensor_width = 36.0


def _node_lens(node: Any) -> dict[str, Any]:
    import math

    return {"focal_length_mm": node.focal_length, "f_stop": node.f_stop, "focus_distance": node.focus_distance,
            "sensor_width_mm": node.sensor_width, "blades": node.blades,
            "rotation_deg": math.degrees(node.rotation), "ratio": node.ratio}


def _scene_and_tree(width: int, height: int) -> tuple[Any, Any]:
    scene = af._scene(width, height)
    scene.render.threads_mode, scene.render.threads = "FIXED", 1
    return scene, af._defocus_tree(scene)


# --------------------------------------------------------------------------------- scenarios
def threaded(out: str) -> dict[str, Any]:
    """F12 right after opening a file, after a focus change 3 m -> 8 m, and with the scene camera
    (whose depth of field blurs F12's own passes)."""
    import bpy

    out_dir = Path(out)
    scene, tree = _scene_and_tree(*af.SIZE)
    _own_lens(tree.nodes["Layered Defocus"], 3.0)
    scene.camera.data.dof.use_dof = False
    blend = out_dir / "f12.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))  # the artist opens the file
    scene = bpy.context.scene
    node = scene.compositing_node_group.nodes["Layered Defocus"]
    _count_renders()
    result: dict[str, Any] = {"opened_state": node.state}

    f12(scene)
    result["handlers_threaded"] = all(r["thread"] for r in RENDERS)
    result["opened_during"] = render_result(scene, out_dir / "opened_during.exr")
    before = len(RENDERS)
    result["opened_follow_up_s"] = follow_up()
    result["opened_after"] = render_result(scene, out_dir / "opened_after.exr")
    result["opened_follow_up_cycles"] = _cycles_renders(before)
    result["opened_node"] = {"state": node.state, "message": node.message, "lens": _node_lens(node)}

    # The artist refocuses and the interface's live update runs (its timer, within a second), then F12:
    # the thread already composites the new result.
    node.focus_distance = 5.0
    updater = af._addon("interactive").start_update(scene)
    while updater.tick():
        time.sleep(0.002)
    before = len(RENDERS)
    f12(scene)
    result["live_during"] = render_result(scene, out_dir / "live_during.exr")
    follow_up()
    result["live_after"] = render_result(scene, out_dir / "live_after.exr")
    result["live_cycles"] = _cycles_renders(before)
    result["live_node"] = {"state": node.state, "message": node.message, "lens": _node_lens(node)}

    node.focus_distance = 8.0  # the artist refocuses, then presses F12 before anything else
    f12(scene)
    result["refocused_during"] = render_result(scene, out_dir / "refocused_during.exr")
    before = len(RENDERS)
    follow_up()
    result["refocused_after"] = render_result(scene, out_dir / "refocused_after.exr")
    result["refocused_follow_up_cycles"] = _cycles_renders(before)
    result["refocused_node"] = {"state": node.state, "message": node.message, "lens": _node_lens(node)}

    # "Use Scene Camera": the camera's depth of field is on, so F12's passes are blurred by Cycles.
    node.use_scene_camera = True
    scene.camera.data.dof.use_dof = True
    scene.camera.data.dof.focus_distance = 6.0
    f12(scene)
    before = len(RENDERS)
    follow_up()
    result["camera_after"] = render_result(scene, out_dir / "camera_after.exr")
    result["camera_follow_up_cycles"] = _cycles_renders(before)
    result["camera_node"] = {"state": node.state, "message": node.message}
    result["leftovers"] = af._leftovers(scene.compositing_node_group)

    # The same with Render > Lock Interface on: the render thread makes F12 itself all in focus.
    scene.render.use_lock_interface = True
    f12(scene)
    result["locked_dof_after_render"] = scene.camera.data.dof.use_dof
    before = len(RENDERS)
    follow_up()
    result["locked_after"] = render_result(scene, out_dir / "locked_after.exr")
    result["locked_follow_up_cycles"] = _cycles_renders(before)
    result["locked_node"] = {"state": node.state, "message": node.message}
    scene.render.use_lock_interface = False

    # Ctrl+F12: each frame is written in the thread before the add-on could compute it; the add-on
    # says so (status bar, stderr) rather than computing a frame it can no longer write.
    scene.frame_start, scene.frame_end = 1, 2
    af._output(scene, out_dir / "ctrl_f12_####.exr")
    before = len(RENDERS)
    f12_animation(scene)
    follow_up()
    result["animation_cycles_after"] = _cycles_renders(before) - 2
    result["animation_frames"] = sorted(str(p) for p in out_dir.glob("ctrl_f12_*.exr"))
    result["lens"] = af._lens(scene)
    result["renders"] = RENDERS
    result["passes"] = af._reference_passes(scene, out_dir / "passes.exr")
    return result


def live(out: str, width: int = af.SIZE[0], height: int = af.SIZE[1], edits: int = 4) -> dict[str, Any]:
    """F12 once, then edits of focus, f-stop, aperture blades and kernel limit: each computed by the
    timer-driven update from the render's passes (no Cycles render), timed from edit to pixels."""
    import numpy as np

    out_dir = Path(out)
    scene, tree = _scene_and_tree(width, height)
    node = tree.nodes["Layered Defocus"]
    _own_lens(node, 3.0)
    scene.camera.data.dof.use_dof = False
    _count_renders()
    interactive, evaluation = af._addon("interactive"), af._addon("frame_evaluation")
    f12(scene)
    first_s = follow_up()
    shown_first = af._save_result_image(node, out_dir / "first.npy")
    before = len(RENDERS)
    changes = [("focus_distance", 8.0), ("f_stop", 2.0), ("blades", 6), ("k_max", 11), ("focus_distance", 1.5)]
    steps = []
    for k, (name, value) in enumerate(changes[:edits]):
        setattr(node, name, value)
        start = time.perf_counter()
        # What the property's update does in the interface (request_update returns at once in the
        # background: there the test starts the update itself, as the timer would).
        updater = interactive.start_update(scene)
        while updater.tick():
            time.sleep(0.002)
        seconds = time.perf_counter() - start
        steps.append({"edit": name, "value": value, "seconds": seconds, "state": node.state, "message": node.message,
                      "lens": _node_lens(node), "k_max": node.k_max,
                      "shown": af._save_result_image(node, out_dir / f"edit_{k}.npy"),
                      "from_last_render": updater.computed_from_last})
    cycles_during_edits = _cycles_renders(before)
    # Editing the scene camera's focus is an edit too (nodes may use the scene camera): the add-on's
    # depsgraph handler asks for an update in the interface; here, does it see the change?
    seen: list[bool] = []
    handlers = af._addon("handlers")
    probe = lambda scene_, depsgraph: seen.append(handlers.camera_changed(scene_, depsgraph))  # noqa: E731
    import bpy

    bpy.app.handlers.depsgraph_update_post.append(probe)
    signature = handlers.camera_signature(scene)
    af._addon("renders").recomposite(scene, af._addon("render_jobs").last_render(scene).path)
    bpy.context.view_layer.update()
    own_render_changes_camera = handlers.camera_signature(scene) != signature
    seen.clear()
    scene.camera.data.dof.focus_distance = 4.0
    bpy.context.view_layer.update()
    camera_seen = any(seen) and handlers.camera_signature(scene) != signature
    seen.clear()
    scene.world.color = (0.2, 0.2, 0.2)
    bpy.context.view_layer.update()
    other_seen = any(seen)
    bpy.app.handlers.depsgraph_update_post.remove(probe)
    # The F12 window shows the last edit once the compositor runs again (as Blender's does on screen).
    af._addon("renders").recomposite(scene, af._addon("render_jobs").last_render(scene).path)
    frame = render_result(scene, out_dir / "recomposited.exr")
    scene.frame_set(scene.frame_current + 1)  # another frame: the kept passes are not for it
    other = interactive.start_update(scene)
    while other.tick():
        time.sleep(0.002)
    result = {"first_s": first_s, "shown_first": shown_first, "edits": steps, "cycles_during_edits": cycles_during_edits,
              "recomposited": frame, "other_frame": {"state": node.state, "message": node.message},
              "camera_edit_seen": camera_seen, "world_edit_seen": other_seen,
              "own_render_changes_camera": own_render_changes_camera,
              "cache_hits": evaluation.cache().hits, "lens": af._lens(scene), "leftovers": af._leftovers(tree)}
    scene.frame_set(scene.frame_current - 1)
    result["passes"] = af._reference_passes(scene, out_dir / "passes.exr")
    assert np.isfinite(np.load(shown_first)).all()
    return result


def farm_scene(out: str, blend: str) -> dict[str, Any]:
    """A three-frame animation whose Layered Defocus has no Depth linked (it fails), saved."""
    import bpy

    scene, tree = _scene_and_tree(*af.SIZE)
    node = tree.nodes["Layered Defocus"]
    tree.links.remove(node.inputs["Depth"].links[0])
    scene.frame_start, scene.frame_end = 1, 3
    af._output(scene, Path(out) / "farm_####.exr")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    return {"blend": blend}


def farm_script(out: str) -> dict[str, Any]:
    """A bpy script that builds the failing animation and renders it in the same process."""
    import bpy

    scene, tree = _scene_and_tree(*af.SIZE)
    node = tree.nodes["Layered Defocus"]
    tree.links.remove(node.inputs["Depth"].links[0])
    scene.frame_start, scene.frame_end = 1, 3
    af._output(scene, Path(out) / "script_####.exr")
    bpy.ops.render.render(animation=True, scene=scene.name)
    return {"rendered": True, "node": {"state": node.state, "message": node.message}}


def farm_render(blend: str) -> dict[str, Any]:
    """What ``blender -b scene.blend -a`` does: open the file, render the animation."""
    import bpy

    af._enable_user_extensions()
    bpy.ops.wm.open_mainfile(filepath=blend)
    bpy.ops.render.render(animation=True, scene=bpy.context.scene.name)
    return {"rendered": True}


def marked(out: str, display: str) -> dict[str, Any]:
    """A failed node (no Depth) in a render that goes on: what its output shows."""
    import bpy

    out_dir = Path(out)
    scene, tree = _scene_and_tree(*af.SIZE)
    node = tree.nodes["Layered Defocus"]
    tree.links.remove(node.inputs["Depth"].links[0])
    bpy.context.preferences.addons[af.MODULE].preferences.failed_node_output = display
    path = af._render_still(scene, out_dir / f"failed_{display}.exr")
    return {"path": path, "node": {"state": node.state, "message": node.message},
            "passes": af._reference_passes(scene, out_dir / "passes.exr")}


SCENARIOS = {f.__name__: f for f in (threaded, live, farm_scene, farm_script, farm_render, marked)}


def main() -> None:
    af.serve(SCENARIOS)


if __name__ == "__main__":
    main()
