"""Blender session for the Focus Track node test: ``python tests/focus_track_session.py clip <json>``.

Renders a 3-frame Cycles clip (a textured card walking from 3 m to 2.6 m past a backdrop at 6 m)
to multilayer EXRs, reads it back through an Image node (an image sequence: colour and its Depth
pass) into Focus Track, whose Focus Distance drives a Layered Defocus, and into a second Focus Track
that follows a Movie Clip tracking marker; renders the animation with the compositor, recording
what the nodes show at each frame; then bakes the focus to the camera.
Prints ``RESULT {json}`` (see addon_fixtures for how sessions run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addon_fixtures import _enable_user_extensions, _output, _tree  # noqa: E402

SIZE = (96, 72)
DISTANCES = (3.0, 2.8, 2.6)


def _value(node: Any, name: str) -> float:
    import numpy as np

    image = node.node_tree.nodes[f"Result {name}"].image
    w, h = image.size
    pixels = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return float(np.median(pixels.reshape(h, w, 4)[..., 0]))


def clip(out: str) -> dict[str, Any]:
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from blender_scenes import scene as bs
    from core.optics import Lens

    out_dir = Path(out)
    spec = bs.SceneSpec(objects=(
        bs.Plane(distance=6.0, size=(8.0, 6.0), material=bs.Material(bs.Texture("checker", scale=3.0))),
        bs.Plane(distance=DISTANCES[0], size=(0.35, 0.6),
                 material=bs.Material(bs.Texture("noise", (0.9, 0.5, 0.1), (0.1, 0.2, 0.7), scale=12.0))),
        bs.Sun(),
    ), world=(0.3, 0.3, 0.3))
    scene = bs.build(spec, bs.RenderSettings(width=SIZE[0], height=SIZE[1], samples=4, denoise=False,
                                             max_bounces=1, threads=1), Lens(50.0, 1.4, 3.0))
    _enable_user_extensions()
    subject = bpy.data.objects["Plane.001"]
    for frame, (d, x) in enumerate(zip(DISTANCES, (-0.2, -0.15, -0.1)), start=1):
        subject.location = (x, d, 0.05)
        subject.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, len(DISTANCES)

    # 1. The clip: multilayer EXRs with the Depth pass, all in focus, no compositing.
    bs.set_dof(scene, False)
    r = scene.render
    r.use_compositing = False
    r.image_settings.media_type = "MULTI_LAYER_IMAGE"
    r.image_settings.color_depth = "32"
    r.filepath, r.use_file_extension = str(out_dir / "clip" / "frame_####.exr"), False
    with bs.quiet():
        bpy.ops.render.render(animation=True, scene=scene.name)
    files = [str(out_dir / "clip" / f"frame_{f:04d}.exr") for f in range(1, len(DISTANCES) + 1)]

    # The subject's box per frame, 0..1 from the bottom-left as Blender (and the node's box) has it.
    boxes = []
    for f in range(1, len(files) + 1):
        scene.frame_set(f)
        bpy.context.view_layer.update()
        corners = [world_to_camera_view(scene, scene.camera, subject.matrix_world @ Vector(c))
                   for c in subject.bound_box]
        boxes.append([min(p.x for p in corners), min(p.y for p in corners), max(p.x for p in corners),
                      max(p.y for p in corners)])
    box = boxes[0]
    scene.frame_set(1)

    # 2. The compositor: Image (sequence) -> Focus Track -> Layered Defocus's Focus Distance.
    bs.set_dof(scene, True)
    tree = _tree(scene)
    reader = tree.nodes.new("CompositorNodeImage")
    reader.image = bpy.data.images.load(files[0])
    reader.image.source = "SEQUENCE"
    reader.frame_duration, reader.frame_start, reader.frame_offset = len(files), 1, 0
    track = tree.nodes.new("RefocusFocusTrackNode")
    track.box = box
    track.start_frame = 1
    defocus = tree.nodes.new("RefocusLayeredDefocusNode")
    tree.links.new(reader.outputs["Combined"], track.inputs["Image"])
    tree.links.new(reader.outputs["Depth"], track.inputs["Depth"])
    tree.links.new(reader.outputs["Combined"], defocus.inputs["Image"])
    tree.links.new(reader.outputs["Depth"], defocus.inputs["Depth"])
    tree.links.new(track.outputs["Focus Distance"], defocus.inputs["Focus Distance"])
    tree.links.new(defocus.outputs["Image"], tree.nodes["Group Output"].inputs[0])
    viewer = tree.nodes.new("CompositorNodeViewer")
    tree.links.new(track.outputs["Overlay"], viewer.inputs[0])

    # A Movie Clip of the same frames with a tracking marker on the subject (as Blender's tracker
    # would leave it): a second Focus Track follows the marker instead of tracking.
    movie = bpy.data.movieclips.load(files[0])
    marker_track = movie.tracking.tracks.new(name="Subject", frame=1)
    for f, (bx0, by0, bx1, by1) in enumerate(boxes, start=1):
        cx, cy, hw, hh = 0.5 * (bx0 + bx1), 0.5 * (by0 + by1), 0.5 * (bx1 - bx0), 0.5 * (by1 - by0)
        marker = marker_track.markers.insert_frame(f, co=(cx, cy))
        marker.co = (cx, cy)
        marker.pattern_corners = ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))
    follower = tree.nodes.new("RefocusFocusTrackNode")
    follower.subject, follower.clip, follower.track = "MARKER", movie, "Subject"
    tree.links.new(reader.outputs["Combined"], follower.inputs["Image"])
    tree.links.new(reader.outputs["Depth"], follower.inputs["Depth"])
    second_viewer = tree.nodes.new("CompositorNodeViewer")
    tree.links.new(follower.outputs["Focus Distance"], second_viewer.inputs[0])

    # A Focus Track fed through another node (an Exposure node): it cannot read the clip, and says so.
    exposure = tree.nodes.new("CompositorNodeExposure")
    tree.links.new(reader.outputs["Combined"], exposure.inputs["Image"])
    unfed = tree.nodes.new("RefocusFocusTrackNode")
    tree.links.new(exposure.outputs["Image"], unfed.inputs["Image"])
    tree.links.new(reader.outputs["Depth"], unfed.inputs["Depth"])
    third_viewer = tree.nodes.new("CompositorNodeViewer")
    tree.links.new(unfed.outputs["Overlay"], third_viewer.inputs[0])

    shown: dict[int, dict[str, Any]] = {}

    def record(scene_: Any, *args: Any) -> None:
        shown[scene_.frame_current] = {"focus": _value(track, "Focus Distance"),
                                       "confidence": _value(track, "Confidence"),
                                       "state": track.state, "message": track.message,
                                       "defocus_state": defocus.state, "defocus_message": defocus.message,
                                       "marker_focus": _value(follower, "Focus Distance"),
                                       "marker_state": follower.state, "marker_message": follower.message,
                                       "unfed_state": unfed.state, "unfed_message": unfed.message}

    bpy.app.handlers.render_write.append(record)
    r.use_compositing = True
    _output(scene, out_dir / "refocused_####.exr")
    bpy.ops.render.render(animation=True, scene=scene.name)
    bpy.app.handlers.render_write.remove(record)

    # 3. Bake the smoothed series into the camera and read the animated value back per frame.
    cam = scene.camera.data
    cam.dof.focus_distance = 10.0
    baked_result = bpy.ops.refocus.bake_focus(node=track.name)
    baked = []
    for f in range(1, len(files) + 1):
        scene.frame_set(f)
        baked.append(cam.dof.focus_distance)
    data = scene.camera.data
    return {"files": files, "box_bottom_left": box, "boxes_bottom_left": boxes,
            "shown": {str(k): v for k, v in shown.items()},
            "baked": baked, "bake_result": sorted(baked_result), "animated": data.animation_data is not None
            and data.animation_data.action is not None,
            "lens": {"focal_length_mm": cam.lens, "f_stop": cam.dof.aperture_fstop,
                     "sensor_width_mm": cam.sensor_width},
            "fps": r.fps / r.fps_base,
            "refocused": [str(out_dir / f"refocused_{f:04d}.exr") for f in range(1, len(files) + 1)]}


if __name__ == "__main__":
    scenario, args = sys.argv[1], json.loads(sys.argv[2])
    result = {"clip": clip}[scenario](**args)
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
