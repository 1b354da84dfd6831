"""Operators: update the Refocus nodes now, cancel them, render with them from the interface."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty

from . import interactive


class REFOCUS_OT_update(bpy.types.Operator):
    """Recompute the Refocus nodes of this scene's compositor at the current frame, rendering the
    scene's passes first if Render Layers feed them"""

    bl_idname = "refocus.update"
    bl_label = "Update Refocus Nodes"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        interactive.request_update(context.scene, render_passes=True)
        return {"FINISHED"}


class REFOCUS_OT_cancel(bpy.types.Operator):
    """Stop the Refocus computation under way (the nodes pass their inputs through)"""

    bl_idname = "refocus.cancel"
    bl_label = "Cancel Refocus"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        interactive.cancel()
        return {"FINISHED"}


class REFOCUS_OT_render(bpy.types.Operator):
    """Render on Blender's main thread, so that every Refocus node is computed before each frame is
    composited and written. F12 stills get their Refocus nodes after the render, from its own passes;
    an animation rendered in a thread (Ctrl+F12) cannot, so render animations with this. Blocks until done"""

    bl_idname = "refocus.render"
    bl_label = "Render with Refocus"
    bl_options = {"REGISTER"}

    animation: BoolProperty(name="Animation", default=False, description="Render the frame range")

    def execute(self, context: bpy.types.Context) -> set[str]:
        bpy.ops.render.render("EXEC_DEFAULT", animation=self.animation, write_still=not self.animation)
        return {"FINISHED"}


CLASSES = (REFOCUS_OT_update, REFOCUS_OT_cancel, REFOCUS_OT_render)
