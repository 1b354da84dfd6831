"""Run by tests/test_contract.py in a fresh Python with the real bpy: register the add-on from this
checkout, add every Refocus node to a compositor and print, per node type, its op, its socket keys
and the parameters it sends in its default state (scene camera with depth of field on)."""

from __future__ import annotations

import json
import sys

import bpy

import addon
from addon.nodes import FrameContext
from addon.node_types import NODE_CLASSES

addon.register()
scene = bpy.context.scene
camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
scene.collection.objects.link(camera)
scene.camera = camera
camera.data.dof.use_dof = True
tree = bpy.data.node_groups.new("Compositor", "CompositorNodeTree")
scene.compositing_node_group = tree
ctx = FrameContext(scene, bpy.context.evaluated_depsgraph_get(), scene.frame_current, "cpu")
out = {}
for cls in NODE_CLASSES:
    node = tree.nodes.new(cls.bl_idname)
    try:
        params = node.parameters(ctx)
        error = ""
    except Exception as exc:  # reported, and the test fails on it
        params, error = None, f"{type(exc).__name__}: {exc}"
    out[cls.bl_idname] = {"op": cls.op, "inputs": [s.key for s in cls.INPUTS], "outputs": [s.key for s in cls.OUTPUTS],
                          "socket_names": [s.name for s in node.inputs], "params": params, "error": error,
                          "unavailable": cls.unavailable_reason()}
sys.stdout.write("RESULT " + json.dumps(out) + "\n")
