"""Mono Depth: depth from a single image."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import FloatProperty

from . import contract
from .nodes import FrameContext, RefocusNode, request_update
from .errors import RefocusError


class MonoDepthNode(RefocusNode):
    """Depth from a single image (DeepLens-style normalised inverse depth). Computed by a later core op."""

    menu_order = 30
    bl_idname = "RefocusMonoDepthNode"
    bl_label = "Mono Depth"
    bl_icon = "IMAGE_ZDEPTH"
    op = "mono_depth"
    INPUTS, OUTPUTS = contract.sockets(op)

    near: FloatProperty(name="Near", default=1.0, min=0.01, unit="LENGTH", update=request_update,
                        description="Distance of the nearest point of the scene")
    far: FloatProperty(name="Far", default=20.0, min=0.02, unit="LENGTH", update=request_update,
                       description="Distance of the farthest point of the scene")

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        if not self.near < self.far:
            raise RefocusError(f"near ({self.near:g} m) must be closer than far ({self.far:g} m)")
        return {"near_m": self.near, "far_m": self.far, "device": ctx.device}

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        row = layout.row(align=True)
        row.prop(self, "near")
        row.prop(self, "far")
