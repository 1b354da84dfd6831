"""Renders the add-on makes on its own: the scene's passes, and compositor probes.

Both run inside the artist's render (from its ``render_pre`` handler, before the frame is
composited), on a *helper* scene: a linked copy of the artist's scene (same objects, camera, world,
render and pass settings) that the add-on owns, so the artist's scene, output path and compositor
are never touched, and Blender's render of the artist's scene is not re-entered.

* :meth:`Scratch.export_passes`: the helper renders the frame and its own Render Layers write each
  pass the artist's tree uses to a 32-bit EXR: the pixels Render Layers would have given, but all
  in focus (the camera's depth of field is switched off for it: the nodes add it, and "Use Scene
  Camera" takes its settings from that very camera). :class:`RenderedPasses` puts them in place of
  the artist's Render Layers for a whole render job.
* :meth:`Scratch.render_probe`: the helper composites a probe tree (see ``graph.py``) with nothing
  to render (no Render Layers left in it), which takes milliseconds.
* :meth:`Scratch.depsgraph`: the helper evaluated at the frame, for animated cameras and focus
  objects (the artist's own scene is evaluated for a frame only after ``render_pre`` has run).

* :class:`PassesEngine` and :func:`recomposite`: the passes of a finished render, saved from the
  Render Result (:func:`save_render_passes`), given back to Blender by a render engine that only
  loads them from the file. A scene "rendered" with it composites its tree again, Render Layers
  and all, in milliseconds and without Cycles: how a threaded F12 render gets its Refocus nodes
  (see ``render_jobs``), and how helper scenes export passes for probes from a file.

A :class:`Scratch` lives for one render job or one interactive update; closing it removes its
scenes, trees, images and files.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import bpy
import numpy as np

from . import graph
from .errors import RefocusError

INTERNAL = "refocus_internal"
PASSES_ENGINE = "REFOCUS_PASSES"
_engine_sources: dict[str, str] = {}  # scene name -> multilayer EXR the passes engine loads for it


def is_internal(scene: bpy.types.Scene | None) -> bool:
    """Whether ``scene`` is one of the add-on's helpers (its render handlers then do nothing)."""
    return scene is not None and bool(scene.get(INTERNAL, False))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Blender prints each nested render's progress to stdout; keep the artist's log to their render."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (some embedded uses): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _pinhole(scene: bpy.types.Scene) -> Iterator[None]:
    """The scene's camera without depth of field for the duration of the block.

    Refocus nodes add the depth of field, so the passes they refocus must be all in focus, even
    when the camera's own depth of field is on (its settings are what "Use Scene Camera" applies).
    """
    camera = scene.camera
    dof = camera.data.dof if camera is not None and camera.type == "CAMERA" else None
    if dof is None or not dof.use_dof:
        yield
        return
    dof.use_dof = False
    try:
        yield
    finally:
        dof.use_dof = True


