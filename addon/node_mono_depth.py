"""Mono Depth: depth from a single image (core.pipelines.mono_depth), with the built-in network or an ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from . import camera, contract
from .errors import RefocusError
from .nodes import FrameContext, RefocusNode, request_update

MODELS = (("BUILTIN", "Built-in", "The shipped DeepLens-style network (models/weights/mono_deeplens.pt)"),
          ("FILE", "File", "An ONNX depth model (Depth Anything V2, MiDaS, ...) or a .pt file of the built-in "
                           "network; nothing is downloaded"))
SCALES = (("NEAR_FAR", "Near / Far", "The nearest point is at Near and the farthest at Far, linear in inverse depth"),
          ("FOCUS_OBJECT", "Fit to Focus Object",
           "The scene camera's focus object is at its planar distance, the farthest point at Far"))
NORMALISATIONS = (("IMAGENET", "ImageNet", "Mean and standard deviation of ImageNet (Depth Anything, MiDaS)"),
                  ("UNIT", "0..1", "sRGB values in 0..1 as they are"))
MODEL_OUTPUTS = (("INVERSE_DEPTH", "Inverse Depth", "Larger is nearer (relative disparity: Depth Anything, MiDaS)"),
                 ("DEPTH", "Depth", "Larger is farther"))


class MonoDepthNode(RefocusNode):
    """Depth from a single image (the worker's ``mono_depth`` op).

    Equals ``python -m core mono-depth --image IMG --output DEPTH --near N --far F --inverse-depth INV``
    on the pixels linked to Image, with the node's model and processing size. Inverse Depth is
    DeepLens' normalised inverse depth (1 = nearest, 0 = farthest); Depth is planar metres, from
    Near and Far, or fitted so that the scene camera's focus object lands at its planar distance
    (where it appears in the frame) with the farthest point at Far. Depth feeds Layered Defocus.
    """

    menu_order = 30
    bl_idname = "RefocusMonoDepthNode"
    bl_label = "Mono Depth"
    bl_icon = "IMAGE_ZDEPTH"
    op = "mono_depth"
    INPUTS, OUTPUTS = contract.sockets(op)

    model: EnumProperty(name="Model", items=MODELS, default="BUILTIN", update=request_update)
    model_file: StringProperty(name="Model File", subtype="FILE_PATH", update=request_update,
                               description="The .onnx depth model (or .pt weights of the built-in network)")
    normalisation: EnumProperty(name="Normalisation", items=NORMALISATIONS, default="IMAGENET",
                                update=request_update, description="How the ONNX model wants its input")
    model_output: EnumProperty(name="Output", items=MODEL_OUTPUTS, default="INVERSE_DEPTH", update=request_update,
                               description="What the ONNX model returns")
    size_multiple: IntProperty(name="Multiple", default=14, min=1, max=256, update=request_update,
                               description="The ONNX model's sides must be multiples of this (14 for ViT models)")
    size: IntProperty(name="Processing Size", default=0, min=0, max=4096, update=request_update,
                      description="Longer side the model runs at, pixels (0: the model's own, 518 for ONNX); "
                                  "the result is upsampled to the image along its edges")
    scale: EnumProperty(name="Scale", items=SCALES, default="NEAR_FAR", update=request_update)
    near: FloatProperty(name="Near", default=1.0, min=0.01, unit="LENGTH", update=request_update,
                        description="Distance of the nearest point of the scene")
    far: FloatProperty(name="Far", default=20.0, min=0.02, unit="LENGTH", update=request_update,
                       description="Distance of the farthest point of the scene")

    def model_path(self) -> str:
        if self.model == "BUILTIN":
            return "builtin"
        if not self.model_file.strip():
            raise RefocusError("choose a model file (.onnx or .pt), or the built-in model")
        return str(Path(bpy.path.abspath(self.model_file)))

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        path = self.model_path()
        params: dict[str, Any] = {"model": path, "size_px": self.size or None, "device": ctx.device}
        if path.lower().endswith(".onnx"):
            params.update(normalisation=self.normalisation.lower(), model_output=self.model_output.lower(),
                          size_multiple_px=self.size_multiple)
        if self.scale == "NEAR_FAR":
            if not self.near < self.far:
                raise RefocusError(f"near ({self.near:g} m) must be closer than far ({self.far:g} m)")
            params.update(near_m=self.near, far_m=self.far)
        else:
            point, distance = focus_object_in_frame(ctx)
            if not distance < self.far:
                raise RefocusError(f"the focus object ({distance:.3g} m) must be nearer than far ({self.far:g} m)")
            params.update(focus_point=point, focus_distance_m=distance, far_m=self.far)
        return params

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        layout.prop(self, "model", text="")
        if self.model == "FILE":
            layout.prop(self, "model_file", text="")
            if self.model_file.lower().endswith(".onnx"):
                col = layout.column(align=True)
                col.prop(self, "normalisation", text="")
                col.prop(self, "model_output", text="")
                col.prop(self, "size_multiple")
        layout.prop(self, "size")
        layout.prop(self, "scale", text="")
        row = layout.row(align=True)
        if self.scale == "NEAR_FAR":
            row.prop(self, "near")
        row.prop(self, "far")


def focus_object_in_frame(ctx: FrameContext) -> tuple[list[float], float]:
    """Where the scene camera's focus object appears (x, y in 0..1 of the frame from the top-left)
    and its planar distance in metres, at the frame; :class:`RefocusError` when it cannot be used."""
    from bpy_extras.object_utils import world_to_camera_view

    cam, _ = camera.active_camera(ctx.scene, ctx.depsgraph, "a fit to the focus object", "choose Near / Far")
    point = camera.focus_target(cam, ctx.depsgraph)
    if point is None:
        raise RefocusError(f"camera '{cam.name}' has no focus object; set one in its depth-of-field properties or "
                           "choose Near / Far")
    x, y, z = world_to_camera_view(ctx.scene, cam.evaluated_get(ctx.depsgraph), point)
    if z <= 0.0 or not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise RefocusError(f"the focus object '{cam.data.dof.focus_object.name}' is outside camera "
                           f"'{cam.name}''s view at frame {ctx.frame}")
    return [float(x), float(1.0 - y)], camera.focus_distance(cam, ctx.depsgraph)  # the worker counts from the top
