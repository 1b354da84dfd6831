"""Focal Stack Depth: depth, an all-in-focus image and confidence from a focal stack (core.focal_stack)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .camera import active_camera
from .errors import RefocusError
from . import contract
from .nodes import FrameContext, RefocusNode, request_update

MAX_SLICES = 8
METHODS = (("CLASSICAL", "Classical", "Depth from focus: a focus measure per slice, sub-slice fit, guided filter"),
           ("LEARNED", "Learned", "FocalStackNet with the shipped weights (models/weights/dff_guided.pt)"))
FOCUS_SOURCES = (("LIST", "List", "Focus distances typed in the node, metres, comma separated"),
                 ("FILE", "File", "A text file of focus distances, metres, one per line (or comma separated)"),
                 ("CAMERA", "Camera", "The scene camera's focus distance at the frame each slice's Image node shows "
                                      "(a focus sweep rendered from this scene)"))
ALIGNMENTS = (
    ("AUTO", "Auto", "Undo focus breathing from the focal length and focus distances, then the residual shift"),
    ("NONE", "None", "The slices are already aligned (a tripod and a lens without breathing, or a render)"),
    ("BREATHING", "Breathing", "Undo focus breathing only"),
    ("TRANSLATION", "Translation", "Breathing, then a residual shift"),
    ("AFFINE", "Affine", "Breathing, then a residual affine motion (hand-held)"),
    ("HOMOGRAPHY", "Homography", "Breathing, then a residual homography (hand-held, wide angle)"),
)


def _update_slices(self: "FocalStackDepthNode", context: bpy.types.Context) -> None:
    self.show_slice_sockets()
    request_update(self, context)


class FocalStackDepthNode(RefocusNode):
    """Depth and an all-in-focus image from a focal stack (the worker's ``focal_stack_depth`` op).

    Design: one image input per slice. The node has up to eight Slice inputs; Slices sets how many
    show. The stack is the linked Slice inputs in order (Slice 1, Slice 2, ...: no gaps), each its
    own source (an Image node per file, a Render Layers of a scene per focus, any chain of nodes).
    A focus sweep stored as a sequence or movie feeds the slices through one Image or Movie Clip
    node per slice, each with its frame offset, because the compositor composites one frame at a
    time and a node sees its inputs at the current frame only.

    Focus distances are metres, one per linked slice, in the same order: typed in the node (comma
    separated), read from a text file (numbers separated by commas or new lines, ``#`` starts a
    comment; ``inf`` for a lens focused at infinity), or taken from the scene camera (Camera): each
    slice's Image node (an image sequence or movie) shows some frame of the sweep at the current
    scene frame, and that frame's focus distance is the camera's ``dof.focus_distance`` there,
    keyframed or constant. Sequences count their file numbers as scene frames, movies their first
    frame as the scene's start frame, as Blender's own render output numbers them. Without any, the classical method gives depth
    as a fractional slice index. The focal length (the scene camera's or the node's) lets the
    worker undo focus breathing (Align Auto).

    Equals ``python -m core focal-stack-depth --stack S1 S2 ... --focus-distances D1 D2 ...
    --focal-length F --depth D --aif A --confidence C`` on the pixels linked to the slices, with
    the node's method and alignment. The learned method needs FocalStackNet weights in
    models/weights; without them the node says which file is missing.
    """

    menu_order = 40
    bl_idname = "RefocusFocalStackDepthNode"
    bl_label = "Focal Stack Depth"
    bl_icon = "RENDERLAYERS"
    op = "focal_stack_depth"
    INPUTS, OUTPUTS = contract.sockets(op)

    method: EnumProperty(name="Method", items=METHODS, default="CLASSICAL", update=request_update)
    slices: IntProperty(name="Slices", default=5, min=2, max=MAX_SLICES, update=_update_slices,
                        description="Slice inputs shown (linked ones always show)")
    focus_source: EnumProperty(name="Focus Distances", items=FOCUS_SOURCES, default="LIST", update=request_update)
    focus_distances: StringProperty(name="Focus Distances", default="0.5, 1, 2, 4, 8", update=request_update,
                                    description="Focus distance of each slice in metres, comma separated, in "
                                                "slice order")
    focus_file: StringProperty(name="Focus File", subtype="FILE_PATH", update=request_update,
                               description="Text file of focus distances in metres, one per slice, in order")
    use_scene_camera: BoolProperty(name="Use Scene Camera", default=True, update=request_update,
                                   description="Take the focal length from the scene's active camera at each frame")
    focal_length: FloatProperty(name="Focal Length", default=50.0, min=0.1, soft_max=300.0, unit="CAMERA",
                                update=request_update,
                                description="Lens focal length, millimetres: sets how much focus breathing "
                                            "to undo")
    align: EnumProperty(name="Align", items=ALIGNMENTS, default="AUTO", update=request_update)

    def init(self, context: bpy.types.Context) -> None:
        super().init(context)
        self.show_slice_sockets()

    def show_slice_sockets(self) -> None:
        """Show the first ``slices`` Slice inputs and hide the others (Blender keeps linked ones shown)."""
        for k, socket in enumerate(self.inputs):
            socket.hide = k >= self.slices and not socket.is_linked

    def distances(self, ctx: FrameContext) -> list[float] | None:
        """The focus distances in metres, in slice order; ``None`` when none are given."""
        if self.focus_source == "CAMERA":
            return self.camera_distances(ctx)
        if self.focus_source == "FILE":
            if not self.focus_file.strip():
                raise RefocusError("choose a focus distance file, or type the distances (Focus Distances: List)")
            path = Path(bpy.path.abspath(self.focus_file))
            if not path.is_file():
                raise RefocusError(f"focus distance file not found: {path}")
            return parse_distances(path.read_text(encoding="utf-8"), str(path)) or None
        return parse_distances(self.focus_distances, "Focus Distances") or None

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        linked = [k for k, socket in enumerate(self.inputs) if socket.is_linked]
        if linked and linked[-1] + 1 != len(linked):
            gap = next(k for k in range(len(linked)) if k not in linked)
            raise RefocusError(f"Slice {gap + 1} is not connected but Slice {linked[-1] + 1} is; connect the slices "
                               "in order, from Slice 1")
        if self.use_scene_camera:
            focal_length = float(active_camera(ctx.scene, ctx.depsgraph, "the focal length")[1].lens)
        else:
            focal_length = self.focal_length
        return {"method": self.method.lower(), "focus_distances_m": self.distances(ctx),
                "focal_length_mm": focal_length, "align": self.align.lower(), "device": ctx.device}

    def camera_distances(self, ctx: FrameContext) -> list[float]:
        """The scene camera's focus distance at the frame each linked slice shows (class doc)."""
        camera, _ = active_camera(ctx.scene, ctx.depsgraph, "Focus Distances 'Camera'",
                                  "choose another source of focus distances")
        if camera.data.dof.focus_object is not None:
            raise RefocusError(f"camera '{camera.name}' focuses on object '{camera.data.dof.focus_object.name}'; "
                               "Focus Distances 'Camera' reads a focus distance (clear Focus on Object)")
        out = []
        for k, socket in enumerate([x for x in self.inputs if x.is_linked]):
            source = upstream_node(socket)
            image = getattr(source, "image", None) if source.bl_idname == "CompositorNodeImage" else None
            if image is None or image.source not in {"SEQUENCE", "MOVIE"}:
                what = f"a still image ('{image.name}')" if image is not None else f"a {source.bl_label} node"
                raise RefocusError(f"Slice {k + 1} comes from {what}; Focus Distances 'Camera' needs each slice "
                                   "from an Image node showing an image sequence or movie")
            number = shown_frame(ctx.frame, source.frame_start, source.frame_duration, source.frame_offset,
                                 source.use_cyclic)
            frame = number if image.source == "SEQUENCE" else ctx.scene.frame_start + number - 1
            out.append(focus_distance_at(camera.data, frame))
        return out

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        layout.prop(self, "method", text="")
        layout.prop(self, "slices")
        layout.prop(self, "focus_source", expand=True)
        if self.focus_source != "CAMERA":
            layout.prop(self, "focus_distances" if self.focus_source == "LIST" else "focus_file", text="")
        layout.prop(self, "use_scene_camera")
        row = layout.row()
        row.enabled = not self.use_scene_camera
        row.prop(self, "focal_length")
        layout.prop(self, "align")


def parse_distances(text: str, where: str) -> list[float]:
    """Numbers in ``text`` (commas, semicolons or white space between them, ``#`` comments), metres.

    Only the syntax is checked here; the worker checks the values (positive, distinct, one per
    slice) with the messages the command line gives.
    """
    values: list[float] = []
    for line in text.splitlines():
        for word in re.split(r"[,;\s]+", line.split("#", 1)[0].strip()):
            if not word:
                continue
            try:
                values.append(float(word))
            except ValueError:
                raise RefocusError(f"{where}: focus distances must be numbers in metres, got '{word}'") from None
    return values


def upstream_node(socket: bpy.types.NodeSocket) -> bpy.types.Node:
    """The node feeding ``socket``, looking through reroutes."""
    node = socket.links[0].from_node
    while node.bl_idname == "NodeReroute" and node.inputs[0].is_linked:
        node = node.inputs[0].links[0].from_node
    return node


def shown_frame(scene_frame: int, start: int, duration: int, offset: int, cyclic: bool) -> int:
    """The frame number an Image node shows at ``scene_frame``: Blender's image-user rule (frames
    counted from ``start``, held at the ends or wrapped when ``cyclic``, then ``offset`` added)."""
    frame = scene_frame - start + 1
    if duration > 0:
        if cyclic:
            frame %= duration
            frame = frame or duration
        else:
            frame = min(max(frame, 0), duration)
    return frame + offset


def focus_distance_at(camera: bpy.types.Camera, frame: int) -> float:
    """The camera's ``dof.focus_distance`` (metres) at ``frame``: its keyframes when animated."""
    from bpy_extras import anim_utils

    anim = camera.animation_data
    if anim is not None and anim.action is not None and anim.action_slot is not None:
        bag = anim_utils.action_get_channelbag_for_slot(anim.action, anim.action_slot)
        curve = bag.fcurves.find("dof.focus_distance") if bag is not None else None
        if curve is not None:
            return float(curve.evaluate(frame))
    return float(camera.dof.focus_distance)
