"""Evaluating Refocus nodes at one frame: the compositor's pixels to the worker and the result back.

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
   (``graph.probe_tree``); the result comes from the cache or from the worker (``core/worker/``).
3. The node shows the result through the Image data-blocks of its inner tree, or its input and
   the reason it failed (``nodes.py``).
4. Blender composites the frame, Refocus nodes included, and writes it as usual.

The same steps serve the interactive case (node editor edits, scrubbing), driven by a timer
instead of blocking: :meth:`FrameEvaluation.steps` is a generator that yields whenever it waits for
the worker, :func:`run_blocking` waits in place (renders, :mod:`.render_jobs`) and
:class:`.interactive.Updater` polls from a timer (interface), so Blender's interface never waits
on torch. Interactive updates do not render the
scene on their own (a Cycles render per edit would freeze the interface); the node's Update
button or a render does.

Measured on the 2-core development machine (bpy 5.0.1, Cycles CPU): a probe composites in a few
milliseconds at 480x270 and about 0.2 s at 1920x1080; the worker starts in 1.5-3 s, once per
Blender session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import bpy
import numpy as np

from . import graph, preferences, renders, status, worker_client
from .busy import busy, is_busy
from .cache import ResultCache, result_key
from .errors import RefocusError
from .nodes import MISSING_COLOUR, FrameContext, RefocusNode
from .worker_client import Request

_cache: ResultCache | None = None


def cache() -> ResultCache:
    global _cache
    capacity = preferences.cache_bytes()
    if _cache is None:
        _cache = ResultCache(capacity)
    elif _cache.capacity != capacity:
        _cache.resize(capacity)
    return _cache


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
                reason = node.unavailable_reason(worker_client.served_ops())
                if reason:
                    raise RefocusError(reason)
                if graph.linked_inputs(node):
                    files = self._probe(node, source, folder)
                for upstream in graph.refocus_sources(self.tree, node):
                    if upstream.state != "DONE":
                        raise RefocusError(f"its input node '{upstream.name}' has no result"
                                           + (f" ({upstream.message})" if upstream.message else ""))
                missing = [spec.name for spec in node.INPUTS if spec.required and spec.key not in files]
                if missing:
                    raise RefocusError(f"connect the {' and '.join(missing)} input{'s' if len(missing) > 1 else ''}")
                params = node.parameters(dataclasses.replace(ctx, device=node.device_name(ctx.scene, ctx.device)))
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
                cache().put(key, outputs, "; ".join(request.result.get("warnings") or ()))
                self.computed += 1
            with busy():
                node.show(outputs, cache().note(key))
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
                source = spec.passthrough
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


def clear_cache() -> None:
    if _cache is not None:
        _cache.clear()
