"""Focal Stack Depth: depth and an all-in-focus image from a focal stack (core.focal_stack)."""

from __future__ import annotations

import math
from typing import Any

import bpy
from bpy.props import IntProperty, StringProperty

from .nodes import FrameContext, LensProperties, RefocusNode, Socket, request_update
from .errors import RefocusError


class FocalStackDepthNode(LensProperties, RefocusNode):
    """Depth and an all-in-focus image from a focal stack (DefocusNet). Computed by a later core op.

    The stack is ``slices`` consecutive frames of the Image input, ending at the current frame, with
    focus distances listed in ``focus_distances``.
    """

    bl_idname = "RefocusFocalStackDepthNode"
    bl_label = "Focal Stack Depth"
    bl_icon = "RENDERLAYERS"
    op = "focal_stack_depth"
    INPUTS = (Socket("Image", "color", "The focal stack: one slice per frame, scene-linear"),)
    OUTPUTS = (Socket("Depth", "value", "Planar depth, metres"),
               Socket("All in Focus", "color", "All-in-focus image, scene-linear", passthrough="Image"))

    slices: IntProperty(name="Slices", default=5, min=2, max=64, update=request_update,
                        description="Frames that make up one focal stack")
    focus_distances: StringProperty(name="Focus Distances", default="0.5, 1, 2, 4, 8", update=request_update,
                                    description="Focus distance of each slice in metres, comma separated")

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        try:
            distances = [float(v) for v in self.focus_distances.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise RefocusError(f"focus distances must be numbers in metres, got '{self.focus_distances}'") from None
        if len(distances) != self.slices or not all(d > 0 and math.isfinite(d) for d in distances):
            raise RefocusError(f"give {self.slices} positive focus distances (one per slice)")
        return {"lens": self.lens(ctx), "focus_distances": distances, "device": ctx.device}

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        layout.prop(self, "slices")
        layout.prop(self, "focus_distances", text="")
        self.draw_lens(layout, focus=False)
