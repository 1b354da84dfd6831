"""Blender session for the Mono Depth node test, as ``depth_node_fixtures``: a fresh process with real
bpy and the extension installed in the test's user folders.

The input is the Cycles render shipped in ``blender_scenes/samples`` (the stereo sample's left view,
128x128), read by an Image node: the compositor tree has no Render Layers, so a frame costs only
the compositing and the worker. Image -> Mono Depth -> Layered Defocus in one tree; Mono Depth's
outputs leave through File Output nodes, the composite through the render's own output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import addon_fixtures as af
import depth_node_fixtures as dnf

IMAGE = dnf.STEREO_SAMPLE / "left.exr"
NEAR_M, FAR_M = 1.5, 30.0
# The focus object in the camera's frame: 0.1 m right, 0.05 m down, 2.5 m ahead (planar).
FOCUS_LOCAL = (0.1, -0.05, -2.5)


def run_mono_session(user_dir: Path, **args: Any) -> dict[str, Any]:
    return af.run_session("mono", user_dir, script=Path(__file__).resolve(), **args)


def mono(out: str, model: str, onnx_model: str, junk_model: str) -> dict[str, Any]:
    """The chain with ``model`` at Near/Far; then Fit to Focus Object; then the ONNX model; then a
    file that is not an ONNX model (an error on the node, the render finishes)."""
    import bpy
    from mathutils import Vector

    out_dir = Path(out)
    meta = dnf.sample(dnf.STEREO_SAMPLE)
    cam = meta["camera"]
    scene = dnf._bare_scene(cam["width"], cam["height"], cam["focal_length_mm"], cam["sensor_width_mm"])
    tree = af._tree(scene)
    image = dnf._image_node(tree, IMAGE)
    node = tree.nodes.new("RefocusMonoDepthNode")
    node.model, node.model_file = "FILE", model
    node.near, node.far = NEAR_M, FAR_M
    tree.links.new(image.outputs["Image"], node.inputs["Image"])
    folders = {name: dnf._save(tree, node.outputs[socket], out_dir / name, name, "value")
               for name, socket in (("depth", "Depth"), ("inverse_depth", "Inverse Depth"))}
    dnf.defocus_chain(tree, image.outputs["Image"], node.outputs["Depth"])

    def render(name: str) -> dict[str, Any]:
        composite, seconds = dnf._render(scene, out_dir / f"{name}.exr")
        return {"composite": composite, "seconds": seconds, "nodes": af._nodes(tree),
                "outputs": {key: dnf._written(folder, f"{name}_{key}") for key, folder in folders.items()}}

    result: dict[str, Any] = {"chain": render("chain")}
    result["leftovers"] = af._leftovers(tree)

    # Fit to the focus object: an Empty placed in the camera's frame.
    target = bpy.data.objects.new("Focus Target", None)
    scene.collection.objects.link(target)
    target.location = scene.camera.matrix_world @ Vector(FOCUS_LOCAL)
    scene.camera.data.dof.focus_object = target
    node.scale = "FOCUS_OBJECT"
    addon_nodes = af._addon("nodes")
    ctx = addon_nodes.FrameContext(scene, bpy.context.evaluated_depsgraph_get(), scene.frame_current, "cpu")
    result["focus_params"] = node.parameters(ctx)
    result["focus"] = render("focus")
    target.location = scene.camera.matrix_world @ Vector((0.0, 0.0, 2.0))  # behind the camera
    result["behind"] = render("behind")["nodes"]
    node.scale = "NEAR_FAR"

    node.model_file = onnx_model
    result["onnx"] = render("onnx")
    node.model_file = junk_model
    result["junk"] = render("junk")
    return result


def main() -> None:
    af.serve({"mono": mono})


if __name__ == "__main__":
    main()
