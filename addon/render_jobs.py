"""Render jobs: the Refocus nodes of each frame a render composites, computed before it does.

``render_init`` swaps rendered passes in for Render Layers that feed Refocus nodes (before Blender
copies the tree for the job), ``render_pre`` computes the frame's nodes (blocking: a render waits
anyway), ``render_complete``/``render_cancel`` give the artist's tree back. See
:mod:`.frame_evaluation` for how one frame is evaluated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import bpy

from . import graph, renders, status
from .frame_evaluation import FrameEvaluation, busy, is_busy, run_blocking


@dataclass
class RenderSession:
    """A render job of one scene: its scratch space and, when Render Layers feed Refocus nodes,
    the passes swapped in for them (and the artist's tree, given back at the end)."""

    scratch: renders.Scratch = field(default_factory=renders.Scratch)
    passes: renders.RenderedPasses | None = None
    original: bpy.types.NodeTree | None = None


_sessions: dict[str, RenderSession] = {}


def _wants_refocus(scene: bpy.types.Scene) -> bool:
    tree = scene.compositing_node_group
    return (not renders.is_internal(scene) and not is_busy() and tree is not None
            and scene.render.use_compositing and bool(graph.feeding_outputs(tree)))


def begin_render(scene: bpy.types.Scene) -> None:
    """A render job starts (``render_init``): swap rendered passes in for Render Layers that feed
    Refocus nodes, before Blender copies the tree for the job."""
    if not _wants_refocus(scene) or threading.current_thread() is not threading.main_thread():
        return
    finish_render(scene)
    session = _sessions[scene.name] = RenderSession()
    tree = scene.compositing_node_group
    uses = graph.render_layer_uses(tree, scene, graph.feeding_outputs(tree))
    if uses:
        with busy():
            session.passes = renders.RenderedPasses(session.scratch, tree, uses)
            session.original = tree
            scene.compositing_node_group = session.passes.tree


def prepare_render_frame(scene: bpy.types.Scene) -> None:
    """Compute the Refocus nodes of the frame ``scene`` is about to composite (``render_pre``)."""
    if scene.name not in _sessions and not _wants_refocus(scene):
        return
    if threading.current_thread() is not threading.main_thread():
        # Interactive F12 renders run in a thread where operators (our own renders) are unsafe.
        status.note("F12 renders in a thread, where Refocus nodes keep their last result; use "
                    "Render > Render Image with Refocus for exact frames")
        return
    if scene.name not in _sessions:
        begin_render(scene)  # no render_init seen (a render started some other way)
    session = _sessions[scene.name]
    evaluation = FrameEvaluation(scene, session.scratch, tree=session.original, passes=session.passes,
                                 outputs_only=True)
    run_blocking(evaluation)
    evaluation.release()


def finish_render(scene: bpy.types.Scene) -> None:
    """The render job is over (``render_complete``, ``render_cancel``): give the artist's tree back."""
    session = _sessions.pop(scene.name, None)
    if session is None:
        return
    with busy():
        if session.original is not None:
            scene.compositing_node_group = session.original
        if session.passes is not None:
            session.passes.release()
        session.scratch.close()


def finish_all_renders() -> None:
    for name in list(_sessions):
        scene = bpy.data.scenes.get(name)
        if scene is not None:
            finish_render(scene)
        else:
            _sessions.pop(name).scratch.close()


def active() -> bool:
    """Whether a render job is under way (interactive updates then wait)."""
    return bool(_sessions)
