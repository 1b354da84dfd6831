"""Interactive updates: edits, scrubbing and the follow-up of F12 renders, driven by a timer.

An :class:`Updater` advances a :class:`.frame_evaluation.FrameEvaluation` a step per tick, so
Blender's interface never waits on the worker. Nodes ask for an update through the hook this
module registers with :func:`.nodes.on_change` (so that ``nodes`` imports nothing of it); edits
of the scene camera's lens and focus ask too (``handlers``).

**Live edits, like a native node.** Blender's own Defocus node re-composites from the last render
at once; so do Refocus nodes: every render keeps its passes (``render_jobs.LastRender``: a
multilayer EXR of the frame it rendered), and an edit at that frame (focus, f-stop, aperture,
method, any parameter or link) recomputes in the worker from those passes, with no Cycles render.
The node's result reaches the backdrop and the Viewer through Blender's own compositor update
(the tree is tagged), and the F12 window when it is on screen (``renders.recomposite``). Only
another frame, or Render Layers passes the kept render lacks, need a render: the node then says
"press Update (or render)", and its Update button renders the passes (Cycles) explicitly.

**F12.** A render in a job thread only takes notes (``render_jobs``); :func:`watch`, on a timer,
turns each finished one into a follow-up update: its passes saved, every Refocus node computed
from them, the frame composited again (see ``render_jobs`` for what the artist sees).

Headless (the bpy module, ``blender -b``) no timer runs: :func:`step` is one tick of both timers,
for scripts and tests that drive the interface's path themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import traceback

import bpy

from . import frame_evaluation, graph, nodes, render_jobs, renders, status, worker_client
from .errors import RefocusError
from .busy import busy, is_busy
from .frame_evaluation import FrameEvaluation
from .nodes import RefocusNode
from .render_jobs import LastRender, ThreadedRender
from .worker_client import Request

WATCH_INTERVAL_S = 0.25


class Updater:
    """An interactive evaluation of one scene, advanced by a timer: never blocks the interface
    (except for the Cycles render of ``render_passes``, which the artist asked for).

    The passes of Render Layers come from ``last`` (a kept render of this frame), or, with
    ``render_passes``, from a new render (kept in turn). ``follow_up``: the update of an F12
    render, which composites the scene again at the end so that the F12 window shows the result.
    """

    def __init__(self, scene: bpy.types.Scene, render_passes: bool = False, *,
                 last: LastRender | None = None, follow_up: bool = False) -> None:
        self.scene_name = scene.name
        self.scratch = renders.Scratch()
        self.follow_up = follow_up
        self.last = last if last is not None else render_jobs.last_render(scene)
        self.keeper: renders.Scratch | None = None
        self.passes: renders.RenderedPasses | None = None
        self.computed_from_last = False
        tree = scene.compositing_node_group
        uses = graph.render_layer_uses(tree, scene, graph.evaluation_order(tree, follow_up)) if tree else []
        with busy():
            if uses and render_passes:
                self.keeper = renders.Scratch()
                self.passes = renders.RenderedPasses(self.scratch, tree, uses, keep=self.keeper.dir / "passes.exr")
            elif uses and self.last is not None and self.last.frame == scene.frame_current:
                # The passes this tree uses, exported from the kept render once and reused by every
                # later edit (an export composites the frame: a few tenths of a second at HD).
                name = hashlib.sha1(repr(sorted(dataclasses.astuple(u) for u in uses)).encode()).hexdigest()[:12]
                self.passes = renders.RenderedPasses(self.scratch, tree, uses, source=self.last.path,
                                                     folder=self.last.scratch.dir / f"uses-{name}",
                                                     frame=self.last.frame)
                self.computed_from_last = True
        self.evaluation = FrameEvaluation(scene, self.scratch, passes=self.passes, outputs_only=follow_up)
        self.steps = self.evaluation.steps()
        self.current: tuple[RefocusNode, Request] | None = None
        self.finished = False
        self._advance()

    def _advance(self) -> None:
        try:
            self.current = next(self.steps)
        except StopIteration:
            self._finish()
        except Exception:  # an interface edit removed what the evaluation was using
            traceback.print_exc()
            self._finish()

    def tick(self) -> bool:
        """Collect the worker's news; move on when the current request is over. False once finished."""
        if self.finished:
            return False
        client = worker_client.current_client()
        if self.current is not None:
            node, request = self.current
            if client is not None:
                client.pump()
            if request.finished or client is None:
                self._advance()
            else:
                with busy(), contextlib.suppress(ReferenceError):
                    status.progress(node, request.done, request.total)
        return not self.finished

    def cancel(self) -> None:
        self.evaluation.cancel()

    def _finish(self) -> None:
        self.finished = True
        self.current = None
        scene = bpy.data.scenes.get(self.scene_name)
        with busy():
            self.evaluation.release()
            tree = scene.compositing_node_group if scene is not None else None
            failed = [n for n in graph.refocus_nodes(tree) if n.state == "ERROR"] if tree is not None else []
            status.mark_failures(failed)
            if self.passes is not None:
                self.passes.release()
            self._keep_passes(scene)
            shown = self._show_in_render_result(scene)
            self.scratch.close()
            if tree is not None:
                tree.update_tag()  # Blender's compositor updates the backdrop and the Viewer
        if self.follow_up and scene is not None:
            if failed:
                status.note(f"the F12 frame shows {len(failed)} failed node{'s' if len(failed) > 1 else ''} marked "
                            f"in magenta: {failed[0].name}: {failed[0].message}")
            elif shown:
                status.note("the F12 frame shows the Refocus nodes computed from its own passes")
        elif not failed:
            status.clear()

    def _keep_passes(self, scene: bpy.types.Scene | None) -> None:
        """An Update's render keeps its passes for the live edits after it."""
        if self.keeper is None:
            return
        path = self.keeper.dir / "passes.exr"
        if scene is not None and self.passes is not None and self.passes.exported is not None and path.is_file():
            self.last = render_jobs.remember(scene, self.passes.exported, path, self.keeper, in_render_result=False)
        else:
            self.keeper.close()
        self.keeper = None

    def _show_in_render_result(self, scene: bpy.types.Scene | None) -> bool:
        """Composite the scene again from the kept passes, when the F12 window is what shows it."""
        last = self.last
        if scene is None or last is None or last.frame != scene.frame_current or not last.path.is_file():
            return False
        if not (self.follow_up or render_result_on_screen()):
            return False
        try:
            renders.recomposite(scene, last.path)
        except (RuntimeError, RefocusError) as exc:
            status.note(f"cannot show the result in the render window: {exc}")
            return False
        last.in_render_result = True
        return True


