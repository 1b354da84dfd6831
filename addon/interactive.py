"""Interactive updates: node edits and scrubbing re-evaluate the compositor from a timer.

An :class:`Updater` advances a :class:`.frame_evaluation.FrameEvaluation` a step per tick, so
Blender's interface never waits on the worker. Nodes ask for an update through the hook this
module registers with :func:`.nodes.on_change` (so that ``nodes`` imports nothing of it).
"""

from __future__ import annotations

import contextlib
import threading
import traceback

import bpy

from . import frame_evaluation, graph, nodes, render_jobs, renders, status, worker_client
from .frame_evaluation import FrameEvaluation, busy, is_busy
from .nodes import RefocusNode
from .worker_client import Request


class Updater:
    """An interactive evaluation of one scene, advanced by a timer: never blocks the interface."""

    def __init__(self, scene: bpy.types.Scene, render_passes: bool) -> None:
        self.scene_name = scene.name
        self.scratch = renders.Scratch()
        self.evaluation = FrameEvaluation(scene, self.scratch, render_passes=render_passes)
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
        with busy():
            self.evaluation.release()
            self.scratch.close()
            status.clear()
            scene = bpy.data.scenes.get(self.scene_name)
            if scene is not None and scene.compositing_node_group is not None:
                scene.compositing_node_group.update_tag()


_updater: Updater | None = None
_requested: dict[str, bool] = {}  # scene name -> render passes too


def request_update(scene: bpy.types.Scene | None = None, render_passes: bool = False) -> None:
    """Re-evaluate ``scene``'s Refocus nodes soon, in the background (interface only)."""
    if bpy.app.background or is_busy() or render_jobs.active() or threading.current_thread() is not threading.main_thread():
        return
    scene = scene if scene is not None else bpy.context.scene
    if scene is None or renders.is_internal(scene):
        return
    _requested[scene.name] = _requested.get(scene.name, False) or render_passes
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=0.2)


def _tick() -> float | None:
    global _updater
    if _updater is not None and _updater.tick():
        return 0.1
    _updater = None
    while _requested:
        name, render_passes = _requested.popitem()
        scene = bpy.data.scenes.get(name)
        if scene is not None:
            _updater = start_update(scene, render_passes)
            return 0.1 if not _updater.finished else 0.0
    return None


def start_update(scene: bpy.types.Scene, render_passes: bool = False) -> Updater:
    """Start an interactive evaluation now; advance it with :meth:`Updater.tick`."""
    return Updater(scene, render_passes)


def cancel() -> None:
    """Cancel the running interactive evaluation, if any."""
    _requested.clear()
    if _updater is not None:
        _updater.cancel()


def running() -> bool:
    return _updater is not None and not _updater.finished


def forget_results() -> None:
    """Mark every Refocus node of every compositor as not computed yet (e.g. after loading a file)."""
    with busy():
        for scene in bpy.data.scenes:
            tree = scene.compositing_node_group
            if tree is None or renders.is_internal(scene):
                continue
            for node in graph.refocus_nodes(tree):
                node.state, node.message, node.progress = "IDLE", "", 0.0


def reset() -> None:
    """Forget everything (the add-on is being disabled, or another file was loaded)."""
    global _updater
    if _updater is not None:
        _updater.cancel()
        _updater = None
    _requested.clear()
    render_jobs.finish_all_renders()
    frame_evaluation.clear_cache()


def register() -> None:
    nodes.on_change(request_update)


def unregister() -> None:
    nodes.on_change(None)
