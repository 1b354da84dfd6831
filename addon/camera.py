"""The scene camera's optics at a frame, as the fields of ``core.optics.Lens``.

"Use Scene Camera" must give exactly the depth of field Cycles renders, so the numbers are read
the way Cycles reads them: focal length and sensor in millimetres from the camera data, f-stop and
aperture shape from its depth-of-field settings, and with a focus object the *planar* distance to
it (along the camera's view axis, as Cycles measures it), not the straight-line one.

Everything is read from a depsgraph evaluated at the frame being composited, so animated cameras,
focus objects and f-stops are right on every frame of an animation render.
"""

from __future__ import annotations

import math
from typing import Any

import bpy

from .errors import RefocusError


def active_camera(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph, purpose: str = "a depth of field",
                  what: str = "untick Use Scene Camera") -> tuple[bpy.types.Object, Any]:
    """``scene``'s active camera object and its evaluated perspective camera data at the
    depsgraph's frame; :class:`RefocusError`, saying what to do (``what``), if there is none."""
    camera = scene.camera
    if camera is None:
        raise RefocusError(f"scene '{scene.name}' has no active camera; add one or {what}")
    if camera.type != "CAMERA":
        raise RefocusError(f"the active camera '{camera.name}' is not a camera object")
    data = camera.evaluated_get(depsgraph).data
    if data.type != "PERSP":
        raise RefocusError(f"camera '{camera.name}' is {data.type.lower()}; {purpose} needs a perspective camera")
    return camera, data


def scene_lens(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> dict[str, Any]:
    """The lens parameters of ``core.pipelines.defocus.LayeredDefocusParams`` from ``scene``'s
    active camera at the depsgraph's frame; :class:`RefocusError` if none fits."""
    camera, data = active_camera(scene, depsgraph)
    dof = data.dof
    if not dof.use_dof:
        raise RefocusError(f"camera '{camera.name}' has depth of field off; turn it on in the camera's "
                           "properties or untick Use Scene Camera")
    return {
        "focal_length_mm": data.lens,
        "f_stop": dof.aperture_fstop,
        "focus_distance_m": focus_distance(camera, depsgraph),
        "sensor_width_mm": data.sensor_width,
        "sensor_height_mm": data.sensor_height,
        "sensor_fit": data.sensor_fit,
        "blades": dof.aperture_blades,
        "rotation_deg": math.degrees(dof.aperture_rotation),
        "ratio": dof.aperture_ratio,
    }


def focus_target(camera: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> Any:
    """World position (a ``mathutils.Vector``) of ``camera``'s focus object, or of its bone's head;
    None without a focus object."""
    dof = camera.data.dof
    target = dof.focus_object
    if target is None:
        return None
    target_eval = target.evaluated_get(depsgraph)
    point = target_eval.matrix_world.translation.copy()
    bone = getattr(dof, "focus_subtarget", "")
    if bone and target.type == "ARMATURE" and bone in target_eval.pose.bones:
        point = target_eval.matrix_world @ target_eval.pose.bones[bone].head
    return point


def focus_distance(camera: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> float:
    """Planar focus distance of ``camera`` in metres: to its focus object (or bone) if it has one."""
    evaluated = camera.evaluated_get(depsgraph)
    point = focus_target(camera, depsgraph)
    if point is None:
        return float(evaluated.data.dof.focus_distance)
    matrix = evaluated.matrix_world
    view_axis = matrix.col[2].xyz.normalized()  # the camera looks down its -Z; the sign drops below
    return abs(view_axis.dot(matrix.translation - point))
