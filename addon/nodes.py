"""Refocus nodes in the compositor: the framework that the five node types (``node_*``) share.

Every Refocus node is a :class:`bpy.types.CompositorNodeCustomGroup`: Blender sees a node group
whose inner tree it composites natively, so the node renders headless, chains with any other node
and survives save and reload like a built-in one. The inner tree holds, per output socket, a float
Image data-block that the evaluator fills before each frame is composited::

    Image (".Refocus <uid> Image") ──────────────────────► Group Output.Image
    Image (".Refocus <uid> Depth") ── Separate Color.Red ─► Group Output.Depth   (value outputs)

Only pixels change from frame to frame, never the inner tree: Blender's render reads an Image's
pixels as they are when it composites, while edits to a tree reach a render's own copy of it only
at its next update. So a failing node shows its input's pixels (or magenta, when nothing is linked)
in the same Image rather than switching to another branch.

A node type names the worker operation that computes it (``op``, see ``core/worker/``); its
sockets are that op's declared inputs and outputs (:func:`.contract.sockets`, keyed as core keys
them), and :meth:`RefocusNode.parameters` sends the op's declared parameters.
Nothing here computes pixels: the evaluator gathers the inputs, the worker computes, and the node
only shows the result (:meth:`RefocusNode.show`) or an error (:meth:`RefocusNode.fail`), which also
goes to the status bar and the render log: never a silent black frame.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import camera, contract
from .contract import Socket
from .errors import RefocusError

SOCKET_TYPES = {"color": "NodeSocketColor", "value": "NodeSocketFloat"}
MISSING_COLOUR = (1.0, 0.0, 1.0, 1.0)  # what a failed node shows with nothing to pass through: loud, never black
IMAGE_PREFIX = ".Refocus"


@dataclass
class FrameContext:
    """What parameters may depend on: the user's scene and a depsgraph evaluated at ``frame``."""

    scene: bpy.types.Scene
    depsgraph: bpy.types.Depsgraph
    frame: int
    device: str

    @property
    def pixel_aspect(self) -> float:
        r = self.scene.render
        return r.pixel_aspect_x / r.pixel_aspect_y


_share_inner_trees = False


@contextlib.contextmanager
def shared_copies() -> Iterator[None]:
    """Within this block, copied Refocus nodes share their inner tree with the original.

    The evaluator copies whole compositor trees (to probe inputs, to swap Render Layers for rendered
    passes); those copies must show the very pixels the original nodes hold. A copy the artist makes
    (Shift+D) gets its own inner tree instead.
    """
    global _share_inner_trees
    previous, _share_inner_trees = _share_inner_trees, True
    try:
        yield
    finally:
        _share_inner_trees = previous


_on_change: Callable[[bpy.types.Scene | None], None] | None = None


def on_change(hook: Callable[[bpy.types.Scene | None], None] | None) -> None:
    """Set what a property edit or a relink calls (``interactive`` registers its update request),
    so this module imports nothing that imports it."""
    global _on_change
    _on_change = hook


def request_update(self: bpy.types.Node, context: bpy.types.Context) -> None:
    if _on_change is not None:
        _on_change(context.scene if context is not None else None)


DEVICES = (
    ("COMPOSITOR", "Compositor", "The scene's compositor device (Render > Performance > Compositor): GPU runs on "
                                 "CUDA or Apple's MPS when the worker's torch has one, CPU on the CPU"),
    ("CPU", "CPU", "The CPU"),
    ("GPU", "GPU", "CUDA, else Apple's MPS, where the worker's torch has one; else the CPU"),
)

STATES = (
    ("IDLE", "Idle", "No result yet: the input passes through"),
    ("RUNNING", "Running", "The worker is computing"),
    ("DONE", "Done", "Showing the computed result"),
    ("ERROR", "Error", "Something is wrong; the input passes through"),
    ("CANCELLED", "Cancelled", "Cancelled; the input passes through"),
)


