"""Refocus for Blender: depth estimation and physically based refocusing as compositor nodes.

The add-on is thin: it holds no image math. Its modules, each one concern:

* ``nodes``: the framework every Refocus node type shares; ``node_*``: one module per node type
  (Layered Defocus, Stereo Depth, Mono Depth, Focal Stack Depth, Focus Track), listed in
  ``node_types``;
* ``graph``: the compositor tree as the evaluator reads and copies it;
* ``renders``: the add-on's own helper renders (scene passes, input probes);
* ``frame_evaluation``: one frame's nodes, inputs to the worker and results back, cached (``cache``);
* ``render_jobs``: the nodes of each frame a render composites; ``interactive``: edits and scrubbing;
* ``worker_client``: the worker process that runs ``core`` in the project's Python;
* ``camera``: the scene camera's optics; ``handlers``: Blender's render and file events;
* ``operators``, ``menus``, ``preferences``, ``status``: the interface.

How pixels travel is explained in ``frame_evaluation``'s docstring.
"""

from __future__ import annotations

import bpy

from . import bake_focus, focus_picker, handlers, interactive, menus, node_types, operators, preferences, worker_client

CLASSES = (preferences.RefocusPreferences, *node_types.NODE_CLASSES, *operators.CLASSES, *focus_picker.CLASSES,
           *bake_focus.CLASSES, *menus.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    menus.register()
    interactive.register()
    handlers.register()


def unregister() -> None:
    handlers.unregister()
    menus.unregister()
    interactive.reset()
    interactive.unregister()
    worker_client.shutdown()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
