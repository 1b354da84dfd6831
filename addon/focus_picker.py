"""The focus picker: click in the Image editor or the compositor's backdrop to set the focus point
of a Layered Defocus node (its eyedropper button starts it), as a focus puller points at a subject.

The point is stored as the node's ``focus_point`` (0..1 from the bottom-left, as Blender's own
image coordinates run) with Focus on Point on; core then focuses on the median depth around it.
The mapping from a click to image coordinates is plain arithmetic (:func:`backdrop_point`,
:func:`clamp_point`), so it is tested without a window.
"""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty, StringProperty

FOCUS_NODE = "RefocusLayeredDefocusNode"


def clamp_point(x: float, y: float) -> tuple[float, float] | None:
    """``(x, y)`` if it lies in the image (0..1 both), else ``None`` (a click beside the image)."""
    return (x, y) if 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 else None


def backdrop_point(mouse: tuple[float, float], region_size: tuple[int, int], image_size: tuple[int, int],
                   zoom: float, offset: tuple[float, float]) -> tuple[float, float] | None:
    """The image point (0..1 from the bottom-left) under ``mouse`` (region pixels) in the node
    editor's backdrop: Blender draws it centred in the region, scaled by ``zoom`` and moved by
    ``offset`` (``SpaceNodeEditor.backdrop_zoom``, ``backdrop_offset``)."""
    w, h = image_size
    if w <= 0 or h <= 0 or zoom <= 0:
        return None
    cx = region_size[0] / 2.0 + offset[0]
    cy = region_size[1] / 2.0 + offset[1]
    x = (mouse[0] - cx) / (w * zoom) + 0.5
    y = (mouse[1] - cy) / (h * zoom) + 0.5
    return clamp_point(x, y)


def _focus_node(context: bpy.types.Context, name: str) -> bpy.types.Node | None:
    tree = context.scene.compositing_node_group if context.scene is not None else None
    if tree is None:
        return None
    node = tree.nodes.get(name) if name else tree.nodes.active
    return node if node is not None and node.bl_idname == FOCUS_NODE else None


class REFOCUS_OT_pick_focus(bpy.types.Operator):
    """Click in the Image editor or the compositor backdrop to focus the Layered Defocus node there
    (Esc or right click cancels)"""

    bl_idname = "refocus.pick_focus"
    bl_label = "Pick Focus Point"
    bl_options = {"REGISTER", "UNDO"}

    node: StringProperty(name="Node", description="The Layered Defocus node (default: the active node)")
    x: FloatProperty(name="X", min=0.0, max=1.0, default=0.5, description="From the left edge, 0..1")
    y: FloatProperty(name="Y", min=0.0, max=1.0, default=0.5, description="From the bottom edge, 0..1")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and context.scene.compositing_node_group is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        node = _focus_node(context, self.node)
        if node is None:
            self.report({"ERROR"}, "select a Layered Defocus node to pick its focus point")
            return {"CANCELLED"}
        node.focus_point = (self.x, self.y)
        node.use_focus_point = True  # its update requests the recompute
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        node = _focus_node(context, self.node)
        if node is None:
            self.report({"ERROR"}, "select a Layered Defocus node to pick its focus point")
            return {"CANCELLED"}
        self.node = node.name
        context.window.cursor_modal_set("EYEDROPPER")
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set("Click the point to focus on; Esc cancels")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type in {"ESC", "RIGHTMOUSE"}:
            return self._end(context, {"CANCELLED"})
        if event.type != "LEFTMOUSE" or event.value != "PRESS":
            return {"RUNNING_MODAL"}
        point = self._point_under(context, event)
        if point is None:
            self.report({"WARNING"}, "click inside the image in an Image editor or the compositor backdrop")
            return {"RUNNING_MODAL"}
        self.x, self.y = point
        self.execute(context)
        return self._end(context, {"FINISHED"})

    def _end(self, context: bpy.types.Context, result: set[str]) -> set[str]:
        context.window.cursor_modal_restore()
        context.workspace.status_text_set(None)
        return result

    @staticmethod
    def _point_under(context: bpy.types.Context, event: bpy.types.Event) -> tuple[float, float] | None:
        for area in context.screen.areas:
            if not (area.x <= event.mouse_x < area.x + area.width and area.y <= event.mouse_y < area.y + area.height):
                continue
            region = next((r for r in area.regions if r.type == "WINDOW"), None)
            if region is None:
                return None
            mx, my = event.mouse_x - region.x, event.mouse_y - region.y
            space = area.spaces.active
            if area.type == "IMAGE_EDITOR" and space.image is not None:
                return clamp_point(*region.view2d.region_to_view(mx, my))
            if area.type == "NODE_EDITOR" and getattr(space, "show_backdrop", False):
                viewer = bpy.data.images.get("Viewer Node")
                if viewer is None:
                    return None
                return backdrop_point((mx, my), (region.width, region.height), tuple(viewer.size),
                                      space.backdrop_zoom, tuple(space.backdrop_offset))
        return None


CLASSES = (REFOCUS_OT_pick_focus,)
