"""Blender's own compositor Defocus node, run headless through bpy on an image and its depth.

This is the peer Refocus is measured against. The node (Blender 5.0) takes the focal length,
sensor size and fit and the focus distance from its scene's active camera; the f-stop, the maximum
blur and the bokeh shape are properties of the node itself. With ``use_zbuffer`` it computes the
circle of confusion from the Z input with the thin-lens formula of Potmesil and Chakravarty (sensor
at the focused image distance, i.e. with focus breathing), clamps the radius to ``blur_max`` and
gathers with a bokeh-shaped kernel.

Pixels reach the compositor as float Image data-blocks filled from numpy, and leave it through the
only door headless Blender has: the written render (a compositor tree with no Render Layers node
skips rendering the scene). Everything lives in a scratch scene that is removed afterwards, so the
caller's scene is untouched.

Usage::

    out = defocus_node(image, depth, Lens(50, 2.0, focus_distance=3.0))   # (H, W, 3) linear

or, to time the node alone::

    with BlenderDefocus(width, height) as node:
        out = node(image, depth, lens)
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np
import torch

from core.imageio import read_image
from core.optics import Lens, circle_of_confusion

from .scene import apply_lens, quiet

_BOKEH = {0: "CIRCLE", 3: "TRIANGLE", 4: "SQUARE", 5: "PENTAGON", 6: "HEXAGON", 7: "HEPTAGON", 8: "OCTAGON"}


def blender_coc_radius(depth: np.ndarray | float, lens: Lens, width: int, height: int) -> np.ndarray | float:
    """CoC *radius* in pixels as the Defocus node computes it (unclamped), for depth in metres.

    Potmesil's thin lens with the sensor at the image of the focus plane: the Eq. 1 diameter
    f^2 |D - F| / (N D (F - f)), which is F / (F - f) times what Cycles' camera renders.
    """
    # The node's pixels per metre follow its own sensor-fit rule, which for AUTO and landscape
    # frames is the same width-based one as Blender's camera (and core's).
    f_px = lens.focal_length_pixels(width, height)
    d = torch.as_tensor(np.asarray(depth, dtype=np.float64))
    coc = circle_of_confusion(d, lens.focus_distance, lens.f_stop, lens.focal_length_mm, f_px, breathing=True)
    radius = 0.5 * coc.abs().numpy()
    return float(radius) if np.ndim(depth) == 0 else radius


def fitted_blur_max(depth: np.ndarray, lens: Lens) -> float:
    """``blur_max`` just above the largest CoC radius the node will meet in ``depth``: no clamping,
    and no wider search than needed (the node's cost grows with the square of it)."""
    h, w = depth.shape
    largest = float(np.max(blender_coc_radius(depth, lens, w, h)))
    return float(math.ceil(largest) + 1)


class BlenderDefocus:
    """A scratch scene with Image -> Defocus -> output, reused across calls of one size.

    Call it with an (H, W, 3|4) scene-linear image, an (H, W) depth in metres and a lens; it
    returns the node's (H, W, 3) scene-linear result. ``seconds`` holds the wall time of the
    last compositing run (upload, node, EXR write), excluding the read-back.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.seconds = 0.0
        self._tmp = tempfile.TemporaryDirectory(prefix="refocus-defocus-node-")
        self.scene = bpy.data.scenes.new("RefocusDefocusNode")
        s = self.scene
        s.render.resolution_x, s.render.resolution_y, s.render.resolution_percentage = width, height, 100
        s.render.pixel_aspect_x = s.render.pixel_aspect_y = 1.0
        s.render.use_compositing = True
        s.render.use_file_extension = False
        settings = s.render.image_settings
        settings.file_format, settings.color_depth, settings.color_mode = "OPEN_EXR", "32", "RGBA"
        s.view_settings.view_transform = "Standard"
        self.camera = bpy.data.objects.new("RefocusDefocusCamera", bpy.data.cameras.new("RefocusDefocusCamera"))
        s.collection.objects.link(self.camera)
        s.camera = self.camera
        self.colour = bpy.data.images.new("RefocusDefocusColour", width, height, alpha=True, float_buffer=True)
        self.depth = bpy.data.images.new("RefocusDefocusDepth", width, height, alpha=True, float_buffer=True)
        self.tree = bpy.data.node_groups.new("RefocusDefocusTree", "CompositorNodeTree")
        self.tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        nodes, links = self.tree.nodes, self.tree.links
        colour_in, depth_in = nodes.new("CompositorNodeImage"), nodes.new("CompositorNodeImage")
        colour_in.image, depth_in.image = self.colour, self.depth
        self.node = nodes.new("CompositorNodeDefocus")
        self.node.scene = s
        self.node.use_zbuffer = True
        output = nodes.new("NodeGroupOutput")
        links.new(colour_in.outputs["Image"], self.node.inputs["Image"])
        # Depth travels as grey RGB; the implicit colour-to-float conversion gives it back.
        links.new(depth_in.outputs["Image"], self.node.inputs["Z"])
        links.new(self.node.outputs["Image"], output.inputs[0])
        s.compositing_node_group = self.tree

    def __call__(self, image: np.ndarray, depth: np.ndarray, lens: Lens, blur_max: float | None = None) -> np.ndarray:
        h, w = self.height, self.width
        if image.shape[:2] != (h, w) or depth.shape != (h, w):
            raise ValueError(f"expected {w}x{h} inputs, got image {image.shape} and depth {depth.shape}")
        apply_lens(self.camera, lens, dof=True)
        self.node.f_stop = lens.f_stop
        self.node.blur_max = fitted_blur_max(depth, lens) if blur_max is None else blur_max
        self.node.bokeh = _BOKEH.get(lens.blades, "CIRCLE")
        self.node.angle = lens.rotation
        rgba = np.ones((h, w, 4), np.float32)
        rgba[..., :3] = image[..., :3]
        grey = np.repeat(depth.astype(np.float32)[..., None], 4, axis=2)
        grey[..., 3] = 1.0
        target = Path(self._tmp.name) / "defocus.exr"
        start = time.perf_counter()
        _upload(self.colour, rgba)
        _upload(self.depth, grey)
        self.scene.render.filepath = str(target)
        with quiet():
            bpy.ops.render.render(write_still=True, scene=self.scene.name)
        self.seconds = time.perf_counter() - start
        return np.ascontiguousarray(read_image(target)[..., :3])

    def close(self) -> None:
        """Remove the scratch scene and its data-blocks."""
        if self.scene is None:
            return
        camera_data = self.camera.data
        bpy.data.scenes.remove(self.scene)
        bpy.data.objects.remove(self.camera)
        bpy.data.cameras.remove(camera_data)
        bpy.data.node_groups.remove(self.tree)
        bpy.data.images.remove(self.colour)
        bpy.data.images.remove(self.depth)
        self.scene = None
        self._tmp.cleanup()

    def __enter__(self) -> "BlenderDefocus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _upload(image: bpy.types.Image, pixels: np.ndarray) -> None:
    """(H, W, 4) top-row-first float pixels into a Blender image (bottom row first)."""
    image.pixels.foreach_set(np.ascontiguousarray(pixels[::-1], dtype=np.float32).ravel())
    image.update()


def defocus_node(image: np.ndarray, depth: np.ndarray, lens: Lens, blur_max: float | None = None) -> np.ndarray:
    """Blender's Defocus node (use_zbuffer) on ``image`` (H, W, 3|4) scene-linear and ``depth`` (H, W) metres.

    The node sees ``lens`` as its scene camera (focal length, sensor, focus distance) and node
    settings (f-stop, aperture blades and rotation; it has no anamorphic ratio). ``blur_max``
    defaults to just above the largest CoC radius (:func:`fitted_blur_max`).

    Returns:
        (H, W, 3) scene-linear result.
    """
    h, w = depth.shape
    with BlenderDefocus(w, h) as node:
        return node(image, depth, lens, blur_max)
