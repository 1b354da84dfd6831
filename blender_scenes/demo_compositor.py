"""The compositor demo: a focus pull done by a Refocus node in Blender's compositor, headless.

    python -m blender_scenes.demo_compositor --out out/demo_compositor

What it does, as a user would:

1. builds the Refocus extension zip and installs it through Blender's extension API into Blender
   user folders of its own (``<out>/blender_user``: your own Blender settings are never touched);
2. builds a small Cycles scene whose camera has depth of field on, focused on an empty that travels
   from the nearest object to the lamps at the back over the animation (a focus pull);
3. wires the compositor: Render Layers -> Layered Defocus (Use Scene Camera) -> Group Output;
4. renders the animation with ``bpy.ops.render.render(animation=True)``: each frame the add-on
   renders the scene once, all in focus, and the node refocuses it with the camera's own depth of
   field (``blender -b demo_compositor.blend -a`` does the same);
5. writes ``frame_####.exr|png`` (refocused), ``input_*.exr`` (the all-in-focus Render Layers image,
   saved by a File Output node in the same tree), ``demo_compositor.blend``, ``node_tree.png`` (the
   compositor tree, drawn from the saved file) and ``contact_sheet.png`` (the tree, the input and
   the frames).

Blender's user folders are chosen when bpy is imported, so this module imports bpy (through
``blender_scenes.scene``) only after setting them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from core.colour import linear_to_srgb
from core.imageio import atomic_write, read_image, write_image
from core.optics import Lens

SIZE = (480, 270)
LENS = Lens(focal_length_mm=50.0, f_stop=1.4, focus_distance=2.0)
FOCUS_PATH = (1.6, 9.5)  # metres along the view: from the ball to the lamps
MODULE = "bl_ext.user_default.refocus"

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PAPER, _INK = (30, 30, 30), (230, 230, 230)


# ------------------------------------------------------------------------------------ the scene
def demo_spec() -> Any:
    """Ball and box near, a pillar in the middle, a brick wall far, a row of lamps for bokeh."""
    from . import scene as bs

    M, T = bs.Material, bs.Texture

    def lamp(x: float, z: float, colour: tuple[float, float, float]) -> Any:
        return bs.Primitive("ico_sphere", (x, 9.5, z), (0.08, 0.08, 0.08),
                            material=M(T("flat", (0.0, 0.0, 0.0)), emission=40.0, emission_colour=colour))

    colours = ((1.0, 0.7, 0.35), (1.0, 0.9, 0.7), (0.6, 0.8, 1.0))
    return bs.SceneSpec(objects=(
        bs.Ground(z=0.0, size=40.0, centre=(0.0, 15.0), material=M(T("checker", (0.6, 0.58, 0.52), (0.15, 0.14, 0.13), 1.5))),
        bs.Plane(12.0, (20.0, 10.0), offset=(0.0, 3.0), material=M(T("brick", (0.6, 0.3, 0.17), (0.5, 0.45, 0.4), 4.0))),
        bs.Primitive("sphere", (-0.35, 1.6, 0.2), (0.4, 0.4, 0.4),
                     material=M(T("voronoi", (0.95, 0.8, 0.3), (0.2, 0.1, 0.4), 20.0), roughness=0.35)),
        bs.Primitive("cube", (0.45, 2.2, 0.15), (0.3, 0.3, 0.3), rotation=(0.0, 0.0, 0.5),
                     material=M(T("checker", (0.85, 0.15, 0.1), (0.95, 0.9, 0.85), 20.0))),
        bs.Primitive("cylinder", (-0.8, 4.5, 0.7), (0.35, 0.35, 1.4),
                     material=M(T("noise", (0.85, 0.82, 0.75), (0.4, 0.38, 0.35), 8.0))),
        *[lamp(-1.6 + 0.4 * i, 1.0 + 0.25 * np.sin(1.9 * i), colours[i % 3]) for i in range(9)],
        bs.Sun(rotation=(1.0, 0.0, 0.7), strength=2.5, colour=(1.0, 0.87, 0.72)),
    ), world=(0.18, 0.22, 0.35), pose=bs.CameraPose((0.0, 0.0, 0.55), (0.0, 6.0, 0.35)))


def install_extension(work: Path) -> None:
    """Build the zip and install it into this session's user folders; enable it."""
    import bpy

    from .build_extension import build

    zip_path = build(work / "dist")
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    bpy.ops.wm.save_userpref()


