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
from .node_focus_track import _DIGITS, _source, frame_file
from .nodes import FrameContext, RefocusNode, request_update

MAX_SLICES = 8
METHODS = (("CLASSICAL", "Classical", "Depth from focus: a focus measure per slice, sub-slice fit, guided filter"),
           ("PHYSICAL", "Physical", "Depth from the camera's own blur (focal length, f-stop, sensor width); in Video "
                                    "mode fused over the frames"),
           ("LEARNED", "Learned", "FocalStackNet with the shipped weights (models/weights/dff_guided.pt), trained on "
                                  "one phone-like camera"),
           ("LEARNED_CAMERA", "Learned, Any Camera", "CameraNet over the physical cost volume, for any camera "
                                                     "(focal length, f-stop, sensor width; models/weights/"
                                                     "dff_camera.pt)"))
CAMERA_METHODS = {"PHYSICAL", "LEARNED_CAMERA"}  # the methods that need the f-stop and sensor
MODES = (("STACK", "Stack", "One slice per Slice input"),
         ("VIDEO", "Video", "A focus sweep: one movie or image sequence on Slice 1, depth for the frame shown"))
FOCUS_SOURCES = (("LIST", "List", "Focus distances typed in the node, metres, comma separated"),
                 ("FILE", "File", "A text file of focus distances, metres, one per line (or comma separated); "
                                  "Video: one per frame or 'FRAME METRES' pairs (frames from 0), interpolated in "
                                  "dioptres"),
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

    Video mode: one input, Slice 1, fed by an Image node showing a movie or an image sequence, or by
    a Movie Clip node: a focus sweep. As the Focus Track node does, the node sends the whole clip by
    path (the files the source shows over its frames, or the movie) and the clip frame shown at the
    scene frame; the worker runs the video pipeline once for the clip (each frame's focus ramp, and
    for the physical method temporal fusion and Wiener all-in-focus frames) and answers every frame
    from its cache. Focus distances: one per clip frame (List), a file as ``--focus-file`` takes
    (File: one per frame, or sparse 'FRAME METRES' pairs, frames from 0), or the camera's
    ``dof.focus_distance`` at each clip frame (Camera: a sequence's file numbers are scene frames, a
    movie's frame k is the scene's start frame + k). Equals ``python -m core focal-stack-depth
    --stack F0 F1 ... (or MOVIE) --focus-file FILE --frame all`` at the frame shown.

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

    mode: EnumProperty(name="Mode", items=MODES, default="STACK", update=_update_slices)
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
    f_stop: FloatProperty(name="F-Stop", default=2.8, min=0.1, soft_max=64.0, step=10, precision=1,
                          update=request_update, description="Aperture f-number (the physical and any-camera methods)")
    sensor_width: FloatProperty(name="Sensor Width", default=36.0, min=1.0, soft_max=100.0, unit="CAMERA",
                                update=request_update, description="Sensor width, millimetres (the physical and "
                                                                   "any-camera methods)")
    align: EnumProperty(name="Align", items=ALIGNMENTS, default="AUTO", update=request_update)

    def init(self, context: bpy.types.Context) -> None:
        super().init(context)
        self.show_slice_sockets()

    def show_slice_sockets(self) -> None:
        """Show the first ``slices`` Slice inputs and hide the others (Blender keeps linked ones shown)."""
        shown = 1 if self.mode == "VIDEO" else self.slices
        for k, socket in enumerate(self.inputs):
            socket.hide = k >= shown and not socket.is_linked

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

    def lens(self, ctx: FrameContext) -> dict[str, Any]:
        """Focal length (always), f-stop and sensor width (the camera methods), the scene camera's or the node's."""
        data = active_camera(ctx.scene, ctx.depsgraph, "the focal length")[1] if self.use_scene_camera else None
        out: dict[str, Any] = {"focal_length_mm": float(data.lens) if data is not None else self.focal_length}
        if self.method in CAMERA_METHODS:
            out["f_stop"] = float(data.dof.aperture_fstop) if data is not None else self.f_stop
            out["sensor_width_mm"] = float(data.sensor_width) if data is not None else self.sensor_width
        return out

    def method_name(self) -> str:
        """The op's name of the node's method (``LEARNED_CAMERA`` is ``learned-camera``)."""
        return self.method.lower().replace("_", "-")

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        if self.mode == "VIDEO":
            return self.video_parameters(ctx)
        linked = [k for k, socket in enumerate(self.inputs) if socket.is_linked]
        if linked and linked[-1] + 1 != len(linked):
            gap = next(k for k in range(len(linked)) if k not in linked)
            raise RefocusError(f"Slice {gap + 1} is not connected but Slice {linked[-1] + 1} is; connect the slices "
                               "in order, from Slice 1")
        return {"method": self.method_name(), "focus_distances_m": self.distances(ctx), **self.lens(ctx),
                "align": self.align.lower(), "device": ctx.device}

    # ------------------------------------------------------------------------------ video mode
    def clip(self, ctx: FrameContext) -> tuple[list[str], int, list[int]]:
        """The focus sweep on Slice 1 by path: the files (or the one movie), the clip frame shown at
        the scene frame (0-based), and each clip frame's scene frame for the camera's focus (class doc)."""
        for socket in list(self.inputs)[1:]:
            if socket.is_linked:
                raise RefocusError(f"Video mode reads one clip, on Slice 1; disconnect {socket.name}")
        source = _source(self.inputs[0])
        if source is None:
            raise RefocusError("Video mode: connect Slice 1 to an Image node showing the focus sweep (a movie or "
                               "an image sequence) or to a Movie Clip node")
        node, socket = source
        if node.bl_idname == "CompositorNodeImage":
            image = node.image
            if image is None:
                raise RefocusError("Slice 1's Image node has no image")
            if image.source not in {"SEQUENCE", "MOVIE"}:
                raise RefocusError(f"Video mode needs a movie or an image sequence, but Slice 1 shows "
                                   f"{'a still image' if image.source == 'FILE' else image.source.lower()} "
                                   f"('{image.name}'); set the image's source to Image Sequence or Movie, or use "
                                   "Mode: Stack")
            if image.type == "MULTILAYER":
                raise RefocusError(f"Video mode reads one image per frame; '{image.name}' is a multilayer EXR "
                                   "(save the sweep's Combined pass as plain EXR or PNG files)")
            movie = image.source == "MOVIE"
            start, duration = node.frame_start, (image.frame_duration if movie else node.frame_duration)
        elif node.bl_idname == "CompositorNodeMovieClip":
            if node.clip is None:
                raise RefocusError("Slice 1's Movie Clip node has no clip")
            movie = node.clip.source == "MOVIE"
            start, duration = node.clip.frame_start, node.clip.frame_duration
        else:
            raise RefocusError(f"Video mode reads the clip from files, but Slice 1 comes from a {node.bl_label} "
                               "node, which gives one frame at a time; feed it from an Image node (a movie or an "
                               "image sequence) or a Movie Clip node")
        if duration < 2:
            raise RefocusError(f"the clip on Slice 1 has {duration} frame(s); a focus sweep needs at least 2 "
                               "(set the Image node's Frames)")
        shown = frame_file(node, socket, ctx.frame, "Slice 1")
        if movie:
            first_scene = ctx.scene.frame_start
            return [shown["video"]], int(shown["video_frame"]), [first_scene + k for k in range(duration)]
        paths = [frame_file(node, socket, start + k, "Slice 1")["path"] for k in range(duration)]
        if shown["path"] not in paths:
            raise RefocusError(f"at frame {ctx.frame} Slice 1 shows no frame of its clip (scene frames {start}-"
                               f"{start + duration - 1})")
        numbers = []
        for path in paths:
            match = _DIGITS.search(Path(path).name)
            numbers.append(int(match.group(1)) if match else 0)
        return paths, paths.index(shown["path"]), numbers

    def video_parameters(self, ctx: FrameContext) -> dict[str, Any]:
        stack, index, scene_frames = self.clip(ctx)
        params: dict[str, Any] = {"stack": stack, "frame": str(index), "method": self.method_name(),
                                  **self.lens(ctx), "align": self.align.lower(), "device": ctx.device}
        if self.focus_source == "CAMERA":
            camera = self.focus_camera(ctx)
            params["focus_distances_m"] = [focus_distance_at(camera.data, f) for f in scene_frames]
        elif self.focus_source == "FILE":
            if not self.focus_file.strip():
                raise RefocusError("choose a focus distance file, or type the distances (Focus Distances: List)")
            path = Path(bpy.path.abspath(self.focus_file))
            if not path.is_file():
                raise RefocusError(f"focus distance file not found: {path}")
            params["focus_file"] = str(path)  # read by the worker, as --focus-file (sparse pairs too)
        else:
            params["focus_distances_m"] = parse_distances(self.focus_distances, "Focus Distances") or None
        return params

    def focus_camera(self, ctx: FrameContext) -> bpy.types.Object:
        """The scene camera whose ``dof.focus_distance`` Focus Distances 'Camera' reads."""
        camera, _ = active_camera(ctx.scene, ctx.depsgraph, "Focus Distances 'Camera'",
                                  "choose another source of focus distances")
        if camera.data.dof.focus_object is not None:
            raise RefocusError(f"camera '{camera.name}' focuses on object '{camera.data.dof.focus_object.name}'; "
                               "Focus Distances 'Camera' reads a focus distance (clear Focus on Object)")
        return camera

    def camera_distances(self, ctx: FrameContext) -> list[float]:
        """The scene camera's focus distance at the frame each linked slice shows (class doc)."""
        camera = self.focus_camera(ctx)
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
        layout.prop(self, "mode", expand=True)
        layout.prop(self, "method", text="")
        if self.mode == "STACK":
            layout.prop(self, "slices")
        layout.prop(self, "focus_source", expand=True)
        if self.focus_source != "CAMERA":
            layout.prop(self, "focus_distances" if self.focus_source == "LIST" else "focus_file", text="")
        layout.prop(self, "use_scene_camera")
        col = layout.column(align=True)
        col.enabled = not self.use_scene_camera
        col.prop(self, "focal_length")
        if self.method in CAMERA_METHODS:
            col.prop(self, "f_stop")
            col.prop(self, "sensor_width")
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
