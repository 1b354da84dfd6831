"""Layered Defocus: shallow depth of field from an image and its depth (core.pipelines.defocus)."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty

from . import contract
from .nodes import FrameContext, LensProperties, RefocusNode, request_update


DEPTH_TYPES = (
    ("METRES", "Metres", "Planar depth in metres (Blender's Z pass)"),
    ("NORMALISED", "Normalised", "0..1 between Near (0) and Far (1), as a Normalize node gives"),
    ("INVERSE", "Inverse Depth", "Normalised inverse depth, 1 at Near and 0 at Far (Mono Depth, DeepLens)"),
    ("DISPARITY", "Disparity", "Stereo disparity in pixels, with the stereo Baseline and the lens's focal length"),
)


class LayeredDefocusNode(LensProperties, RefocusNode):
    """Shallow depth of field from an all-in-focus image and its depth (SteReFo's layered defocus)."""

    menu_order = 10
    bl_idname = "RefocusLayeredDefocusNode"
    bl_label = "Layered Defocus"
    bl_icon = "CAMERA_DATA"
    op = "layered_defocus"
    INPUTS, OUTPUTS = contract.sockets(op)

    use_focus_point: BoolProperty(name="Focus on Point", default=False, update=request_update,
                                  description="Focus on the depth found at a point of the frame instead")
    focus_point: FloatVectorProperty(name="Point", size=2, default=(0.5, 0.5), min=0.0, max=1.0,
                                     subtype="XYZ", update=request_update,
                                     description="Point to focus on, from the bottom-left corner (0..1)")
    k_max: IntProperty(name="Kernel Max", default=15, min=5, max=101, update=request_update,
                       description="Largest blur kernel in pixels before a layer is blurred at a lower "
                                   "resolution: higher is slower and more exact")
    step: FloatProperty(name="Layer Step", default=1.0, min=0.1, max=8.0, update=request_update,
                        description="Spacing of the depth layers in pixels of blur: lower is slower and smoother")

    depth_type: EnumProperty(name="Depth", items=DEPTH_TYPES, default="METRES", update=request_update,
                             description="What the Depth input holds")
    near: FloatProperty(name="Near", default=1.0, min=0.001, unit="LENGTH", update=request_update,
                        description="Distance of depth 0 (Normalised) or inverse depth 1 (Inverse Depth)")
    far: FloatProperty(name="Far", default=20.0, min=0.002, unit="LENGTH", update=request_update,
                       description="Distance of depth 1 (Normalised) or inverse depth 0 (Inverse Depth)")
    baseline: FloatProperty(name="Baseline", default=0.065, min=0.0001, unit="LENGTH", update=request_update,
                            description="Stereo baseline of a Disparity depth")

    def depth_parameters(self) -> dict[str, Any]:
        kind = {"METRES": "metres", "NORMALISED": "normalised", "INVERSE": "inverse",
                "DISPARITY": "disparity"}[self.depth_type]
        params: dict[str, Any] = {"depth_type": kind}
        if kind in ("normalised", "inverse"):
            params.update(near_m=self.near, far_m=self.far)
        elif kind == "disparity":
            params["baseline_m"] = self.baseline
        return params

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        params: dict[str, Any] = {**self.lens(ctx), "pixel_aspect": ctx.pixel_aspect, "k_max": self.k_max,
                                  "step_px": self.step, "device": ctx.device, **self.depth_parameters()}
        if self.use_focus_point:
            params["focus_point"] = [self.focus_point[0], 1.0 - self.focus_point[1]]  # worker: from the top
        return params

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        self.draw_lens(layout)
        row = layout.row(align=True)
        row.prop(self, "use_focus_point")
        row.operator("refocus.pick_focus", text="", icon="EYEDROPPER").node = self.name
        if self.use_focus_point:
            layout.prop(self, "focus_point", text="")
        layout.prop(self, "depth_type")
        if self.depth_type in ("NORMALISED", "INVERSE"):
            row = layout.row(align=True)
            row.prop(self, "near")
            row.prop(self, "far")
        elif self.depth_type == "DISPARITY":
            layout.prop(self, "baseline")
        row = layout.row(align=True)
        row.prop(self, "k_max")
        row.prop(self, "step")