class RefocusNode(bpy.types.CompositorNodeCustomGroup):
    """Base of every Refocus node (not registered itself)."""

    bl_width_default = 220
    bl_width_min = 160

    op: ClassVar[str] = ""
    menu_order: ClassVar[int] = 100  # position in Add > Refocus (node_types sorts by it)
    INPUTS: ClassVar[tuple[Socket, ...]] = ()  # contract.sockets(op) in each node type
    OUTPUTS: ClassVar[tuple[Socket, ...]] = ()

    uid: StringProperty(name="ID", description="Identifies this node's results in the cache and its inner data")
    state: EnumProperty(name="State", items=STATES, default="IDLE")
    message: StringProperty(name="Message", description="Why the node shows its input instead of a result")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    device: EnumProperty(name="Device", items=DEVICES, default="COMPOSITOR", update=request_update,
                         description="Where this node computes")

    @classmethod
    def poll(cls, node_tree: bpy.types.NodeTree) -> bool:
        return node_tree.bl_idname == "CompositorNodeTree"

    @classmethod
    def unavailable_reason(cls, served: set[str] | None = None) -> str:
        """Why this node type cannot compute ('' if it can): its op is missing from the add-on's
        core, or from the worker's (``served``)."""
        return contract.unavailable_reason(cls.op, served)

    # -------------------------------------------------------------------------- life cycle
    def init(self, context: bpy.types.Context) -> None:
        self.uid = uuid.uuid4().hex[:12]
        self.node_tree = self._build_inner_tree()

    def copy(self, node: bpy.types.Node) -> None:
        if _share_inner_trees:
            return
        self.uid = uuid.uuid4().hex[:12]
        self.node_tree = self._build_inner_tree()
        self.state, self.message, self.progress = "IDLE", "", 0.0

    def update(self) -> None:
        """Links changed (Blender calls this on topology changes): refresh in the interface."""
        if not _share_inner_trees:
            request_update(self, None)

    def free(self) -> None:
        tree = self.node_tree
        if tree is None or tree.users > 1:  # still shown by an evaluator copy, or by the original
            return
        for image in self._images(tree):
            if image.users <= 1:
                bpy.data.images.remove(image)
        bpy.data.node_groups.remove(tree)

    def _build_inner_tree(self) -> bpy.types.NodeTree:
        tree = bpy.data.node_groups.new(f"{IMAGE_PREFIX} {self.bl_label} {self.uid}", "CompositorNodeTree")
        for spec in self.INPUTS:
            item = tree.interface.new_socket(spec.name, description=spec.description, in_out="INPUT",
                                             socket_type=SOCKET_TYPES[spec.kind])
            item.hide_value = True  # like native image inputs: a value would only hide a missing link
        for spec in self.OUTPUTS:
            tree.interface.new_socket(spec.name, description=spec.description, in_out="OUTPUT",
                                      socket_type=SOCKET_TYPES[spec.kind])
        nodes, links = tree.nodes, tree.links
        group_in, group_out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
        group_in.location, group_out.location = (-500, 0), (300, 0)
        for row, spec in enumerate(self.OUTPUTS):
            image = bpy.data.images.new(f"{IMAGE_PREFIX} {self.uid} {spec.name}", 8, 8, alpha=True, float_buffer=True)
            image.colorspace_settings.is_data = True  # the worker's pixels are already the compositor's own
            result = nodes.new("CompositorNodeImage")
            result.name = result.label = f"Result {spec.name}"
            result.image = image
            result.location = (-200, -300 * row)
            output = result.outputs["Image"]
            if spec.kind == "value":
                separate = nodes.new("CompositorNodeSeparateColor")
                separate.location = (50, -300 * row)
                links.new(output, separate.inputs[0])
                output = separate.outputs[0]
            links.new(output, group_out.inputs[spec.name])
        return tree

    @staticmethod
    def _images(tree: bpy.types.NodeTree) -> list[bpy.types.Image]:
        return [n.image for n in tree.nodes if n.bl_idname == "CompositorNodeImage" and n.image is not None]

    def _image(self, spec: Socket) -> bpy.types.Image:
        tree = self.node_tree
        node = tree.nodes.get(f"Result {spec.name}") if tree is not None else None
        if node is None or node.image is None:
            raise RefocusError(f"node '{self.name}' lost its inner node tree; delete it and add it again")
        return node.image

    def _set_pixels(self, outputs: dict[str, np.ndarray]) -> None:
        for spec in self.OUTPUTS:
            image = self._image(spec)
            pixels = _rgba(outputs[spec.key])
            h, w = pixels.shape[:2]
            if tuple(image.size) != (w, h):
                image.scale(w, h)
            image.pixels.foreach_set(np.ascontiguousarray(pixels[::-1]).ravel())  # Blender: bottom row first
            image.update()

    # -------------------------------------------------------------------------- results
    def show(self, outputs: dict[str, np.ndarray], note: str = "") -> None:
        """Show computed outputs: ``outputs[socket key]`` is (H, W, C) float32, top row first;
        ``note``: what the worker warned of (a fallback it took), shown on the node."""
        self._set_pixels(outputs)
        self.state, self.message, self.progress = "DONE", note, 1.0

    def fail(self, message: str, fallback: dict[str, np.ndarray], state: str = "ERROR") -> None:
        """Show ``fallback`` (the input passed through) instead of a result, and say why."""
        self.state, self.message, self.progress = state, message, 0.0
        self._set_pixels(fallback)

    def start(self) -> None:
        self.state, self.message, self.progress = "RUNNING", "", 0.0

    # -------------------------------------------------------------------------- parameters
    def device_name(self, scene: bpy.types.Scene, fallback: str = "auto") -> str:
        """The torch device name this node's op runs on (``fallback``: the add-on preference's, for GPU)."""
        choice = self.device
        if choice == "COMPOSITOR":
            choice = "GPU" if getattr(scene.render, "compositor_device", "CPU") == "GPU" else "CPU"
        return "cpu" if choice == "CPU" else (fallback if fallback != "cpu" else "auto")

    def parameters(self, ctx: FrameContext) -> dict[str, Any]:
        """JSON-ready parameters for the worker op at this frame; :class:`RefocusError` if unusable."""
        raise NotImplementedError

    # -------------------------------------------------------------------------- drawing
    def draw_label(self) -> str:
        if self.state == "RUNNING":
            return f"{self.bl_label} ({self.progress * 100:.0f}%)"
        return self.bl_label

    def draw_buttons(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        if self.state == "RUNNING":
            row = layout.row(align=True)
            row.progress(factor=self.progress, type="BAR", text=f"{self.progress * 100:.0f}%")
            row.operator("refocus.cancel", text="", icon="CANCEL")
        elif self.message or self.state == "CANCELLED":
            box = layout.box()
            icon = "ERROR" if self.state == "ERROR" else "INFO"
            for k, line in enumerate(_wrap(self.message or "cancelled", 34)):
                box.label(text=line, icon=icon if k == 0 else "BLANK1")
        self.draw_parameters(context, layout)

    def draw_buttons_ext(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        self.draw_buttons(context, layout)
        layout.prop(self, "device")
        layout.operator("refocus.update", icon="FILE_REFRESH")

    def draw_parameters(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        pass


def _rgba(values: np.ndarray) -> np.ndarray:
    """(H, W, C) with C in 1..4 to (H, W, 4) float32: one channel is repeated, alpha defaults to 1."""
    v = np.asarray(values, dtype=np.float32)
    if v.ndim == 2:
        v = v[..., None]
    h, w, c = v.shape
    if c == 4:
        return v
    out = np.ones((h, w, 4), dtype=np.float32)
    out[..., :3] = v[..., :3] if c >= 3 else v[..., :1]
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


# ------------------------------------------------------------------------------ lens parameters
SENSOR_FITS = (("AUTO", "Auto", "Fit the sensor width to the larger image side"),
               ("HORIZONTAL", "Horizontal", "Fit the sensor width to the image width"),
               ("VERTICAL", "Vertical", "Fit the sensor height to the image height"))


class SensorProperties:
    """Focal length and sensor (Blender's camera fields) as node properties: mixed into the nodes
    that turn pixels into metres."""

    focal_length: FloatProperty(name="Focal Length", default=50.0, min=1.0, soft_max=300.0, unit="CAMERA",
                                update=request_update, description="Lens focal length, millimetres")
    sensor_width: FloatProperty(name="Sensor", default=36.0, min=1.0, soft_max=100.0, unit="CAMERA",
                                update=request_update, description="Sensor width, millimetres")
    sensor_height: FloatProperty(name="Sensor Height", default=24.0, min=1.0, soft_max=100.0, unit="CAMERA",
                                 update=request_update, description="Sensor height (vertical fit), millimetres")
    sensor_fit: EnumProperty(name="Sensor Fit", items=SENSOR_FITS, default="AUTO", update=request_update)


class LensProperties(SensorProperties):
    """A camera's optics as node properties, or the scene camera's (mixed into nodes that need one)."""

    use_scene_camera: BoolProperty(
        name="Use Scene Camera", default=True, update=request_update,
        description="Take focal length, sensor, f-stop, aperture shape and focus (distance or object) from "
                    "the scene's active camera at each frame, so the node matches a Cycles depth-of-field render",
    )
    f_stop: FloatProperty(name="F-Stop", default=2.8, min=0.1, soft_max=64.0, step=10, precision=1,
                          update=request_update, description="Aperture f-number: lower is blurrier")
    focus_distance: FloatProperty(name="Focus Distance", default=2.0, min=0.0, soft_max=100.0, unit="LENGTH",
                                  update=request_update, description="Distance to the plane in focus")
    blades: IntProperty(name="Blades", default=0, min=0, max=16, update=request_update,
                        description="Aperture blades (0 for a round aperture, else at least 3)")
    rotation: FloatProperty(name="Rotation", default=0.0, subtype="ANGLE", update=request_update,
                            description="Rotation of the blades")
    ratio: FloatProperty(name="Ratio", default=1.0, min=0.01, soft_max=2.0, update=request_update,
                         description="Anamorphic aperture ratio")

    def lens(self, ctx: FrameContext) -> dict[str, Any]:
        """The lens parameters of the ``layered_defocus`` op for this frame (core checks their ranges)."""
        if self.use_scene_camera:
            return camera.scene_lens(ctx.scene, ctx.depsgraph)
        return {"focal_length_mm": self.focal_length, "f_stop": self.f_stop, "focus_distance_m": self.focus_distance,
                "sensor_width_mm": self.sensor_width, "sensor_height_mm": self.sensor_height,
                "sensor_fit": self.sensor_fit, "blades": self.blades, "rotation_deg": math.degrees(self.rotation),
                "ratio": self.ratio}

    def draw_lens(self, layout: bpy.types.UILayout, focus: bool = True) -> None:
        layout.prop(self, "use_scene_camera")
        col = layout.column(align=True)
        col.enabled = not self.use_scene_camera
        col.prop(self, "focal_length")
        col.prop(self, "f_stop")
        if focus:
            col.prop(self, "focus_distance")
        row = col.row(align=True)
        row.prop(self, "sensor_fit", text="")
        row.prop(self, "sensor_height" if self.sensor_fit == "VERTICAL" else "sensor_width", text="")
        row = col.row(align=True)
        row.prop(self, "blades")
        row.prop(self, "rotation")
        col.prop(self, "ratio")




def is_refocus_node(node: bpy.types.Node) -> bool:
    return isinstance(node, RefocusNode)
