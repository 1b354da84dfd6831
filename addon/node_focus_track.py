"""Focus Track: a focus distance per frame that follows a subject through the clip (core.pipelines.focus_track).

The compositor evaluates a node one frame at a time, but a track needs the whole clip. So the node
sends the clip by path: for every frame of the scene's range, the file its Image input's Image node
(or Movie Clip node) shows at that frame, and the same for Depth (a multilayer EXR's Depth pass, or a
depth sequence), with Blender's own frame mapping (start, offset, duration, cyclic). The worker reads
the clip, tracks once and keeps the track, so each frame's evaluation is a lookup. Inputs that are
not file sources (Render Layers, another Refocus node) cannot give the clip: the node says so and
what to do (render the passes to a multilayer EXR sequence).

The subject: a box drawn at a start frame, tracked by core; or a Movie Clip's tracking marker (clip
and track name), whose per-frame pattern corners Blender's own tracker has solved, used as they are.
"""

from __future__ import annotations

import os
import re
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, PointerProperty
from bpy.props import StringProperty

from . import camera, contract
from .errors import RefocusError
from .nodes import FrameContext, RefocusNode, SensorProperties, request_update

SUBJECTS = (("BOX", "Box", "A box drawn at the start frame, tracked by Refocus"),
            ("MARKER", "Tracking Marker", "A Movie Clip's tracking marker: Blender's own track, used as it is"))
METHODS = (("csrt", "CSRT", "Accurate correlation-filter tracker, follows scale"),
           ("kcf", "KCF", "Faster correlation-filter tracker"))
_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def _source(socket: bpy.types.NodeSocket) -> tuple[bpy.types.Node, bpy.types.NodeSocket] | None:
    """The node and output socket feeding ``socket``, through reroutes."""
    while socket.is_linked:
        link = socket.links[0]
        node = link.from_node
        if node.bl_idname == "NodeReroute":
            socket = node.inputs[0]
            continue
        return node, link.from_socket
    return None


def sequence_frame(scene_frame: int, start: int, offset: int, duration: int, cyclic: bool) -> int:
    """The file frame an image sequence shows at ``scene_frame`` (Blender's image-user rule)."""
    f = scene_frame - start + 1
    if duration > 0:
        if cyclic:
            f %= duration
            f = duration if f == 0 else f
        f = min(max(f, 0), duration)
    return f + offset


def numbered(path: str, frame: int) -> str:
    """``path`` with the last run of digits in its file name replaced by ``frame`` (same width)."""
    folder, name = os.path.split(path)
    match = _DIGITS.search(name)
    if match is None:
        return path
    width = len(match.group(1))
    return os.path.join(folder, name[:match.start(1)] + str(frame).zfill(width) + name[match.end(1):])


def frame_file(node: bpy.types.Node, socket: bpy.types.NodeSocket, scene_frame: int, what: str) -> dict[str, Any]:
    """``{"path" | "video", "video_frame", "layer"}`` of what ``node`` shows at ``scene_frame``."""
    if node.bl_idname == "CompositorNodeImage":
        image = node.image
        if image is None:
            raise RefocusError(f"the {what} input's Image node has no image")
        path = bpy.path.abspath(image.filepath, library=image.library)
        frame = sequence_frame(scene_frame, node.frame_start, node.frame_offset, node.frame_duration, node.use_cyclic)
        layer = None
        if getattr(node, "has_layers", False) or image.type == "MULTILAYER":
            pass_name = "Combined" if socket.name in ("Image", "Alpha", "Combined") else socket.name
            layer = f"{node.layer}.{pass_name}" if node.layer else pass_name
        if image.source == "MOVIE":
            return {"video": path, "video_frame": max(frame - 1, 0), "layer": None}
        if image.source == "SEQUENCE":
            return {"path": numbered(path, frame), "layer": layer}
        if image.source == "FILE":
            return {"path": path, "layer": layer}
        raise RefocusError(f"the {what} input's image '{image.name}' is {image.source.lower()}, not a file")
    if node.bl_idname == "CompositorNodeMovieClip":
        clip = node.clip
        if clip is None:
            raise RefocusError(f"the {what} input's Movie Clip node has no clip")
        path = bpy.path.abspath(clip.filepath, library=clip.library)
        frame = scene_frame - clip.frame_start + 1 + clip.frame_offset
        if clip.source == "MOVIE":
            return {"video": path, "video_frame": max(frame - 1, 0), "layer": None}
        return {"path": numbered(path, frame), "layer": None}
    raise RefocusError("")  # not a file source: the caller falls back to this frame alone


