"""Blender sessions for the depth-node tests (Stereo Depth, Focal Stack Depth), as ``addon_fixtures``.

Each scenario runs in a fresh ``python tests/depth_node_fixtures.py <scenario> <json>`` process with
real bpy and the extension installed in the test's user folders (:func:`run_depth_session`). The
inputs are the Cycles renders shipped in ``blender_scenes/samples`` (a 128x128 stereo pair and a
5-slice focal stack with their metadata), read by Image nodes: the compositor tree has no Render
Layers, so Blender renders no scene and a frame costs only the compositing and the worker.

Node outputs leave the compositor as files, through File Output nodes (32-bit EXR, channel V for
values, RGBA for colours), and the composite through the render's own output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import addon_fixtures as af

SAMPLES = af.REPO / "blender_scenes" / "samples"
STEREO_SAMPLE = SAMPLES / "stereo" / "000000"
STACK_SAMPLE = SAMPLES / "defocusnet" / "000000"
SWEEP_SAMPLE = SAMPLES / "sweep" / "000000"  # an 8-frame Cycles focus sweep, 128x96 (two focus ramps)
MAX_DISPARITY = 32  # the sample's nearest pixels are 22 px apart; the default range (width / 8) is 16
# Layered Defocus after Stereo Depth: on a 128 px frame even f/1.4 blurs by 3 px per dioptre at
# most; f/0.5 focused at 1 m blurs the far background (up to 27 m) by about 8 px.
DEFOCUS_LENS = {"focal_length_mm": 35.0, "f_stop": 0.5, "focus_distance": 1.0, "sensor_width_mm": 36.0,
                "sensor_height_mm": 24.0, "sensor_fit": "AUTO", "blades": 0, "rotation": 0.0, "ratio": 1.0}


def run_depth_session(scenario: str, user_dir: Path, **args: Any) -> dict[str, Any]:
    """Run ``scenario`` of this module in a new process with bpy; return its RESULT (see addon_fixtures)."""
    return af.run_session(scenario, user_dir, script=Path(__file__).resolve(), **args)


def sample(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "sample.json").read_text())


# ------------------------------------------------------------------------------ Blender side
def _bare_scene(width: int, height: int, focal_length_mm: float, sensor_width_mm: float) -> Any:
    """An empty scene with a camera and the extension enabled: only its compositor will run."""
    from blender_scenes import scene as bs
    from core.optics import Lens

    scene = bs.reset()
    bs.configure_render(scene, bs.RenderSettings(width=width, height=height, samples=1))
    bs.add_camera(scene, Lens(focal_length_mm=focal_length_mm, sensor_width_mm=sensor_width_mm), dof=False)
    af._enable_user_extensions()
    return scene


def _image_node(tree: Any, path: Path | str) -> Any:
    import bpy

    node = tree.nodes.new("CompositorNodeImage")
    node.image = bpy.data.images.load(str(path), check_existing=False)
    return node


def defocus_chain(tree: Any, image: Any, depth: Any) -> Any:
    """A Layered Defocus node with :data:`DEFOCUS_LENS` typed in, fed ``image`` and ``depth``
    (output sockets), its image to the group output; the node."""
    defocus = tree.nodes.new("RefocusLayeredDefocusNode")
    defocus.use_scene_camera = False
    lens = DEFOCUS_LENS
    defocus.focal_length, defocus.f_stop, defocus.focus_distance = (lens["focal_length_mm"], lens["f_stop"],
                                                                    lens["focus_distance"])
    defocus.sensor_width, defocus.sensor_height = lens["sensor_width_mm"], lens["sensor_height_mm"]
    tree.links.new(image, defocus.inputs["Image"])
    tree.links.new(depth, defocus.inputs["Depth"])
    tree.links.new(defocus.outputs["Image"], tree.nodes["Group Output"].inputs[0])
    return defocus


def _save(tree: Any, socket: Any, folder: Path, name: str, kind: str) -> Path:
    """A File Output node writing ``socket`` into ``folder`` (the add-on's own probe writer)."""
    graph = af._addon("graph")
    tree.links.new(socket, graph.file_output(tree, folder, name, kind))
    return folder


def _written(folder: Path, name: str) -> str:
    """The one file a File Output wrote into ``folder``, moved out of it as ``name``.exr (the next
    render writes the folder again)."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    assert len(files) == 1, f"{folder} holds {[p.name for p in files]}"
    return str(files[0].rename(folder.parent / f"{name}.exr"))


def _render(scene: Any, path: Path) -> tuple[str, float]:
    start = time.perf_counter()
    return af._render_still(scene, path), time.perf_counter() - start


def _node(tree: Any, name: str) -> dict[str, Any]:
    return af._nodes(tree)[name]


# --------------------------------------------------------------------------------- scenarios
def stereo(out: str) -> dict[str, Any]:
    """The stereo sample through Stereo Depth (scene camera = the sample's stereo camera), its Depth
    into Layered Defocus with the left view; then the learned method; then a right view of another
    size."""
    import numpy as np

    from core.imageio import read_image, write_exr

    out_dir = Path(out)
    meta = sample(STEREO_SAMPLE)
    cam = meta["camera"]
    scene = _bare_scene(cam["width"], cam["height"], cam["focal_length_mm"], cam["sensor_width_mm"])
    stereo_cam = scene.camera.data.stereo  # how the sample was rendered (blender_scenes/dataset_render.py)
    stereo_cam.convergence_mode, stereo_cam.pivot = "PARALLEL", "CENTER"
    stereo_cam.interocular_distance = meta["baseline_m"]

    tree = af._tree(scene)
    left, right = _image_node(tree, STEREO_SAMPLE / "left.exr"), _image_node(tree, STEREO_SAMPLE / "right.exr")
    node = tree.nodes.new("RefocusStereoDepthNode")
    node.max_disparity = MAX_DISPARITY
    tree.links.new(left.outputs["Image"], node.inputs["Left"])
    tree.links.new(right.outputs["Image"], node.inputs["Right"])
    folders = {name: _save(tree, node.outputs[socket], out_dir / name, name, "value")
               for name, socket in (("depth", "Depth"), ("disparity", "Disparity"), ("confidence", "Confidence"))}
    defocus_chain(tree, left.outputs["Image"], node.outputs["Depth"])

    composite, seconds = _render(scene, out_dir / "chain.exr")
    result: dict[str, Any] = {"composite": composite, "seconds": seconds, "nodes": af._nodes(tree),
                              "outputs": {name: _written(folder, name) for name, folder in folders.items()},
                              "leftovers": af._leftovers(tree)}

    # The learned methods, into the same chain.
    for method in ("learned", "refined"):
        node.method = method.upper()
        composite, seconds = _render(scene, out_dir / f"{method}.exr")
        result[method] = {"seconds": seconds, "nodes": af._nodes(tree),
                          "outputs": {name: _written(folder, f"{method}_{name}") for name, folder in folders.items()}}
    node.method = "SGBM"

    # A right view of another size: the node says so, the chain passes the left view through.
    small = out_dir / "right_small.exr"
    pixels = read_image(STEREO_SAMPLE / "right.exr")[::2, ::2]
    write_exr(small, {c: np.ascontiguousarray(pixels[..., i]) for i, c in enumerate("RGB")})
    right.image = _image_node(tree, small).image
    composite, seconds = _render(scene, out_dir / "sizes.exr")
    result["sizes"] = {"composite": composite, "seconds": seconds, "nodes": af._nodes(tree),
                       "depth": _written(folders["depth"], "sizes_depth")}
    return result


def focal_stack(out: str) -> dict[str, Any]:
    """The 5-slice sample through Focal Stack Depth, focus distances typed in the node, the scene
    camera's focal length; then from a file; then one distance short; then the learned methods."""
    out_dir = Path(out)
    meta = sample(STACK_SAMPLE)
    cam = meta["camera"]
    scene = _bare_scene(cam["width"], cam["height"], cam["focal_length_mm"], cam["sensor_width_mm"])
    tree = af._tree(scene)
    node = tree.nodes.new("RefocusFocalStackDepthNode")
    hidden_before = [s.hide for s in node.inputs]
    for k, view in enumerate(meta["slices"]):
        tree.links.new(_image_node(tree, STACK_SAMPLE / view["file"]).outputs["Image"], node.inputs[f"Slice {k + 1}"])
    distances = meta["focus_distances"]
    node.focus_distances = ", ".join(f"{d:g}" for d in distances)
    folders = {name: _save(tree, node.outputs[socket], out_dir / name, name, kind)
               for name, socket, kind in (("depth", "Depth", "value"), ("aif", "All in Focus", "color"),
                                          ("confidence", "Confidence", "value"))}
    tree.links.new(node.outputs["All in Focus"], tree.nodes["Group Output"].inputs[0])

    def render(name: str) -> dict[str, Any]:
        composite, seconds = _render(scene, out_dir / f"{name}.exr")
        return {"composite": composite, "seconds": seconds, **_node(tree, "Focal Stack Depth"),
                "outputs": {key: _written(folder, f"{name}_{key}") for key, folder in folders.items()}}

    result: dict[str, Any] = {"hidden_before": hidden_before, "distances": distances,
                              "focal_length_mm": cam["focal_length_mm"], "list": render("list")}
    result["leftovers"] = af._leftovers(tree)
    focus_file = out_dir / "focus.txt"
    focus_file.write_text("# metres, slice order\n" + "\n".join(f"{d:g}" for d in distances) + "\n")
    node.focus_source, node.focus_file = "FILE", str(focus_file)
    result["file"] = render("file")
    node.focus_source = "LIST"
    node.focus_distances = ", ".join(f"{d:g}" for d in distances[:-1])
    result["short"] = render("short")
    node.focus_distances = ", ".join(f"{d:g}" for d in distances)
    node.method = "LEARNED"
    result["learned"] = render("learned")
    # CameraNet reads the scene camera's f-stop and sensor as well as its focal length.
    scene.camera.data.dof.aperture_fstop = cam["f_stop"]
    node.method = "LEARNED_CAMERA"
    result["learned_camera"] = render("learned_camera")
    node.method = "CLASSICAL"
    result.update(focus_from_camera(scene, tree, node, out_dir, meta, render))
    return result


def focus_from_camera(scene: Any, tree: Any, node: Any, out_dir: Path, meta: dict[str, Any],
                      render: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """The same stack as a focus sweep: an image sequence numbered by frame (0001.exr = frame 1),
    the camera's focus distance keyframed at each frame, one Image node per slice offset by its
    index, Focus Distances 'Camera', at scene frame 1; then a still image on Slice 3 (an error)."""
    import shutil

    import bpy

    sweep = out_dir / "sweep"
    sweep.mkdir()
    for k, view in enumerate(meta["slices"]):
        shutil.copy(STACK_SAMPLE / view["file"], sweep / f"{k + 1:04d}.exr")
    camera = scene.camera.data
    for k, distance in enumerate(meta["focus_distances"]):
        camera.dof.focus_distance = distance
        camera.keyframe_insert("dof.focus_distance", frame=k + 1)
    camera.dof.focus_distance = 7.0  # what a reader of the current value alone would get
    for k in range(len(meta["slices"])):
        image_node = tree.nodes.new("CompositorNodeImage")
        image_node.image = bpy.data.images.load(str(sweep / "0001.exr"), check_existing=True)
        image_node.image.source = "SEQUENCE"
        image_node.frame_duration, image_node.frame_start, image_node.frame_offset = 1, 1, k
        reroute = tree.nodes.new("NodeReroute")
        tree.links.new(image_node.outputs["Image"], reroute.inputs[0])
        tree.links.new(reroute.outputs[0], node.inputs[f"Slice {k + 1}"])
    scene.frame_set(1)
    node.focus_source = "CAMERA"
    out = {"camera": render("camera")}
    tree.links.new(_image_node(tree, STACK_SAMPLE / meta["slices"][2]["file"]).outputs["Image"], node.inputs["Slice 3"])
    out["camera_still"] = render("camera_still")
    return out


def focal_video(out: str, focus_file: str, sparse_file: str, short_file: str, movie: str,
                frames: list[int]) -> dict[str, Any]:
    """The sweep sample as an image sequence (frame_000.exr shown at scene frame 1) on a Focal
    Stack Depth node in Video mode, the physical method, the scene camera's lens: focus distances
    from ``focus_file`` at scene ``frames``; from ``sparse_file`` ('FRAME METRES' pairs); from the
    camera's keyframes (file number n = scene frame n); then ``short_file`` (a distance short),
    then a still image on Slice 1 (errors on the node)."""
    import bpy

    out_dir = Path(out)
    meta = sample(SWEEP_SAMPLE)
    cam = meta["camera"]
    scene = _bare_scene(cam["width"], cam["height"], cam["focal_length_mm"], cam["sensor_width_mm"])
    camera = scene.camera.data
    camera.dof.aperture_fstop = cam["f_stop"]
    tree = af._tree(scene)
    count = len(meta["frames"])
    scene.frame_start, scene.frame_end = 1, count
    source = tree.nodes.new("CompositorNodeImage")
    source.image = bpy.data.images.load(str(SWEEP_SAMPLE / "frame_000.exr"), check_existing=False)
    source.image.source = "SEQUENCE"
    source.frame_duration, source.frame_start, source.frame_offset = count, 1, -1
    node = tree.nodes.new("RefocusFocalStackDepthNode")
    node.mode, node.method = "VIDEO", "PHYSICAL"
    hidden = [s.hide for s in node.inputs]
    tree.links.new(source.outputs["Image"], node.inputs["Slice 1"])
    node.focus_source, node.focus_file = "FILE", focus_file
    folders = {name: _save(tree, node.outputs[socket], out_dir / name, name, kind)
               for name, socket, kind in (("depth", "Depth", "value"), ("aif", "All in Focus", "color"),
                                          ("confidence", "Confidence", "value"))}
    tree.links.new(node.outputs["All in Focus"], tree.nodes["Group Output"].inputs[0])

    def render(name: str, frame: int) -> dict[str, Any]:
        scene.frame_set(frame)
        composite, seconds = _render(scene, out_dir / f"{name}.exr")
        return {"composite": composite, "seconds": seconds, "frame": frame, **_node(tree, "Focal Stack Depth"),
                "outputs": {key: _written(folder, f"{name}_{key}") for key, folder in folders.items()}}

    result: dict[str, Any] = {"hidden": hidden, "file": [render(f"file_{f}", f) for f in frames]}
    node.focus_file = sparse_file
    result["sparse"] = render("sparse", frames[-1])
    for k, distance in enumerate(meta["focus_distances"]):
        camera.dof.focus_distance = distance
        camera.keyframe_insert("dof.focus_distance", frame=k)  # file frame_00k.exr: frame k
    camera.dof.focus_distance = 7.0
    node.focus_source = "CAMERA"
    result["camera"] = render("camera", frames[0])
    node.focus_source = "FILE"
    clip_node = tree.nodes.new("CompositorNodeMovieClip")
    clip_node.clip = bpy.data.movieclips.load(movie)
    tree.links.new(clip_node.outputs["Image"], node.inputs["Slice 1"])
    result["movie"] = render("movie", frames[1])
    tree.links.new(source.outputs["Image"], node.inputs["Slice 1"])
    node.focus_file = short_file
    result["short"] = render("short", frames[0])
    node.focus_file = focus_file
    still = _image_node(tree, SWEEP_SAMPLE / "frame_002.exr")
    tree.links.new(still.outputs["Image"], node.inputs["Slice 1"])
    result["still"] = render("still", frames[0])
    result["leftovers"] = af._leftovers(tree)
    return result


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {f.__name__: f for f in (stereo, focal_stack, focal_video)}


def main() -> None:
    af.serve(SCENARIOS)


if __name__ == "__main__":
    main()