def build_scene(frames: int, samples: int, out: Path) -> Any:
    """The demo scene, its focus pull, and the compositor tree with a Layered Defocus node (plus a
    File Output that saves the Render Layers image, the all-in-focus input, under ``out``)."""
    import bpy

    from . import scene as bs

    scn = bs.build(demo_spec(), bs.RenderSettings(width=SIZE[0], height=SIZE[1], samples=samples,
                                                  adaptive_threshold=0.02, denoise=True), LENS)
    bpy.ops.wm.read_userpref()  # building reset Blender to factory settings: enable the extension again
    camera = scn.camera
    camera.data.dof.use_dof = True
    target = bpy.data.objects.new("Focus Target", None)
    scn.collection.objects.link(target)
    target.parent = camera  # moves along the view axis: its distance is the planar focus distance
    for frame, distance in zip(range(1, frames + 1), np.geomspace(*FOCUS_PATH, frames)):
        target.location = (0.0, 0.0, -float(distance))
        target.keyframe_insert("location", frame=frame)
    camera.data.dof.focus_object = target
    scn.frame_start, scn.frame_end = 1, frames

    tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    nodes, links = tree.nodes, tree.links
    layers = nodes.new("CompositorNodeRLayers")
    refocus = nodes.new("RefocusLayeredDefocusNode")
    output = nodes.new("NodeGroupOutput")
    saver = nodes.new("CompositorNodeOutputFile")
    saver.label = "File Output (input)"
    saver.directory, saver.file_name = str(out) + "/", "input_"
    saver.format.media_type = "IMAGE"
    saver.format.file_format, saver.format.color_depth = "OPEN_EXR", "32"
    saver.file_output_items.new("RGBA", "all_in_focus")
    layers.location, refocus.location, output.location, saver.location = (-420, 160), (-60, 160), (280, 160), (-60, -110)
    links.new(layers.outputs["Image"], saver.inputs[0])
    links.new(layers.outputs["Image"], refocus.inputs["Image"])
    links.new(layers.outputs["Depth"], refocus.inputs["Depth"])
    links.new(refocus.outputs["Image"], output.inputs[0])
    scn.compositing_node_group = tree
    scn.render.use_compositing = True
    return scn


def render_animation(scn: Any, out: Path) -> list[Path]:
    import bpy

    from .scene import quiet

    r = scn.render
    r.image_settings.media_type = "IMAGE"
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_depth = "32"
    r.filepath, r.use_file_extension = str(out / "frame_"), True  # frame_0001.exr; File Outputs add .exr too
    with quiet():
        bpy.ops.render.render(animation=True, scene=scn.name)
    return [out / f"frame_{f:04d}.exr" for f in range(scn.frame_start, scn.frame_end + 1)]


# ------------------------------------------------------------------------------ the node diagram
@dataclass
class Box:
    """A node as drawn: its title, sockets (name, is colour), body lines and place (Blender units)."""

    title: str
    kind: str  # "input", "refocus" or "output": the header colour
    inputs: list[tuple[str, bool]]
    outputs: list[tuple[str, bool]]
    lines: list[str]
    x: float
    y: float
    width: float


HEADER = {"input": (150, 55, 50), "refocus": (40, 120, 130), "output": (80, 80, 80)}
SOCKET = {True: (205, 205, 60), False: (160, 160, 160)}  # colour sockets yellow, values grey
ROW, TOP = 24, 30


def describe(tree: Any) -> tuple[list[Box], list[tuple[int, str, int, str]]]:
    """The tree as boxes and links (from box, output name, to box, input name), for :func:`draw`."""
    index, boxes = {}, []
    for node in tree.nodes:
        if node.bl_idname.startswith("Refocus"):
            kind = "refocus"
            lines = [f"State: {node.state.title()}" + (f" ({node.message[:40]})" if node.message else "")]
            lines += ["Use Scene Camera" if node.use_scene_camera else f"f/{node.f_stop:g}, {node.focus_distance:g} m",
                      f"Kernel Max {node.k_max}, Layer Step {node.step:g}"]
        elif node.bl_idname in ("NodeGroupOutput", "CompositorNodeOutputFile"):
            kind, lines = "output", []
        else:
            kind, lines = "input", [f"Scene: {node.scene.name if getattr(node, 'scene', None) else ''}"]
        sockets = lambda group: [(s.name, s.type == "RGBA") for s in group if s.enabled and not s.hide and s.name]
        outputs = sockets(node.outputs)
        if node.bl_idname == "CompositorNodeRLayers":  # only the passes that are used
            outputs = [s for s in outputs if node.outputs[s[0]].is_linked]
        index[node.name] = len(boxes)
        boxes.append(Box(node.label or node.name, kind, sockets(node.inputs), outputs, lines,
                         node.location.x, node.location.y, max(node.width, 140.0) * 1.25))
    links = [(index[l.from_node.name], l.from_socket.name, index[l.to_node.name], l.to_socket.name)
             for l in tree.links]
    return boxes, links


