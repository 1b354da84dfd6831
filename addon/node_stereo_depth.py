"""Stereo Depth: depth and disparity from a rectified stereo pair (core.stereo)."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import FloatProperty, IntProperty

from .nodes import FrameContext, LensProperties, RefocusNode, Socket, request_update


class StereoDepthNode(LensProperties, RefocusNode):
    """Depth from a rectified stereo pair (SteReFo's stereo network). Computed by a later core op."""

    bl_idname = "RefocusStereoDepthNode"
    bl_label = "Stereo Depth"
    bl_icon = "CAMERA_STEREO"
    op = "stereo_depth"
    INPUTS = (Socket("Left", "color", "Left view, scene-linear"), Socket("Right", "color", "Right view, rectified"))
    OUTPUTS = (Socket("Depth", "value", "Planar depth of the left view, metres"),
               Socket("Disparity", "value", "Disparity of the left view, pixels"))

    baseline: FloatProperty(name="Baseline", default=0.065, min=0.001, soft_max=1.0, unit="LENGTH",
                            update=request_update, description="Distance between the two cameras")
    max_disparity: IntProperty(name="Max Disparity", default=192, min=8, max=1024, update=request_update,
                               description="Largest disparity searched, pixels")

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        return {"lens": self.lens(ctx), "pixel_aspect": ctx.pixel_aspect, "baseline_m": self.baseline,
                "max_disparity": self.max_disparity, "device": ctx.device}

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        layout.prop(self, "baseline")
        layout.prop(self, "max_disparity")
        self.draw_lens(layout, focus=False)