class FocusTrackNode(SensorProperties, RefocusNode):
    """A focus distance per frame that follows a subject through the clip (SteReFo's focus tracking)."""

    menu_order = 50
    bl_idname = "RefocusFocusTrackNode"
    bl_label = "Focus Track"
    bl_icon = "TRACKER"
    op = "focus_track"
    INPUTS, OUTPUTS = contract.sockets(op)

    subject: EnumProperty(name="Subject", items=SUBJECTS, default="BOX", update=request_update)
    box: FloatVectorProperty(name="Box", size=4, default=(0.4, 0.4, 0.6, 0.6), min=0.0, max=1.0,
                             update=request_update,
                             description="Box to follow at the start frame: left, bottom, right, top (0..1)")
    start_frame: IntProperty(name="Start Frame", default=1, update=request_update,
                             description="Frame where the box is placed")
    clip: PointerProperty(name="Clip", type=bpy.types.MovieClip, update=request_update,
                          description="Movie Clip holding the tracking marker")
    track: StringProperty(name="Track", update=request_update, description="Name of the tracking marker's track")
    method: EnumProperty(name="Tracker", items=METHODS, default="csrt", update=request_update)
    max_rack: FloatProperty(name="Max Rack", default=2.0, min=0.01, soft_max=20.0, update=request_update,
                            description="Fastest focus pull, dioptres per second")
    dead_band: FloatProperty(name="Dead-band", default=0.25, min=0.0, max=1.0, subtype="FACTOR",
                             update=request_update,
                             description="Focus rests while the subject moves less than this share of the depth "
                                         "of field")
    response: FloatProperty(name="Response", default=0.05, min=0.0, max=2.0, unit="TIME_ABSOLUTE",
                            update=request_update, description="Time constant of the focus puller's follow")
    use_scene_camera: BoolProperty(name="Use Scene Camera", default=True, update=request_update,
                                   description="Lens (for the depth of field and the in-focus band) from the "
                                               "scene's active camera")
    f_stop: FloatProperty(name="F-Stop", default=2.8, min=0.1, soft_max=64.0, step=10, precision=1,
                          update=request_update, description="Aperture f-number (sets the depth of field)")

    # ------------------------------------------------------------------------------ parameters
    def lens(self, ctx: FrameContext) -> dict[str, Any]:
        if self.use_scene_camera:
            _, data = camera.active_camera(ctx.scene, ctx.depsgraph, "Focus Track",
                                           "untick the node's Use Scene Camera")
            return {"focal_length_mm": data.lens, "f_stop": data.dof.aperture_fstop,
                    "sensor_width_mm": data.sensor_width, "sensor_height_mm": data.sensor_height,
                    "sensor_fit": data.sensor_fit}
        return {"focal_length_mm": self.focal_length, "f_stop": self.f_stop, "sensor_width_mm": self.sensor_width,
                "sensor_height_mm": self.sensor_height, "sensor_fit": self.sensor_fit}

    def frame_range(self, scene: bpy.types.Scene) -> range:
        return range(scene.frame_start, scene.frame_end + 1)

    def clip_frames(self, scene: bpy.types.Scene) -> list[dict[str, Any]] | None:
        """The clip by path, one entry per frame of the scene's range; ``None`` while an input is
        unlinked (the evaluator says to connect it); :class:`RefocusError` when an input is not a
        file source, since the whole clip cannot be read then."""
        image_src, depth_src = _source(self.inputs["Image"]), _source(self.inputs["Depth"])
        if image_src is None or depth_src is None:
            return None
        frames = []
        for f in self.frame_range(scene):
            try:
                image = frame_file(*image_src, f, "Image")
                depth = frame_file(*depth_src, f, "Depth")
            except RefocusError as exc:
                if str(exc):
                    raise
                raise RefocusError("Focus Track reads the whole clip from files: feed its Image and Depth "
                                   "straight from Image or Movie Clip nodes (image sequences, movies, multilayer "
                                   "EXRs); Render Layers and other nodes give one frame at a time, so render the "
                                   "passes to a multilayer EXR sequence first") from None
            if "video" in depth:
                raise RefocusError("the Depth input is a movie; depth needs float files (EXR, PFM or NPY)")
            entry: dict[str, Any] = {"depth": depth["path"], "depth_layer": depth["layer"]}
            if "video" in image:
                entry.update(video=image["video"], video_frame=image["video_frame"])
            else:
                entry.update(image=image["path"], image_layer=image["layer"])
            frames.append(entry)
        return frames

    def marker_boxes(self, frames: range) -> list[list[float] | None]:
        """The marker's pattern box per scene frame, 0..1 from the top-left (``None`` where it has none)."""
        clip = self.clip
        if clip is None:
            raise RefocusError("choose the Movie Clip that holds the tracking marker")
        track = clip.tracking.tracks.get(self.track)
        if track is None:
            for obj in clip.tracking.objects:
                track = obj.tracks.get(self.track) or track
        if track is None:
            raise RefocusError(f"clip '{clip.name}' has no track named '{self.track}'")
        boxes: list[list[float] | None] = []
        for f in frames:
            marker = track.markers.find_frame(f - clip.frame_start + 1)
            if marker is None or marker.mute:
                boxes.append(None)
                continue
            xs = [marker.co[0] + c[0] for c in marker.pattern_corners]
            ys = [marker.co[1] + c[1] for c in marker.pattern_corners]
            boxes.append([min(xs), 1.0 - max(ys), max(xs), 1.0 - min(ys)])  # Blender's y is up
        if all(b is None for b in boxes):
            raise RefocusError(f"track '{self.track}' has no marker in the scene's frame range")
        return boxes

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        scene = ctx.scene
        frames = self.clip_frames(scene)
        first = scene.frame_start
        params: dict[str, Any] = {**self.lens(ctx), "method": self.method,
                                  "fps": scene.render.fps / scene.render.fps_base,
                                  "max_rack_dioptres_per_s": self.max_rack, "dead_band": self.dead_band,
                                  "response_s": self.response}
        if frames is not None:
            if not (scene.frame_start <= ctx.frame <= scene.frame_end):
                raise RefocusError(f"frame {ctx.frame} is outside the scene's range "
                                   f"{scene.frame_start}-{scene.frame_end}, which is the clip tracked")
            params.update(frames=frames, frame_index=ctx.frame - first)
        if self.subject == "MARKER":
            span = self.frame_range(scene) if frames is not None else range(ctx.frame, ctx.frame + 1)
            boxes = self.marker_boxes(span)
            if frames is None and boxes[0] is None:
                raise RefocusError(f"track '{self.track}' has no marker at frame {ctx.frame}")
            params["boxes_uv"] = boxes
            return params
        x0, y0, x1, y1 = self.box
        if not (x1 > x0 and y1 > y0):
            raise RefocusError("the box must have right > left and top > bottom")
        params["box_uv"] = [x0, 1.0 - y1, x1, 1.0 - y0]  # core: from the top-left
        if frames is not None:
            if not (scene.frame_start <= self.start_frame <= scene.frame_end):
                raise RefocusError(f"the start frame {self.start_frame} is outside the scene's range "
                                   f"{scene.frame_start}-{scene.frame_end}")
            params["start_frame"] = self.start_frame - first
        return params

    # ------------------------------------------------------------------------------ drawing
    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        layout.prop(self, "subject", text="")
        if self.subject == "BOX":
            layout.prop(self, "box")
            layout.prop(self, "start_frame")
            layout.prop(self, "method")
        else:
            layout.prop(self, "clip")
            if self.clip is not None:
                layout.prop_search(self, "track", self.clip.tracking, "tracks")
        row = layout.row(align=True)
        row.prop(self, "max_rack")
        row.prop(self, "response")
        layout.prop(self, "dead_band")
        layout.prop(self, "use_scene_camera")
        col = layout.column(align=True)
        col.enabled = not self.use_scene_camera
        col.prop(self, "focal_length")
        col.prop(self, "f_stop")
        layout.operator("refocus.bake_focus", icon="KEYINGSET").node = self.name
