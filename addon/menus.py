"""Add > Refocus in the compositor's node editor, and Render > Render with Refocus."""

from __future__ import annotations

import bpy

from .node_types import NODE_CLASSES


class NODE_MT_refocus(bpy.types.Menu):
    bl_idname = "NODE_MT_refocus"
    bl_label = "Refocus"

    def draw(self, context: bpy.types.Context) -> None:
        for cls in NODE_CLASSES:
            reason = cls.unavailable_reason()
            row = self.layout.row()
            row.enabled = not reason  # greyed, and the reason beside it: never a node that computes nothing
            op = row.operator("node.add_node", text=cls.bl_label + (" (unavailable)" if reason else ""),
                              icon=cls.bl_icon)
            op.type = cls.bl_idname
            op.use_transform = True
            if reason:
                self.layout.label(text=reason, icon="INFO")


def _draw_add(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    space = context.space_data
    if space is None or getattr(space, "tree_type", "") == "CompositorNodeTree":
        self.layout.separator()
        self.layout.menu(NODE_MT_refocus.bl_idname, icon="CAMERA_DATA")


def _draw_render(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.separator()
    self.layout.operator("refocus.render", text="Render Image with Refocus", icon="RENDER_STILL").animation = False
    self.layout.operator("refocus.render", text="Render Animation with Refocus",
                         icon="RENDER_ANIMATION").animation = True


MENU_HOOKS = ((bpy.types.NODE_MT_compositor_node_add_all, _draw_add), (bpy.types.TOPBAR_MT_render, _draw_render))
CLASSES = (NODE_MT_refocus,)


def register() -> None:
    for menu, draw in MENU_HOOKS:
        menu.append(draw)


def unregister() -> None:
    for menu, draw in MENU_HOOKS:
        menu.remove(draw)