def render_result_on_screen() -> bool:
    """Whether an Image Editor shows the Render Result (never headless)."""
    window_manager = getattr(bpy.context, "window_manager", None)
    for window in window_manager.windows if window_manager is not None else ():
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                image = area.spaces.active.image
                if image is not None and image.type == "RENDER_RESULT":
                    return True
    return False


_updater: Updater | None = None
_requested: dict[str, bool] = {}  # scene name -> render passes too
_follow_ups: list[ThreadedRender] = []
_noted_threaded: set[str] = set()


def request_update(scene: bpy.types.Scene | None = None, render_passes: bool = False) -> None:
    """Re-evaluate ``scene``'s Refocus nodes soon, in the background (interface only)."""
    if bpy.app.background or is_busy() or render_jobs.active() or threading.current_thread() is not threading.main_thread():
        return
    scene = scene if scene is not None else bpy.context.scene
    if scene is None or renders.is_internal(scene):
        return
    _requested[scene.name] = _requested.get(scene.name, False) or render_passes
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=0.05)


def _tick() -> float | None:
    global _updater
    if render_jobs.active():  # a render job runs: nothing of ours may render (probe) now
        return 0.25 if (_updater is not None or _requested or _follow_ups) else None
    if _updater is not None and _updater.tick():
        return 0.05
    _updater = None
    while _follow_ups:
        _updater = start_follow_up(_follow_ups.pop(0))
        if _updater is not None:
            return 0.05 if not _updater.finished else 0.0
    while _requested:
        name, render_passes = _requested.popitem()
        scene = bpy.data.scenes.get(name)
        if scene is not None:
            _updater = start_update(scene, render_passes)
            return 0.05 if not _updater.finished else 0.0
    return None


def start_update(scene: bpy.types.Scene, render_passes: bool = False) -> Updater:
    """Start an interactive evaluation now; advance it with :meth:`Updater.tick`."""
    return Updater(scene, render_passes)


