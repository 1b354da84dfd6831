"""Stereo Depth: depth, disparity and confidence from a rectified stereo pair (core.stereo)."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty

from .camera import active_camera
from . import contract
from .nodes import FrameContext, RefocusNode, SensorProperties, request_update

METHODS = (("SGBM", "SGBM", "OpenCV semi-global matching with a left-right check and guided fill (CPU)"),
           ("LEARNED", "Learned", "The StereoNet-style network with the shipped weights (models/weights)"),
           ("REFINED", "SGBM + Refine", "SGBM, then a StereoNet-style refinement guided by the image "
                                        "(models/weights/stereonet_refined.pt)"))
CONVERGENCE_MODES = (
    ("PARALLEL", "Parallel", "Parallel cameras: a rectified pair, zero disparity at infinity"),
    ("OFFAXIS", "Off-Axis", "Parallel cameras with shifted sensors (Blender's default): zero disparity at the "
                            "convergence distance, negative beyond it"),
    ("TOE", "Toe-in", "Cameras rotated toward the convergence point: the pair is not rectified"),
)
PIVOTS = (("CENTER", "Center", "Both eyes half the interocular distance from the camera"),
          ("LEFT", "Left", "The left eye on the camera"), ("RIGHT", "Right", "The right eye on the camera"))


class StereoDepthNode(SensorProperties, RefocusNode):
    """Depth of the left view of a rectified stereo pair (the worker's ``stereo_depth`` op).

    Equals ``python -m core stereo-depth --left L --right R --output DISP --depth DEPTH --confidence
    CONF`` on the pixels linked to Left and Right, with the node's method, disparity range and
    camera, except that depth at or beyond infinity (disparity at or below zero) is 10 km rather than
    ``inf``, so Depth can feed Layered Defocus.

    Depth needs the stereo camera that took the pair. With Use Scene Camera (the default) it is the
    scene's active camera at the frame: its focal length and sensor, and its Stereoscopy settings
    (interocular distance as the baseline, convergence mode and distance, pivot), as Blender renders
    a multi-view pair with it. Otherwise the node's own Baseline, Convergence and lens fields.
    An Off-Axis pair has negative disparities beyond the convergence distance: lower Min Disparity.
    """

    menu_order = 20
    bl_idname = "RefocusStereoDepthNode"
    bl_label = "Stereo Depth"
    bl_icon = "CAMERA_STEREO"
    op = "stereo_depth"
    INPUTS, OUTPUTS = contract.sockets(op)

    method: EnumProperty(name="Method", items=METHODS, default="SGBM", update=request_update)
    max_disparity: IntProperty(name="Max Disparity", default=0, min=0, max=1024, update=request_update,
                               description="Largest disparity searched, pixels (0: an eighth of the width for "
                                           "SGBM, the network's own range for Learned); SGBM rounds the range "
                                           "up to a multiple of 16")
    min_disparity: IntProperty(name="Min Disparity", default=0, min=-1024, max=1024, update=request_update,
                               description="Smallest disparity searched, pixels (SGBM; negative for Off-Axis "
                                           "pairs, whose far pixels have negative disparity)")
    use_scene_camera: BoolProperty(
        name="Use Scene Camera", default=True, update=request_update,
        description="Take baseline (interocular distance), convergence, focal length and sensor from the scene's "
                    "active camera and its Stereoscopy settings at each frame")
    baseline: FloatProperty(name="Baseline", default=0.065, min=0.0001, soft_max=1.0, unit="LENGTH",
                            update=request_update, description="Distance between the two cameras (interocular)")
    convergence_mode: EnumProperty(name="Convergence", items=CONVERGENCE_MODES, default="PARALLEL",
                                   update=request_update)
    convergence_distance: FloatProperty(name="Convergence Distance", default=1.95, min=0.00001, soft_max=100.0,
                                        unit="LENGTH", update=request_update,
                                        description="Where Off-Axis and Toe-in views meet")
    pivot: EnumProperty(name="Pivot", items=PIVOTS, default="CENTER", update=request_update)

    def camera(self, ctx: FrameContext) -> dict[str, Any]:
        """Fields of ``core.stereo.StereoCamera`` for this frame."""
        if self.use_scene_camera:
            return scene_stereo_camera(ctx.scene, ctx.depsgraph)
        return {"interocular_distance_m": self.baseline, "convergence_mode": self.convergence_mode,
                "convergence_distance_m": self.convergence_distance, "pivot": self.pivot,
                "focal_length_mm": self.focal_length, "sensor_width_mm": self.sensor_width,
                "sensor_height_mm": self.sensor_height, "sensor_fit": self.sensor_fit}

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        return {"method": self.method.lower(), "max_disparity_px": self.max_disparity or None,
                "min_disparity_px": self.min_disparity, **self.camera(ctx), "device": ctx.device}

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        layout.prop(self, "method", text="")
        row = layout.row(align=True)
        row.prop(self, "min_disparity", text="Min")
        row.prop(self, "max_disparity", text="Max")
        layout.prop(self, "use_scene_camera")
        col = layout.column(align=True)
        col.enabled = not self.use_scene_camera
        col.prop(self, "baseline")
        col.prop(self, "convergence_mode", text="")
        if self.convergence_mode != "PARALLEL":
            col.prop(self, "convergence_distance")
        col.prop(self, "pivot", text="")
        col.prop(self, "focal_length")
        row = col.row(align=True)
        row.prop(self, "sensor_fit", text="")
        row.prop(self, "sensor_height" if self.sensor_fit == "VERTICAL" else "sensor_width", text="")


def scene_stereo_camera(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> dict[str, Any]:
    """``StereoCamera`` fields of ``scene``'s active camera at the depsgraph's frame.

    Read from the evaluated camera, so an animated interocular distance or focal length is right on
    every frame. Unlike a depth of field, stereo needs no switch on the camera: Blender renders a
    pair with these settings whenever the scene's Stereoscopy is on.
    """
    _, data = active_camera(scene, depsgraph, "stereo depth")
    stereo = data.stereo
    return {"interocular_distance_m": stereo.interocular_distance, "convergence_mode": stereo.convergence_mode,
            "convergence_distance_m": stereo.convergence_distance, "pivot": stereo.pivot,
            "focal_length_mm": data.lens, "sensor_width_mm": data.sensor_width,
            "sensor_height_mm": data.sensor_height, "sensor_fit": data.sensor_fit}
