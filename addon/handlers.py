"""Blender's application handlers, wired to the interactive.

Order of events in a render (checked with bpy 5.0.1, stills and animations alike)::

    render_init -> [render_pre -> frame_change_pre/post -> composite -> render_post -> render_write]
                   per frame -> render_complete (or render_cancel)

A render job copies the scene's compositor tree when it starts, so Render Layers are swapped for
rendered passes at ``render_init`` (a later swap would leave an animation rendering the scene
twice); ``render_pre`` is the last moment before each frame is composited, so Refocus nodes are
computed there; ``render_complete``/``render_cancel`` give the artist's tree back. An F12 render
calls the same handlers from its job thread, where they only take notes (see ``render_jobs``).
The add-on's own helper renders trigger the same handlers for its internal scenes, which are
ignored. All handlers are persistent (they survive loading another .blend) and never raise: a
failure shows on the nodes instead (or, in a background render with Fail Render on Node Error,
ends the process with exit code 1).

Edits of the scene camera's lens or focus (its data, the camera object, its focus object) reach
Refocus nodes that use the scene camera like a node edit: a live update (``depsgraph_update_post``).
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

import bpy
from bpy.app.handlers import persistent

from . import interactive, render_jobs, renders


def _guarded(fn: Callable[[bpy.types.Scene], None]) -> Callable[..., None]:
    """A handler that reports instead of raising, so Blender's render goes on."""

    @persistent
    def handler(scene: bpy.types.Scene | None = None, *args: Any) -> None:
        if scene is None or renders.is_internal(scene):
            return
        try:
            fn(scene)
        except Exception:
            traceback.print_exc()

    handler.__name__ = f"refocus_{fn.__name__}"
    return handler


on_render_init = _guarded(render_jobs.begin_render)
on_render_pre = _guarded(render_jobs.prepare_render_frame)
on_render_complete = _guarded(render_jobs.complete_render)
on_render_cancel = _guarded(render_jobs.cancel_render)


def _frame_changed(scene: bpy.types.Scene) -> None:
    interactive.request_update(scene)


on_frame_change = _guarded(_frame_changed)


def camera_changed(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph) -> bool:
    """Whether ``depsgraph``'s updates touch ``scene``'s camera: its object, its data (lens, depth
    of field) or its focus object."""
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        return False
    watched = {camera.name_full, camera.data.name_full}
    if camera.data.dof.focus_object is not None:
        watched.add(camera.data.dof.focus_object.name_full)
    return any(u.id.original.name_full in watched for u in depsgraph.updates
               if isinstance(u.id, (bpy.types.Object, bpy.types.Camera)))


def camera_signature(scene: bpy.types.Scene) -> tuple[Any, ...]:
    """What of the scene camera the nodes read: its placement, lens, depth of field, focus object."""
    camera = scene.camera
    data, dof = camera.data, camera.data.dof
    target = dof.focus_object
    return (camera.name_full, tuple(v for row in camera.matrix_world for v in row), data.lens, data.sensor_width,
            data.sensor_height, data.sensor_fit, dof.use_dof, dof.focus_distance, dof.aperture_fstop,
            dof.aperture_blades, dof.aperture_rotation, dof.aperture_ratio,
            target.name_full if target is not None else "",
            tuple(target.matrix_world.translation) if target is not None else ())


_cameras_seen: dict[str, tuple[Any, ...]] = {}


@persistent
def on_depsgraph_update(scene: bpy.types.Scene | None = None, depsgraph: bpy.types.Depsgraph | None = None) -> None:
    if bpy.app.background or scene is None or depsgraph is None or renders.is_internal(scene):
        return
    try:
        if camera_changed(scene, depsgraph):
            # Only a real change: the add-on's own renders (an engine switched for a moment) tag
            # the camera too, and must not start another update.
            signature = camera_signature(scene)
            if _cameras_seen.get(scene.name) != signature:
                _cameras_seen[scene.name] = signature
                interactive.request_update(scene)
    except Exception:
        traceback.print_exc()


@persistent
def on_load_post(*args: Any) -> None:
    # Results are not saved in the file (their Images are regenerated empty): compute them again.
    interactive.reset()
    interactive.forget_results()
    interactive.request_update()


@persistent
def on_save_pre(*args: Any) -> None:
    # Never save a tree swapped in for a render in place of the artist's own.
    render_jobs.finish_all_renders()


HANDLERS = (
    (bpy.app.handlers.render_init, on_render_init),
    (bpy.app.handlers.render_pre, on_render_pre),
    (bpy.app.handlers.render_complete, on_render_complete),
    (bpy.app.handlers.render_cancel, on_render_cancel),
    (bpy.app.handlers.depsgraph_update_post, on_depsgraph_update),
    (bpy.app.handlers.frame_change_post, on_frame_change),
    (bpy.app.handlers.load_post, on_load_post),
    (bpy.app.handlers.save_pre, on_save_pre),
)


def register() -> None:
    renders.register()
    for handlers, fn in HANDLERS:
        if fn not in handlers:
            handlers.append(fn)


def unregister() -> None:
    for handlers, fn in HANDLERS:
        if fn in handlers:
            handlers.remove(fn)
    renders.unregister()
