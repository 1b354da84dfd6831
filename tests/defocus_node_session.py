"""Run by tests/test_layered_defocus_options.py with the real bpy: a Layered Defocus node's
parameters for each depth type, and after the focus picker operator; printed as JSON."""

from __future__ import annotations

import json
import sys

import bpy

import addon
from addon.nodes import FrameContext

addon.register()
scene = bpy.context.scene
tree = bpy.data.node_groups.new("Compositor", "CompositorNodeTree")
scene.compositing_node_group = tree
node = tree.nodes.new("RefocusLayeredDefocusNode")
node.use_scene_camera = False
node.focal_length, node.f_stop, node.focus_distance = 50.0, 1.0, 2.0
node.near, node.far, node.baseline = 1.0, 8.0, 0.1
tree.nodes.active = node
ctx = FrameContext(scene, bpy.context.evaluated_depsgraph_get(), scene.frame_current, "cpu")
out = {}
for kind in ("METRES", "NORMALISED", "INVERSE", "DISPARITY"):
    node.depth_type = kind
    out[kind] = node.parameters(ctx)
node.depth_type = "METRES"
result = bpy.ops.refocus.pick_focus(x=0.25, y=0.75)  # the active node, as the eyedropper picks it
out["picked"] = {"result": sorted(result), "use_focus_point": node.use_focus_point,
                 "focus_point": list(node.focus_point), "params": node.parameters(ctx)}
out["devices"] = {}
for choice in ("COMPOSITOR", "CPU", "GPU"):
    node.device = choice
    out["devices"][choice] = node.device_name(scene, "auto")
sys.stdout.write("RESULT " + json.dumps(out) + "\n")