class Scratch:
    """Helper scenes, trees, images and files of one evaluation session."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="refocus-"))
        self.helpers: dict[str, bpy.types.Scene] = {}
        self.counter = 0

    def folder(self, label: str) -> Path:
        """A new empty folder for one probe or result."""
        self.counter += 1
        path = self.dir / f"{self.counter:05d}-{_safe(label)}"
        path.mkdir()
        return path

    def helper(self, scene: bpy.types.Scene) -> bpy.types.Scene:
        """This session's linked copy of ``scene``."""
        helper = self.helpers.get(scene.name)
        if helper is None:
            helper = scene.copy()
            helper.name = f".Refocus helper {scene.name}"
            helper[INTERNAL] = True
            # No render time or date in the files' metadata: the same pixels must give the same
            # bytes, which is how the cache recognises an input it has seen.
            for name in ("use_stamp_date", "use_stamp_time", "use_stamp_render_time", "use_stamp_memory",
                         "use_stamp_hostname", "use_stamp"):
                setattr(helper.render, name, False)
            helper.render.use_sequencer = False  # the 3D scene, even where the artist edits in the sequencer
            self.helpers[scene.name] = helper
        return helper

    def depsgraph(self, scene: bpy.types.Scene, frame: int) -> bpy.types.Depsgraph:
        """A depsgraph of ``scene``'s objects evaluated at ``frame``."""
        helper = self.helper(scene)
        helper.frame_set(frame)
        return helper.view_layers[0].depsgraph

    def export_passes(self, scene: bpy.types.Scene, frame: int, uses: list[graph.PassUse],
                      paths: dict[str, Path], source: Path | None = None, keep: Path | None = None) -> None:
        """Render ``scene`` at ``frame``, all in focus, and write each used pass to ``paths[use.key]``.

        ``source``: take the passes from this multilayer EXR (a finished render's, see
        :func:`save_render_passes`) instead of rendering; ``keep``: also save every pass of the
        render there, as a multilayer EXR (for live edits after the render).
        """
        helper = self.helper(scene)
        helper.frame_current = frame
        folder = self.folder(f"export-{scene.name}-{frame}")
        # From a file: the engine first, so that the export tree's Render Layers offer its passes.
        with _from_file(helper, source) if source is not None else contextlib.nullcontext():
            tree, folders = graph.pass_export_tree(uses, helper, folder)
            try:
                helper.compositing_node_group = tree
                helper.render.use_compositing = True
                helper.render.use_file_extension = True  # File Output nodes follow it too
                with _quiet(), (_pinhole(helper) if source is None else contextlib.nullcontext()):
                    bpy.ops.render.render(write_still=False, scene=helper.name)
                if keep is not None:
                    save_render_passes(helper, keep)
                for use in uses:
                    written = written_file(folders[use.key])
                    if written is None:
                        raise RefocusError(f"rendering scene '{scene.name}' gave no {use.socket} pass")
                    os.replace(written, paths[use.key])
            finally:
                remove_tree(tree)
                shutil.rmtree(folder, ignore_errors=True)

    def render_sharp_passes(self, scene: bpy.types.Scene, frame: int, path: Path) -> None:
        """Render ``scene`` at ``frame`` all in focus (the helper, Cycles) and save every pass to
        ``path`` as a multilayer EXR: for a render whose own passes the camera's depth of field blurred."""
        helper = self.helper(scene)
        helper.frame_current = frame
        helper.compositing_node_group = None
        helper.render.use_compositing = False
        with _quiet(), _pinhole(helper):
            bpy.ops.render.render(write_still=False, scene=helper.name)
        save_render_passes(helper, path)

    def render_probe(self, scene: bpy.types.Scene, tree: bpy.types.NodeTree, frame: int) -> None:
        """Composite ``tree`` at ``frame`` with ``scene``'s settings (its File Outputs write the files)."""
        helper = self.helper(scene)
        helper.frame_current = frame
        helper.compositing_node_group = tree
        helper.render.use_compositing = True
        helper.render.use_file_extension = True  # File Output nodes follow it too
        with _quiet():
            bpy.ops.render.render(write_still=False, scene=helper.name)

    def render_composite(self, scene: bpy.types.Scene, tree: bpy.types.NodeTree, frame: int, path: Path) -> None:
        """Composite ``tree`` at ``frame`` and write its Group Output to a 32-bit EXR at ``path``."""
        helper = self.helper(scene)
        helper.frame_current = frame
        helper.compositing_node_group = tree
        r = helper.render
        r.use_compositing = True
        r.image_settings.media_type = "IMAGE"
        r.image_settings.file_format = "OPEN_EXR"
        r.image_settings.color_mode = "RGBA"
        r.image_settings.color_depth = "32"
        r.image_settings.exr_codec = "NONE"
        r.filepath, r.use_file_extension = str(path), False
        with _quiet():
            bpy.ops.render.render(write_still=True, scene=helper.name)

    def drop_helpers(self) -> None:
        """Remove the helper scenes, keep the files (a kept render's passes outlive its render)."""
        for helper in self.helpers.values():
            with contextlib.suppress(ReferenceError):
                bpy.data.scenes.remove(helper)
        self.helpers.clear()

    def close(self) -> None:
        self.drop_helpers()
        shutil.rmtree(self.dir, ignore_errors=True)


