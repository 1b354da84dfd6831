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
                      paths: dict[str, Path]) -> None:
        """Render ``scene`` at ``frame``, all in focus, and write each used pass to ``paths[use.key]``."""
        helper = self.helper(scene)
        helper.frame_current = frame
        folder = self.folder(f"export-{scene.name}-{frame}")
        tree, folders = graph.pass_export_tree(uses, helper, folder)
        try:
            helper.compositing_node_group = tree
            helper.render.use_compositing = True
            helper.render.use_file_extension = True  # File Output nodes follow it too
            with _quiet(), _pinhole(helper):
                bpy.ops.render.render(write_still=False, scene=helper.name)
            for use in uses:
                written = written_file(folders[use.key])
                if written is None:
                    raise RefocusError(f"rendering scene '{scene.name}' gave no {use.socket} pass")
                os.replace(written, paths[use.key])
        finally:
            remove_tree(tree)
            shutil.rmtree(folder, ignore_errors=True)

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

    def close(self) -> None:
        for helper in self.helpers.values():
            with contextlib.suppress(ReferenceError):
                bpy.data.scenes.remove(helper)
        self.helpers.clear()
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

    def __init__(self, scratch: "Scratch", tree: bpy.types.NodeTree, uses: list[graph.PassUse]) -> None:
        self.scratch, self.uses = scratch, uses
        folder = scratch.folder("passes")
        self.paths = {use.key: folder / f"{_safe(use.key)}.exr" for use in uses}
        self.images: dict[str, bpy.types.Image] = {}
        for use in uses:
            image = bpy.data.images.new(f".Refocus pass {use.key}", 4, 4, alpha=True, float_buffer=True)
            image.source = "FILE"
            image.filepath = str(self.paths[use.key])
            image.colorspace_settings.is_data = use.kind != "color"  # depth, vectors: numbers, not colours
            self.images[use.key] = image
        self.tree = graph.with_pass_images(tree, self.images, uses)

    def render(self, frame: int) -> None:
        by_scene: dict[str, list[graph.PassUse]] = {}
        for use in self.uses:
            by_scene.setdefault(use.scene, []).append(use)
        for name, uses in by_scene.items():
            scene = bpy.data.scenes.get(name)
            if scene is None:
                raise RefocusError(f"Render Layers render scene '{name}', which no longer exists")
            self.scratch.export_passes(scene, frame, uses, self.paths)
        for image in self.images.values():
            image.reload()

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
