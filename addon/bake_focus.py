"""Bake Focus to Camera: key the scene camera's focus distance on every frame from a Focus Track node.

Cycles then renders the pull natively (its own depth of field), and the artist edits the curve in
the Graph Editor. The series is the node's smoothed one, computed by the worker over the scene's
frame range (the same request a frame's evaluation sends; the worker keeps the track, so baking
after the node has shown a frame costs a lookup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import StringProperty

from . import worker_client
from .errors import RefocusError
from .nodes import FrameContext


def focus_series(node: Any, scene: bpy.types.Scene, folder: Path) -> list[float]:
    """The node's smoothed focus distance per frame of the scene's range, metres."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ctx = FrameContext(scene, depsgraph, scene.frame_start, node.device_name(scene))
    params = node.parameters(ctx)
    frames = params.get("frames")
    if not frames:
        raise RefocusError("Bake Focus needs the node's Image and Depth from file sequences (Image nodes), "
                           "so that the whole clip can be read")
    first = frames[0]
    image = {"path": first["image"]} if "image" in first else None
    if image is None:
        raise RefocusError("Bake Focus reads the clip's first frame from a file; a movie Image is not supported")
    if first.get("image_layer"):
        image["layer"] = first["image_layer"]
    depth = {"path": first["depth"], **({"layer": first["depth_layer"]} if first.get("depth_layer") else {})}
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {spec.key: str(folder / f"bake-{spec.key}.npy") for spec in node.OUTPUTS}
    result = worker_client.client().run(node.op, {"image": image, "depth": depth}, params, outputs)
    return [float(v) for v in result["info"]["focus_distance_series_m"]]


def key_focus(scene: bpy.types.Scene, series: list[float]) -> int:
    """Key the scene camera's dof.focus_distance at each frame of the range; the number keyed."""
    cam = scene.camera
    if cam is None or cam.type != "CAMERA":
        raise RefocusError(f"scene '{scene.name}' has no active camera to bake the focus into")
    dof = cam.data.dof
    dof.use_dof = True
    dof.focus_object = None  # a focus object would override the keyed distance
    for k, distance in enumerate(series):
        dof.focus_distance = distance
        dof.keyframe_insert("focus_distance", frame=scene.frame_start + k)
    return len(series)


class REFOCUS_OT_bake_focus(bpy.types.Operator):
    """Key the scene camera's focus distance on every frame of the range from this Focus Track node's
    smoothed series, so that Cycles renders the pull itself"""

    bl_idname = "refocus.bake_focus"
    bl_label = "Bake Focus to Camera"
    bl_options = {"REGISTER", "UNDO"}

    node: StringProperty(name="Node", description="The Focus Track node (default: the active node)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        tree = scene.compositing_node_group
        node = tree.nodes.get(self.node) if tree is not None and self.node else getattr(context, "active_node", None)
        if node is None or getattr(node, "op", "") != "focus_track":
            self.report({"ERROR"}, "choose a Focus Track node to bake")
            return {"CANCELLED"}
        try:
            folder = Path(bpy.app.tempdir or "/tmp") / f"refocus-bake-{node.uid}"
            count = key_focus(scene, focus_series(node, scene, folder))
        except RefocusError as exc:
            self.report({"ERROR"}, f"Bake Focus to Camera: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"keyed the focus distance of '{scene.camera.name}' on {count} frames")
        return {"FINISHED"}


CLASSES = (REFOCUS_OT_bake_focus,)