class RenderedPasses:
    """Render Layers read back from files the helper renders: built once per render job.

    Each used Render Layers output gets an Image data-block on a fixed file, and :attr:`tree` is the
    artist's tree with those Images in its place. The tree is swapped in when the render job
    starts (``render_init``): a render builds its own copy of the scene's tree then, and with no
    Render Layers left in it, Blender does not render the scene itself. Each frame,
    :meth:`render` renders the files again and reloads the Images, whose pixels the render's copy
    shares.
    """

    def __init__(self, scratch: "Scratch", tree: bpy.types.NodeTree, uses: list[graph.PassUse],
                 source: Path | None = None, keep: Path | None = None, folder: Path | None = None,
                 frame: int | None = None) -> None:
        """``source``: the passes come from this multilayer EXR of a finished render (at the frame it
        was rendered), not from rendering; ``keep``: each render also saves all its passes there.
        ``folder``: where the pass files go; with ``source`` and ``frame``, files already there are
        those passes of that frame (exported by an earlier update), used as they are."""
        self.scratch, self.uses = scratch, uses
        self.source, self.keep = source, keep
        self.exported: int | None = None  # the frame whose passes the files hold (from ``source``)
        if folder is None:
            folder = scratch.folder("passes")
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = {use.key: folder / f"{_safe(use.key)}.exr" for use in uses}
        if source is not None and frame is not None and all(p.is_file() for p in self.paths.values()):
            self.exported = frame
        self.images: dict[str, bpy.types.Image] = {}
        for use in uses:
            image = bpy.data.images.new(f".Refocus pass {use.key}", 4, 4, alpha=True, float_buffer=True)
            image.source = "FILE"
            image.filepath = str(self.paths[use.key])
            image.colorspace_settings.is_data = use.kind != "color"  # depth, vectors: numbers, not colours
            self.images[use.key] = image
        self.tree = graph.with_pass_images(tree, self.images, uses)

    def render(self, frame: int) -> None:
        if self.source is not None and self.exported == frame:
            return  # a file does not change: the Images already hold its passes
        by_scene: dict[str, list[graph.PassUse]] = {}
        for use in self.uses:
            by_scene.setdefault(use.scene, []).append(use)
        for name, uses in by_scene.items():
            scene = bpy.data.scenes.get(name)
            if scene is None:
                raise RefocusError(f"Render Layers render scene '{name}', which no longer exists")
            keep = self.keep if self.keep is not None and len(by_scene) == 1 else None
            self.scratch.export_passes(scene, frame, uses, self.paths, source=self.source, keep=keep)
        for image in self.images.values():
            image.reload()
        self.exported = frame

    def release(self) -> None:
        remove_tree(self.tree)
        for image in self.images.values():
            remove_image(image)
        self.images.clear()


def written_file(folder: Path) -> Path | None:
    """The one file a File Output node wrote into ``folder`` (named by Blender), if any."""
    files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    return files[0] if len(files) == 1 else None