def start_follow_up(job: ThreadedRender) -> Updater | None:
    """Compute the Refocus nodes of an F12 render that finished in a thread, from its own passes."""
    scene = bpy.data.scenes.get(job.scene)
    if scene is None or job.cancelled:
        return None
    if len(job.frames) > 1:
        status.note("Render Animation (Ctrl+F12) renders in a thread, where Refocus nodes cannot be computed "
                    "per frame: its frames show the nodes' last results. Render them with Render > Render "
                    "Animation with Refocus")
        return None
    frame = job.frames[0] if job.frames else scene.frame_current
    if frame != scene.frame_current:
        status.note(f"the F12 render was of frame {frame}, the scene is now at {scene.frame_current}: "
                    "its Refocus nodes were not computed")
        return None
    keeper = renders.Scratch()
    path = keeper.dir / "passes.exr"
    try:
        with busy():
            if job.blurred:
                status.note("the camera's depth of field blurred this render's passes: rendering them "
                            "again all in focus for the Refocus nodes (with Render > Lock Interface on, F12 "
                            "renders them all in focus itself, once)")
                keeper.render_sharp_passes(scene, frame, path)
                keeper.drop_helpers()  # no helper scene may outlive the update (or be saved with the file)
            else:
                renders.save_render_passes(scene, path)
    except (RefocusError, RuntimeError) as exc:
        keeper.close()
        status.note(f"cannot take the passes of this render ({exc}): the F12 frame shows the nodes' last results")
        return None
    last = render_jobs.remember(scene, frame, path, keeper, in_render_result=not job.blurred)
    status.note("computing the Refocus nodes from this render's passes")
    return Updater(scene, last=last, follow_up=True)


def watch() -> float:
    """The interface's watch on threaded renders (a persistent timer): note each job while it runs,
    and follow up each one that finished."""
    if not bpy.app.background and render_jobs.threaded_running() and not bpy.app.is_job_running("RENDER"):
        render_jobs.drop_threaded()  # a job that ended without render_complete or render_cancel
    running = render_jobs.threaded_running()
    for name, frames in running.items():
        if frames > 1 and f"{name} animation" not in _noted_threaded:
            _noted_threaded.add(f"{name} animation")
            status.note(f"rendering an animation of '{name}' in a thread: its frames are written with the Refocus "
                        "nodes' last results; render animations with Render > Render Animation with Refocus")
        elif name not in _noted_threaded:
            _noted_threaded.add(name)
            status.note(f"rendering '{name}' in a thread: its Refocus nodes are computed from this render's "
                        "passes once it finishes")
    _noted_threaded.intersection_update({*running, *(f"{n} animation" for n in running)})
    finished = render_jobs.take_finished()
    if finished:
        _follow_ups.extend(finished)
        if not bpy.app.timers.is_registered(_tick) and not bpy.app.background:
            bpy.app.timers.register(_tick, first_interval=0.0)
    return WATCH_INTERVAL_S


def step() -> bool:
    """One tick of the interface's timers, for headless callers; True while work remains."""
    watch()
    return _tick() is not None or bool(_follow_ups) or running()


def cancel() -> None:
    """Cancel the running interactive evaluation, if any."""
    _requested.clear()
    if _updater is not None:
        _updater.cancel()


def running() -> bool:
    return _updater is not None and not _updater.finished


def forget_results() -> None:
    """Mark every Refocus node of every compositor as not computed yet (e.g. after loading a file):
    until they are, their colour outputs show magenta stripes, never black."""
    with busy():
        for scene in bpy.data.scenes:
            tree = scene.compositing_node_group
            if tree is None or renders.is_internal(scene):
                continue
            r = scene.render
            size = (r.resolution_x * r.resolution_percentage // 100, r.resolution_y * r.resolution_percentage // 100)
            for node in graph.refocus_nodes(tree):
                node.state, node.message, node.progress = "IDLE", "", 0.0
                try:
                    status.mark_pending(node, size)
                except RefocusError as exc:
                    node.message = str(exc)


def reset() -> None:
    """Forget everything (the add-on is being disabled, or another file was loaded)."""
    global _updater
    if _updater is not None:
        _updater.cancel()
        _updater = None
    _requested.clear()
    _follow_ups.clear()
    render_jobs.reset()
    frame_evaluation.clear_cache()


def register() -> None:
    nodes.on_change(request_update)
    if not bpy.app.background and not bpy.app.timers.is_registered(watch):
        bpy.app.timers.register(watch, first_interval=1.0, persistent=True)


def unregister() -> None:
    nodes.on_change(None)
    if bpy.app.timers.is_registered(watch):
        bpy.app.timers.unregister(watch)
