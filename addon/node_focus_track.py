"""Focus Track: a focus distance that follows a tracked box."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import FloatVectorProperty, IntProperty

from . import contract
from .nodes import FrameContext, RefocusNode, request_update
from .errors import RefocusError


class FocusTrackNode(RefocusNode):
    """A focus distance that follows a tracked box (SteReFo's focus tracking). Computed by a later core op."""

    menu_order = 50
    bl_idname = "RefocusFocusTrackNode"
    bl_label = "Focus Track"
    bl_icon = "TRACKER"
    op = "focus_track"
    INPUTS, OUTPUTS = contract.sockets(op)

    box: FloatVectorProperty(name="Box", size=4, default=(0.4, 0.4, 0.6, 0.6), min=0.0, max=1.0,
                             update=request_update,
                             description="Box to follow at the start frame: left, bottom, right, top (0..1)")
    start_frame: IntProperty(name="Start Frame", default=1, update=request_update,
                             description="Frame where the box is placed")

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        x0, y0, x1, y1 = self.box
        if not (x1 > x0 and y1 > y0):
            raise RefocusError("the box must have right > left and top > bottom")
        return {"box": [x0, 1.0 - y1, x1, 1.0 - y0], "start_frame": self.start_frame, "frame": ctx.frame,
                "device": ctx.device}

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        layout.prop(self, "box")
        layout.prop(self, "start_frame")