def read_pixels(path: str | Path) -> np.ndarray:
    """An EXR the compositor wrote, as (H, W, 4) float32, top row first (no colour conversion)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        w, h = image.size
        pixels = np.empty(w * h * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(h, w, image.channels)[::-1]
    finally:
        bpy.data.images.remove(image)


def remove_tree(tree: bpy.types.NodeTree | None) -> None:
    if tree is not None:
        with contextlib.suppress(ReferenceError):
            bpy.data.node_groups.remove(tree)


def remove_image(image: bpy.types.Image | None) -> None:
    if image is not None:
        with contextlib.suppress(ReferenceError):
            bpy.data.images.remove(image)


# ------------------------------------------------------------------------------ passes from a file
def save_render_passes(scene: bpy.types.Scene, path: Path) -> None:
    """Every pass of ``scene``'s last render (its Render Result) to ``path``, a 32-bit multilayer EXR.

    The scene's output format is switched for the save and given back: the Render Result keeps a
    render's passes, but writes them only as the scene's format says.
    """
    result = bpy.data.images.get("Render Result")
    if result is None or result.type != "RENDER_RESULT":
        raise RefocusError(f"scene '{scene.name}' has no render result to take the passes from")
    settings = scene.render.image_settings
    fields = ("media_type", "file_format", "color_mode", "color_depth", "exr_codec")
    saved = {name: getattr(settings, name) for name in fields}
    try:
        settings.media_type = "MULTI_LAYER_IMAGE"
        settings.color_depth = "32"
        settings.exr_codec = "NONE"  # a scratch file, read back soon: speed over size
        path.parent.mkdir(parents=True, exist_ok=True)
        result.save_render(str(path), scene=scene)
    finally:
        for name in fields:
            with contextlib.suppress(TypeError, ValueError):
                setattr(settings, name, saved[name])
    if not path.is_file():
        raise RefocusError(f"Blender wrote no passes for scene '{scene.name}'")


_CHANNEL_SETS = {"RGBA": "COLOR", "RGB": "COLOR", "XYZW": "VECTOR", "XYZ": "VECTOR", "UV": "VECTOR"}


def exr_passes(path: str | Path) -> dict[str, list[tuple[str, str, str]]]:
    """The passes of a Blender multilayer EXR: view layer -> [(pass, channel ids, type)], from its
    header (part and channel names ``<layer>.<pass>.<channel>``), e.g. ``("Depth", "Z", "VALUE")``."""
    stat = os.stat(path)
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _passes_of:
        _passes_of.clear()
        _passes_of[key] = _read_exr_passes(path)
    return _passes_of[key]


_passes_of: dict[tuple[str, int, int], dict[str, list[tuple[str, str, str]]]] = {}


def _read_exr_passes(path: str | Path) -> dict[str, list[tuple[str, str, str]]]:
    with open(path, "rb") as f:
        data = f.read(1 << 18)  # headers only: a few kB even with many passes
    if data[:4] != b"\x76\x2f\x31\x01":
        raise RefocusError(f"{path} is not an OpenEXR file")
    multipart = bool(int.from_bytes(data[4:8], "little") & 0x1000)
    pos, channels = 8, []
    while pos < len(data) and data[pos] != 0:  # one header per part; an empty one ends the list
        while data[pos] != 0:
            name_end = data.index(b"\0", pos)
            type_end = data.index(b"\0", name_end + 1)
            size = int.from_bytes(data[type_end + 1:type_end + 5], "little")
            value = data[type_end + 5:type_end + 5 + size]
            if data[pos:name_end] == b"channels":
                at = 0
                while at < len(value) and value[at] != 0:
                    end = value.index(b"\0", at)
                    channels.append(value[at:end].decode("utf-8", "replace"))
                    at = end + 1 + 16
            pos = type_end + 5 + size
        pos += 1
        if not multipart:
            break
    layers: dict[str, dict[str, set[str]]] = {}
    for name in channels:
        parts = name.rsplit(".", 2)
        if len(parts) == 3 and parts[0] != "Composite":
            layers.setdefault(parts[0], {}).setdefault(parts[1], set()).add(parts[2])
    found: dict[str, list[tuple[str, str, str]]] = {}
    for layer, passes in layers.items():
        for name, chans in passes.items():
            ids = next((ids for ids in _CHANNEL_SETS if set(ids) == chans), "".join(sorted(chans)))
            kind = "VALUE" if len(ids) == 1 else _CHANNEL_SETS.get(ids, "COLOR")
            found.setdefault(layer, []).append((name, ids, kind))
    return found


class PassesEngine(bpy.types.RenderEngine):
    """A render engine that renders nothing: it loads a finished render's passes from a multilayer
    EXR (:data:`_engine_sources`), so that Blender composites the scene's tree again as it does
    after a render, Render Layers included."""

    bl_idname = PASSES_ENGINE
    bl_label = "Refocus Passes"
    bl_use_postprocess = True

    def render(self, depsgraph: bpy.types.Depsgraph) -> None:
        scene = depsgraph.scene
        source = _engine_sources.get(scene.name)
        r = scene.render
        w = max(1, r.resolution_x * r.resolution_percentage // 100)
        h = max(1, r.resolution_y * r.resolution_percentage // 100)
        result = self.begin_result(0, 0, w, h, layer=depsgraph.view_layer.name)
        try:
            if source is not None:
                result.load_from_file(source)
        except RuntimeError as exc:  # another size, or no such file
            self.report({"ERROR"}, f"Refocus: cannot read the passes of the last render: {exc}")
        finally:
            self.end_result(result)

    def update_render_passes(self, scene: bpy.types.Scene | None = None,
                             renderlayer: bpy.types.ViewLayer | None = None) -> None:
        source = _engine_sources.get(scene.name) if scene is not None else None
        passes = exr_passes(source).get(renderlayer.name, []) if source and os.path.isfile(source) else []
        if not any(name == "Combined" for name, _, _ in passes):
            passes = [("Combined", "RGBA", "COLOR"), *passes]
        for name, ids, kind in passes:
            self.register_pass(scene, renderlayer, name, len(ids), ids, kind)


@contextlib.contextmanager
def _from_file(scene: bpy.types.Scene, source: Path) -> Iterator[None]:
    """``scene`` renders with :class:`PassesEngine`, loading ``source``, for the block.

    The engine is registered only for the block, so that it never shows among the artist's
    render engines."""
    from .busy import busy

    registered = _engine_registered()
    if not registered:
        bpy.utils.register_class(PassesEngine)
    render = scene.render
    engine = render.engine
    _engine_sources[scene.name] = str(source)
    try:
        with busy():
            render.engine = PASSES_ENGINE
        yield
    finally:
        with busy():
            render.engine = engine
        _engine_sources.pop(scene.name, None)
        if not registered:
            bpy.utils.unregister_class(PassesEngine)


def _engine_registered() -> bool:
    return getattr(PassesEngine, "is_registered", False)


def recomposite(scene: bpy.types.Scene, source: Path) -> None:
    """Composite ``scene``'s tree again from ``source``, the passes of its last render, with no
    render: the Render Result (the F12 window) then shows the Refocus nodes' current results.

    The add-on's render handlers ignore it (it runs as the add-on's own edit, ``busy``).
    """
    from .busy import busy

    with _from_file(scene, source), busy(), _quiet():
        bpy.ops.render.render(write_still=False, scene=scene.name)


def register() -> None:
    pass  # the passes engine is registered only while in use (``_from_file``)


def unregister() -> None:
    if _engine_registered():
        bpy.utils.unregister_class(PassesEngine)