def _layout(box: Box) -> tuple[int, dict[str, int], dict[str, int]]:
    """Height and socket rows (y offsets) of a box: outputs, then body lines, then inputs, as Blender."""
    y = TOP + ROW // 2
    outs = {}
    for name, _ in box.outputs:
        outs[name] = y
        y += ROW
    y += ROW * len(box.lines)
    ins = {}
    for name, _ in box.inputs:
        ins[name] = y
        y += ROW
    return y - ROW // 2 + 8, ins, outs


def draw(boxes: Sequence[Box], links: Sequence[tuple[int, str, int, str]], margin: int = 40) -> np.ndarray:
    """A node-editor-like picture (H, W, 3) uint8 sRGB of ``boxes`` joined by ``links``."""
    layouts = [_layout(b) for b in boxes]
    x0 = min(b.x for b in boxes) - margin
    y_top = max(b.y for b in boxes) + margin
    width = int(max(b.x + b.width for b in boxes) - x0 + margin)
    height = int(max(y_top - b.y + h for b, (h, _, _) in zip(boxes, layouts)) + margin)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = (45, 45, 45)
    origin = [(int(b.x - x0), int(y_top - b.y)) for b in boxes]

    def socket_point(k: int, name: str, output: bool) -> tuple[int, int]:
        _, ins, outs = layouts[k]
        x, y = origin[k]
        return (x + int(boxes[k].width), y + outs[name]) if output else (x, y + ins[name])

    for a, out_name, b, in_name in links:
        p0, p3 = socket_point(a, out_name, True), socket_point(b, in_name, False)
        reach = max(40, (p3[0] - p0[0]) // 2)
        t = np.linspace(0.0, 1.0, 48)[:, None]
        ctrl = np.array([p0, (p0[0] + reach, p0[1]), (p3[0] - reach, p3[1]), p3], float)
        curve = ((1 - t) ** 3 * ctrl[0] + 3 * (1 - t) ** 2 * t * ctrl[1] + 3 * (1 - t) * t ** 2 * ctrl[2]
                 + t ** 3 * ctrl[3])
        colour = dict(boxes[a].outputs)[out_name]
        cv2.polylines(canvas, [np.round(curve).astype(np.int32)], False, SOCKET[colour], 2, cv2.LINE_AA)

    for k, box in enumerate(boxes):
        x, y = origin[k]
        h, ins, outs = layouts[k]
        w = int(box.width)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (70, 70, 70), -1)
        cv2.rectangle(canvas, (x, y), (x + w, y + TOP), HEADER[box.kind], -1)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (20, 20, 20), 1, cv2.LINE_AA)
        cv2.putText(canvas, box.title, (x + 8, y + 20), _FONT, 0.5, _INK, 1, cv2.LINE_AA)
        for name, colour in box.outputs:
            size = cv2.getTextSize(name, _FONT, 0.45, 1)[0][0]
            cv2.putText(canvas, name, (x + w - 12 - size, y + outs[name] + 5), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
            cv2.circle(canvas, (x + w, y + outs[name]), 6, SOCKET[colour], -1, cv2.LINE_AA)
        body = TOP + ROW * len(box.outputs)
        for j, line in enumerate(box.lines):
            cv2.putText(canvas, line, (x + 10, y + body + ROW * j + 17), _FONT, 0.42, (200, 200, 200), 1, cv2.LINE_AA)
        for name, colour in box.inputs:
            cv2.putText(canvas, name, (x + 12, y + ins[name] + 5), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
            cv2.circle(canvas, (x, y + ins[name]), 6, SOCKET[colour], -1, cv2.LINE_AA)
    return canvas


# ----------------------------------------------------------------------------------- the sheet
def tile(linear: np.ndarray, text: str, width: int) -> np.ndarray:
    """A scene-linear image as an sRGB tile ``width`` pixels wide, with a caption bar above it."""
    srgb = np.round(linear_to_srgb(np.clip(linear[..., :3], 0.0, 1.0)) * 255.0).astype(np.uint8)
    h = round(srgb.shape[0] * width / srgb.shape[1])
    return captioned(cv2.resize(srgb, (width, h), interpolation=cv2.INTER_AREA), text)


def captioned(image: np.ndarray, text: str, bar: int = 22) -> np.ndarray:
    top = np.empty((bar, image.shape[1], 3), np.uint8)
    top[:] = _PAPER
    cv2.putText(top, text, (5, bar - 7), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
    return np.vstack([top, image])


def sheet(diagram: np.ndarray, tiles: Sequence[np.ndarray], columns: int = 3, gap: int = 6) -> np.ndarray:
    """The diagram above a grid of equal tiles, on a dark page."""
    th, tw = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    width = max(columns * (tw + gap) + gap, diagram.shape[1] + 2 * gap)
    page = np.empty((diagram.shape[0] + 2 * gap + rows * (th + gap), width, 3), np.uint8)
    page[:] = _PAPER
    page[gap:gap + diagram.shape[0], gap:gap + diagram.shape[1]] = diagram
    top = diagram.shape[0] + 2 * gap
    for k, t in enumerate(tiles):
        y, x = top + (k // columns) * (th + gap), gap + (k % columns) * (tw + gap)
        page[y:y + th, x:x + tw] = t
    return page


def write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_write(path) as tmp:
        if not cv2.imwrite(str(tmp), rgb[..., ::-1]):
            raise OSError(f"cannot write {path}")


# ------------------------------------------------------------------------------------- the run
def run(out: Path, frames: int = 5, samples: int = 32) -> Path:
    """Everything under ``out``; returns the contact sheet's path."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def step(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {text}", file=sys.stderr, flush=True)

    import bpy

    step("installing the Refocus extension into the demo's own Blender user folders")
    install_extension(out)
    step(f"building the scene: {SIZE[0]}x{SIZE[1]}, {samples} samples, {frames} frames of focus pull")
    scn = build_scene(frames, samples, out)
    tree = scn.compositing_node_group
    step("rendering the animation through the compositor (Render Layers -> Layered Defocus)")
    paths = render_animation(scn, out)
    node = tree.nodes["Layered Defocus"]
    if node.state != "DONE":
        raise SystemExit(f"demo_compositor: the Layered Defocus node failed: {node.message}")
    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 next to it (the demo's own preferences)
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "demo_compositor.blend"))

    step("writing PNGs, the node tree diagram and the contact sheet")
    diagram = draw(*describe(tree))
    write_png(out / "node_tree.png", diagram)
    inputs = sorted(out.glob("input_*.exr"))
    tiles = [tile(read_image(inputs[0]), "frame 1 input: Render Layers, all in focus", 320)] if inputs else []
    distances = np.geomspace(*FOCUS_PATH, frames)
    for k, (path, distance) in enumerate(zip(paths, distances), start=1):
        frame = read_image(path)
        write_image(path.with_suffix(".png"), frame, bit_depth=8)
        tiles.append(tile(frame, f"frame {k}: focus {distance:.1f} m, f/{LENS.f_stop:g}", 320))
    contact = out / "contact_sheet.png"
    write_png(contact, sheet(captioned(diagram, "Compositor: Render Layers -> Refocus Layered Defocus "
                                                "(Use Scene Camera) -> Group Output"), tiles))
    step("done")
    return contact


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m blender_scenes.demo_compositor", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/demo_compositor", help="output folder (default out/demo_compositor)")
    p.add_argument("--frames", type=int, default=5, help="frames of the focus pull (default 5)")
    p.add_argument("--samples", type=int, default=32, help="Cycles samples per frame (default 32)")
    args = p.parse_args(argv)
    if args.frames < 2 or args.samples < 1:
        p.error("need at least 2 frames and 1 sample")
    if "bpy" in sys.modules:
        p.error("run this as its own process: Blender's user folders are fixed once bpy is imported")
    out = Path(args.out).resolve()
    os.environ["BLENDER_USER_RESOURCES"] = str(out / "blender_user")
    os.environ.setdefault("REFOCUS_PYTHON", sys.executable)  # the worker runs in this very environment
    contact = run(out, args.frames, args.samples)
    print(f"wrote {out}/: frame_####.exr|png, input_*.exr, demo_compositor.blend, node_tree.png")
    print(f"contact sheet: {contact}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
