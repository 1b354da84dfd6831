"""Render jobs: the Refocus nodes of each frame a render composites.

Blender renders in one of two ways, and the add-on meets each where it can compute.

**On the main thread** (``blender -b``, the bpy module, scripts, Render > Render with Refocus):
``render_init`` swaps rendered passes in for Render Layers that feed Refocus nodes (before Blender
copies the tree for the job), ``render_pre`` computes the frame's nodes (blocking: a render waits
anyway), ``render_complete``/``render_cancel`` give the artist's tree back. See
:mod:`.frame_evaluation` for how one frame is evaluated. A node that fails shows its input: in
the interface with magenta stripes over it (``status.mark_failed``; the Failed Nodes Show
preference chooses marked or unmarked, everywhere). In a background render, with Fail Render on
Node Error on (the default; ``$REFOCUS_FAIL_RENDER_ON_ERROR`` overrides it), the process ends with
exit code 1 and the node's message on stderr before the frame is written: raising from a handler
does not fail a Blender render (checked with bpy 5.0.1), so the farm would see success.

**In a job thread** (F12 in the interface): Blender calls the same handlers from the render's
thread, where operators (the add-on's helper renders and probes) are unsafe and Blender's data
must not be changed. So the thread only takes notes (:class:`ThreadedRender`), and the work happens
on the main thread once the render is over (``interactive`` polls :func:`take_finished` from a
timer). What the artist sees, step by step:

1. F12: Cycles renders the frame as usual; all in focus when the camera's depth of field is off,
   or when Render > Lock Interface is on (the thread may then switch the camera's depth of field
   off for the render, and gives it back at the end). The status bar says the Refocus nodes will
   be computed from this render when it finishes.
2. Blender composites the frame in the thread with what the nodes show then: their result for
   the passes of the last render (live edits keep it current, within a second of an edit), or,
   right after opening a file, magenta stripes on grey (``status.mark_pending``): never a black
   frame. F12 pressed before an edit's live update finished composites the previous result here;
   step 4 replaces it, and the status bar says meanwhile that the nodes are still to be computed.
3. The render finishes. On the main thread the add-on saves the Render Result's passes
   (``renders.save_render_passes``: every pass, no new render) or, when the camera's depth of
   field blurred them (interface not locked), renders them again all in focus (the helper scene,
   one Cycles render; the status bar suggests Lock Interface), and
   computes the Refocus nodes that reach an output from them in the worker, with progress in the
   status bar and on the nodes. The interface stays live while the worker computes.
4. The add-on composites the scene again from those passes with no render
   (``renders.recomposite``: a render engine that only loads the saved passes): the F12 window
   now shows the Refocus result, and the status bar says so. A node that failed shows its input
   with magenta stripes, and its message is in the status bar.
5. Later edits of the nodes recompute from the same passes (``interactive``) without Cycles.

An animation rendered in a thread (Ctrl+F12) writes each frame before the add-on can compute it:
its frames hold the nodes' last results, and the status bar says so and how to render them right
(Render > Render Animation with Refocus).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import graph, preferences, renders, status
from .busy import busy, is_busy
from .frame_evaluation import FrameEvaluation, run_blocking


def in_render_thread() -> bool:
    return threading.current_thread() is not threading.main_thread()


@dataclass
class RenderSession:
    """A render job of one scene on the main thread: its scratch space and, when Render Layers
    feed Refocus nodes, the passes swapped in for them (and the artist's tree, given back at the end)."""

    scratch: renders.Scratch = field(default_factory=renders.Scratch)
    passes: renders.RenderedPasses | None = None
    original: bpy.types.NodeTree | None = None
    keeper: renders.Scratch | None = None  # owns ``keep``: every pass of the last frame, kept for
    # live edits (interface only)

    @property
    def keep(self) -> Path | None:
        return self.keeper.dir / "passes.exr" if self.keeper is not None else None


@dataclass
class ThreadedRender:
    """What the render thread noted about one render job (it may change nothing else)."""

    scene: str
    blurred: bool  # the camera's depth of field was on: the render's own passes are not all in focus
    frames: list[int] = field(default_factory=list)
    cancelled: bool = False
    pinhole: str = ""  # the camera data whose depth of field the thread switched off for the render


@dataclass
class LastRender:
    """The passes of a scene's last render at ``frame``: a multilayer EXR that live edits and the
    follow-up of an F12 render compute from, without rendering again."""

    frame: int
    path: Path
    scratch: renders.Scratch  # owns the file
    in_render_result: bool  # the scene's Render Result holds these very passes

    def close(self) -> None:
        self.scratch.close()


_sessions: dict[str, RenderSession] = {}
_threaded: dict[str, ThreadedRender] = {}
_finished: list[ThreadedRender] = []
_lock = threading.Lock()
_last: dict[str, LastRender] = {}


def _wants_refocus(scene: bpy.types.Scene) -> bool:
    tree = scene.compositing_node_group
    return (not renders.is_internal(scene) and not is_busy() and tree is not None
            and scene.render.use_compositing and bool(graph.feeding_outputs(tree)))


def _camera_blurs(scene: bpy.types.Scene) -> bool:
    camera = scene.camera
    return camera is not None and camera.type == "CAMERA" and bool(camera.data.dof.use_dof)


def begin_render(scene: bpy.types.Scene) -> None:
    """A render job starts (``render_init``): swap rendered passes in for Render Layers that feed
    Refocus nodes, before Blender copies the tree for the job. In a render thread: take note only."""
    if not _wants_refocus(scene):
        return
    if in_render_thread():
        tree = scene.compositing_node_group
        reads_layers = bool(graph.render_layer_uses(tree, scene, graph.feeding_outputs(tree)))
        job = ThreadedRender(scene.name, reads_layers and _camera_blurs(scene))
        if job.blurred and scene.render.use_lock_interface:
            # With the interface locked, Blender's handlers may change data (its handlers' note on
            # altering data): the render itself is made all in focus, so its own passes serve the
            # nodes, and the camera is given back at the end. Unlocked, the follow-up renders again.
            job.pinhole = scene.camera.data.name_full
            scene.camera.data.dof.use_dof = False
            job.blurred = False
        with _lock:
            _threaded[scene.name] = job
        return
    finish_render(scene)
    session = _sessions[scene.name] = RenderSession()
    tree = scene.compositing_node_group
    uses = graph.render_layer_uses(tree, scene, graph.feeding_outputs(tree))
    if uses:
        with busy():
            if not bpy.app.background:  # live edits after the render compute from its passes
                session.keeper = renders.Scratch()
            session.passes = renders.RenderedPasses(session.scratch, tree, uses, keep=session.keep)
            session.original = tree
            scene.compositing_node_group = session.passes.tree


def prepare_render_frame(scene: bpy.types.Scene) -> None:
    """Compute the Refocus nodes of the frame ``scene`` is about to composite (``render_pre``)."""
    if in_render_thread():
        with _lock:
            job = _threaded.get(scene.name)
            if job is not None:
                job.frames.append(scene.frame_current)
        return
    if scene.name not in _sessions and not _wants_refocus(scene):
        return
    if scene.name not in _sessions:
        begin_render(scene)  # no render_init seen (a render started some other way)
    session = _sessions[scene.name]
    tree = session.original if session.original is not None else scene.compositing_node_group
    evaluation = FrameEvaluation(scene, session.scratch, tree=session.original, passes=session.passes,
                                 outputs_only=True)
    run_blocking(evaluation)
    evaluation.release()
    failed = [n for n in graph.evaluation_order(tree, outputs_only=True) if n.state == "ERROR"]
    if failed and bpy.app.background and preferences.fail_render_on_error():
        status.fail_render(f"scene '{scene.name}' frame {scene.frame_current}: "
                           + "; ".join(f"node '{n.name}': {n.message}" for n in failed)
                           + " (Fail Render on Node Error is on)")
    with busy():
        status.mark_failures(failed)


def complete_render(scene: bpy.types.Scene) -> None:
    """``render_complete``: the job rendered every frame."""
    _end(scene, cancelled=False)


def cancel_render(scene: bpy.types.Scene) -> None:
    """``render_cancel``: the artist stopped the job."""
    _end(scene, cancelled=True)


def _end(scene: bpy.types.Scene, cancelled: bool) -> None:
    if in_render_thread():
        with _lock:
            job = _threaded.pop(scene.name, None)
        if job is None:
            return
        if job.pinhole:
            camera = bpy.data.cameras.get(job.pinhole)
            if camera is not None:
                camera.dof.use_dof = True
        job.cancelled = cancelled
        with _lock:
            _finished.append(job)
        return
    finish_render(scene)


def finish_render(scene: bpy.types.Scene) -> None:
    """The render job is over (``render_complete``, ``render_cancel``): give the artist's tree back,
    and keep the passes of its last frame for live edits."""
    session = _sessions.pop(scene.name, None)
    if session is None:
        return
    with busy():
        if session.original is not None:
            scene.compositing_node_group = session.original
        if session.passes is not None:
            session.passes.release()
        session.scratch.close()
    if session.keeper is not None and session.keep is not None:
        frame = session.passes.exported if session.passes is not None else None
        if frame is not None and session.keep.is_file():
            remember(scene, frame, session.keep, session.keeper, in_render_result=False)
        else:
            session.keeper.close()


def finish_all_renders() -> None:
    for name in list(_sessions):
        scene = bpy.data.scenes.get(name)
        if scene is not None:
            finish_render(scene)
        else:
            _sessions.pop(name).scratch.close()


def active() -> bool:
    """Whether a render job is under way, here or in a render thread (interactive updates then wait)."""
    with _lock:
        return bool(_sessions) or bool(_threaded)


def threaded_running() -> dict[str, int]:
    """Scenes rendering in a job thread now, and how many frames each has started."""
    with _lock:
        return {name: len(job.frames) for name, job in _threaded.items()}


def drop_threaded() -> None:
    """Forget threaded jobs that are no longer running (none told their end)."""
    with _lock:
        _threaded.clear()


def take_finished() -> list[ThreadedRender]:
    """Render jobs that finished in a thread since the last call (main thread)."""
    with _lock:
        done = list(_finished)
        _finished.clear()
    return done


# ------------------------------------------------------------------------------ the passes of the last render
def remember(scene: bpy.types.Scene, frame: int, path: Path, scratch: renders.Scratch,
             in_render_result: bool) -> LastRender:
    """Keep ``path`` (owned by ``scratch``) as the passes of ``scene``'s last render, at ``frame``."""
    forget(scene.name)
    last = _last[scene.name] = LastRender(frame, path, scratch, in_render_result)
    return last


def last_render(scene: bpy.types.Scene) -> LastRender | None:
    last = _last.get(scene.name)
    if last is not None and not last.path.is_file():
        forget(scene.name)
        return None
    return last


def forget(scene_name: str | None = None) -> None:
    """Drop the kept passes of one scene (or of all)."""
    for name in [scene_name] if scene_name is not None else list(_last):
        last = _last.pop(name, None)
        if last is not None:
            last.close()


def reset() -> None:
    finish_all_renders()
    forget()
    with _lock:
        _threaded.clear()
        _finished.clear()
