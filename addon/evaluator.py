"""Evaluating Refocus nodes: the compositor's pixels to the worker and the result back, per frame.

Blender composites a frame in one native pass and offers Python no hook inside it, but it does use
the pixels of an Image data-block as they are when the pass starts. So every Refocus node is
computed *before* its frame is composited, from the ``render_pre`` handler (see ``handlers.py``),
upstream nodes first:

1. If Render Layers feed a Refocus node, the render job reads them from files instead: at
   ``render_init`` a copy of the tree with Image data-blocks in place of Render Layers is swapped in
   (``renders.RenderedPasses``), and each frame the helper scene renders the used passes, all in
   focus, into those files. The scene is rendered once per frame, not twice.
2. For each Refocus node: its parameters are resolved at this frame (the scene camera, evaluated);
   its linked inputs are probed, i.e. composited by Blender itself into EXR files
   (``graph.probe_tree``); the result comes from the cache or from the worker (``core/worker.py``).
3. The node shows the result through the Image data-blocks of its inner tree, or its input and
   the reason it failed (``nodes.py``).
4. Blender composites the frame, Refocus nodes included, and writes it as usual.

The same steps serve the interactive case (node editor edits, scrubbing), driven by a timer
instead of blocking: :meth:`FrameEvaluation.steps` is a generator that yields whenever it waits for
the worker, :func:`run_blocking` waits in place (renders) and :class:`Updater` polls from a timer
(interface), so Blender's interface never waits on torch. Interactive updates do not render the
scene on their own (a Cycles render per edit would freeze the interface); the node's Update
button or a render does.

Measured on the 2-core development machine (bpy 5.0.1, Cycles CPU): a probe composites in a few
milliseconds at 480x270 and about 0.2 s at 1920x1080; the worker starts in 1.5-3 s, once per
Blender session.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import bpy
import numpy as np

from . import graph, preferences, renders, status, worker_client
from .cache import ResultCache, result_key
from .errors import RefocusError
from .nodes import MISSING_COLOUR, FrameContext, RefocusNode
from .worker_client import Request

_cache: ResultCache | None = None
_busy = 0  # > 0 while the add-on itself changes Blender data: its own edits trigger no update


def cache() -> ResultCache:
    global _cache
    capacity = preferences.cache_bytes()
    if _cache is None:
        _cache = ResultCache(capacity)
    elif _cache.capacity != capacity:
        _cache.resize(capacity)
    return _cache


@contextlib.contextmanager
def busy() -> Iterator[None]:
    global _busy
    _busy += 1
    try:
        yield
    finally:
        _busy -= 1


def is_busy() -> bool:
    return _busy > 0


class NeedsRender(RefocusError):
    """Render Layers feed the nodes, and this interactive update may not render the scene."""


class FrameEvaluation:
    """Computes every Refocus node of ``tree`` (by default ``scene``'s compositor) at the scene's frame,
    or with ``outputs_only`` those whose result reaches an output (a render's needs).

    Render Layers that feed the nodes are read from ``passes`` (a render job's), or from passes this
    evaluation renders itself when ``render_passes`` allows it; :meth:`release` frees those.
    """

    def __init__(self, scene: bpy.types.Scene, scratch: renders.Scratch, *, tree: bpy.types.NodeTree | None = None,
                 passes: renders.RenderedPasses | None = None, render_passes: bool = False,
                 outputs_only: bool = False) -> None:
        self.scene = scene
        self.outputs_only = outputs_only
        self.tree = tree if tree is not None else scene.compositing_node_group
        self.frame = scene.frame_current
        self.scratch = scratch
        self.passes = passes  # a render job's, already swapped in for Render Layers
        self.render_passes = render_passes  # without them: may render its own (interactive Update)
        self.own_passes: renders.RenderedPasses | None = None
        self.request: Request | None = None
        self.cancelled = False
        self.computed = 0  # results computed by the worker (not from the cache)

    def steps(self) -> Iterator[tuple[RefocusNode, Request]]:
        """Evaluate node after node; yield (node, request) while the worker computes it."""
        if self.tree is None:
            return
        order = [n.name for n in graph.evaluation_order(self.tree, self.outputs_only)]
        if not order:
            return
        nodes = self.tree.nodes
        try:
            with busy():
                ctx = FrameContext(self.scene, self.scratch.depsgraph(self.scene, self.frame), self.frame,
                                   preferences.worker_device())
                source = self._source_tree([nodes[name] for name in order])
        except NeedsRender as exc:  # interactive: keep showing what the nodes show, say what is needed
            with busy():
                for name in order:
                    nodes[name].state, nodes[name].message = "IDLE", str(exc)
            return
        except (RefocusError, RuntimeError) as exc:
            for name in order:
                self._fail(nodes[name], str(exc).strip())
            return
        for name in order:
            node = nodes.get(name)
            if node is None:  # deleted while an interactive update was running
                continue
            if self.cancelled:
                self._fail(node, "cancelled", state="CANCELLED")
                continue
            yield from self._evaluate(node, source, ctx)

    def _source_tree(self, nodes: list[RefocusNode]) -> bpy.types.NodeTree:
        """The tree inputs are probed from: Render Layers read from rendered passes when needed."""
        uses = graph.render_layer_uses(self.tree, self.scene, nodes)
        if not uses:
            return self.tree
        if self.passes is None:
            if not self.render_passes:
                raise NeedsRender("Render Layers feed this node: press Update (or render) to render the "
                                  "passes it refocuses")
            self.passes = self.own_passes = renders.RenderedPasses(self.scratch, self.tree, uses)
        self.passes.render(self.frame)
        return self.passes.tree

    def _evaluate(self, node: RefocusNode, source: bpy.types.NodeTree,
                  ctx: FrameContext) -> Iterator[tuple[RefocusNode, Request]]:
        files: dict[str, str] = {}  # input key -> the EXR the compositor wrote for it
        folder = self.scratch.folder(node.name)
        try:
            with busy():
                node.start()
                if graph.linked_inputs(node):
                    files = self._probe(node, source, folder)
                for upstream in graph.refocus_sources(self.tree, node):
                    if upstream.state != "DONE":
                        raise RefocusError(f"its input node '{upstream.name}' has no result"
                                           + (f" ({upstream.message})" if upstream.message else ""))
                missing = [spec.name for spec in node.INPUTS if spec.required and spec.key not in files]
                if missing:
                    raise RefocusError(f"connect the {' and '.join(missing)} input{'s' if len(missing) > 1 else ''}")
                params = node.parameters(ctx)
            key = result_key(node.uid, node.op, self.frame, params, sorted(files.items()))
            outputs = cache().get(key)
            if outputs is None:
                paths = {spec.key: str(folder / f"{spec.key}.npy") for spec in node.OUTPUTS}
                inputs = {k: {"path": path} for k, path in files.items()}
                request = worker_client.client().submit(node.op, inputs, params, paths)
                self.request = request
                yield node, request
                self.request = None
                if request.error is not None:
                    if request.kind == "cancelled":
                        self.cancelled = True
                    raise request.error
                assert request.result is not None
                outputs = {name: np.load(entry["path"]) for name, entry in request.result["outputs"].items()}
                cache().put(key, outputs)
                self.computed += 1
            with busy():
                node.show(outputs)
        except RefocusError as exc:
            self._fail(node, str(exc), files, "CANCELLED" if self.cancelled else "ERROR")
        except RuntimeError as exc:  # a bpy operator (a probe render) refused: Blender's own message
            self._fail(node, f"compositing its inputs failed: {exc}".strip(), files)
        except Exception as exc:  # a bug: say so on the node rather than break the artist's render
            traceback.print_exc()
            self._fail(node, f"internal error ({type(exc).__name__}: {exc}); see the system console", files)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _probe(self, node: RefocusNode, source: bpy.types.NodeTree, folder: Path) -> dict[str, str]:
        """Composite ``node``'s linked inputs into EXR files; return input key -> path."""
        probe, folders = graph.probe_tree(source, node, folder)
        try:
            self.scratch.render_probe(self.scene, probe, self.frame)
        finally:
            renders.remove_tree(probe)
        files: dict[str, str] = {}
        for spec in node.INPUTS:
            if spec.key not in folders:
                continue
            written = sorted(p for p in folders[spec.key].glob("*") if p.is_file())
            if not written and spec.kind == "value":  # a single value: probe it as a composite
                probe = graph.value_probe_tree(source, node, spec.name)
                try:
                    path = folder / f"{spec.key}-value.exr"
                    self.scratch.render_composite(self.scene, probe, self.frame, path)
                    written = [path] if path.is_file() else []
                finally:
                    renders.remove_tree(probe)
            if len(written) != 1:
                raise RefocusError(f"the compositor wrote no pixels for the {spec.name} input "
                                   "(is its source empty?)")
            files[spec.key] = str(written[0])
        return files

    def _fail(self, node: RefocusNode, message: str, files: dict[str, str] | None = None,
              state: str = "ERROR") -> None:
        """Show the node's input instead of a result (see :meth:`RefocusNode.fail`), and say why."""
        files = files or {}
        r = self.scene.render
        size = (max(1, r.resolution_x * r.resolution_percentage // 100),
                max(1, r.resolution_y * r.resolution_percentage // 100))
        fallback: dict[str, np.ndarray] = {}
        with busy():
            for spec in node.OUTPUTS:
                source = {s.name: s.key for s in node.INPUTS}.get(spec.passthrough or "")
                if source in files:
                    fallback[spec.key] = renders.read_pixels(files[source])
                else:
                    fill = MISSING_COLOUR if spec.kind == "color" else (0.0, 0.0, 0.0, 1.0)
                    fallback[spec.key] = np.broadcast_to(np.float32(fill), (size[1], size[0], 4))
            try:
                node.fail(message, fallback, state)
            except RefocusError as exc:
                message = f"{message}; {exc}"
        if state == "ERROR":
            status.error(node, message)

    def cancel(self) -> None:
        self.cancelled = True
        client = worker_client.current_client()
        if self.request is not None and client is not None:
            client.cancel(self.request)

    def release(self) -> None:
        """Free the passes this evaluation rendered for itself."""
        if self.own_passes is not None:
            self.own_passes.release()
            self.own_passes = self.passes = None


def run_blocking(evaluation: FrameEvaluation) -> None:
    """Run ``evaluation`` to the end, waiting for the worker in place (a render waits anyway)."""
    for node, request in evaluation.steps():
        client = worker_client.current_client()
        if client is None:
            continue
        client.wait(request, progress=lambda done, total, node=node: status.progress(node, done, total))


# -------------------------------------------------------------------------------------- renders
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


# ---------------------------------------------------------------------------------- interactive
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
    if bpy.app.background or is_busy() or _sessions or threading.current_thread() is not threading.main_thread():
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
    global _updater, _cache
    if _updater is not None:
        _updater.cancel()
        _updater = None
    _requested.clear()
    finish_all_renders()
    if _cache is not None:
        _cache.clear()
