"""The compositor tree as the evaluator sees it, and the copies of it that feed Refocus nodes.

Python cannot read pixels out of a running compositor, but the compositor writes them to files
through File Output nodes, at each input's own size and to the bit. So a Refocus node's inputs are
*probed*: a copy of the tree in which every output is removed and each linked input of that node
feeds a File Output node instead. Rendering the copy composites exactly the pixels the node would
receive (Image nodes, sequences, movies, Movie Clips, any chain of native nodes, other Refocus
nodes), and nothing more: only what reaches a File Output is computed.

A single value (a Value node) has no size, so File Output writes nothing for it; such an input
is probed again as the composite of a copy instead (:func:`value_probe_tree`), which Blender
fills with the value.

Render Layers are the exception: their pixels exist only inside a render. The add-on's helper
scene renders the passes the tree uses into files (:func:`pass_export_tree`), and
:func:`with_pass_images` makes the copy of the tree that reads them instead, which probes use and
which a render job composites from, so the scene is rendered once, not twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import bpy

from .errors import RefocusError
from .nodes import RefocusNode, is_refocus_node, shared_copies

RENDER_LAYERS = "CompositorNodeRLayers"
OUTPUT_NODES = ("NodeGroupOutput", "CompositorNodeViewer", "CompositorNodeOutputFile")
FILE_ITEMS = {"color": ("RGBA", "RGBA"), "value": ("FLOAT", "BW"), "vector": ("VECTOR", "RGB")}  # item type, mode
SOCKET_KINDS = {"RGBA": "color", "VALUE": "value", "VECTOR": "vector"}
INTERNAL_PREFIX = ".Refocus"


def refocus_nodes(tree: bpy.types.NodeTree) -> list[RefocusNode]:
    return [n for n in tree.nodes if is_refocus_node(n) and not n.mute]


def _incoming(tree: bpy.types.NodeTree) -> dict[str, list[bpy.types.NodeLink]]:
    links: dict[str, list[bpy.types.NodeLink]] = {}
    for link in tree.links:
        if link.is_valid and not link.is_muted:
            links.setdefault(link.to_node.name, []).append(link)
    return links


def upstream(tree: bpy.types.NodeTree, node: bpy.types.Node, incoming: dict | None = None) -> list[bpy.types.Node]:
    """Every node whose output reaches ``node`` through links (``node`` itself excluded)."""
    incoming = _incoming(tree) if incoming is None else incoming
    seen: dict[str, bpy.types.Node] = {}
    stack = [node.name]
    while stack:
        for link in incoming.get(stack.pop(), ()):
            source = link.from_node
            if source.name not in seen:
                seen[source.name] = source
                stack.append(source.name)
    return list(seen.values())


def feeding_outputs(tree: bpy.types.NodeTree, incoming: dict | None = None) -> list[RefocusNode]:
    """Unmuted Refocus nodes whose result reaches an output (Group Output, Viewer, File Output)."""
    incoming = _incoming(tree) if incoming is None else incoming
    found: dict[str, RefocusNode] = {}
    for output in tree.nodes:
        if output.bl_idname in OUTPUT_NODES and not output.mute:
            for node in upstream(tree, output, incoming):
                if is_refocus_node(node) and not node.mute:
                    found[node.name] = node
    return [n for n in tree.nodes if n.name in found]


def evaluation_order(tree: bpy.types.NodeTree, outputs_only: bool = False) -> list[RefocusNode]:
    """The tree's active Refocus nodes, each after every Refocus node upstream of it.

    ``outputs_only``: only those whose result reaches an output, as a render needs (like Blender's
    own nodes, one left unlinked costs a render nothing); interactive updates compute them all, so
    each node shows its own result."""
    incoming = _incoming(tree)
    nodes = feeding_outputs(tree, incoming) if outputs_only else refocus_nodes(tree)
    needs = {n.name: {u.name for u in upstream(tree, n, incoming) if is_refocus_node(u) and not u.mute}
             for n in nodes}
    order: list[RefocusNode] = []
    done: set[str] = set()
    while len(order) < len(nodes):
        ready = [n for n in nodes if n.name not in done and needs[n.name] <= done]
        if not ready:  # a cycle: Blender marks such links invalid, so this is only a safeguard
            ready = [n for n in nodes if n.name not in done]
        for n in ready:
            order.append(n)
            done.add(n.name)
    return order


def refocus_sources(tree: bpy.types.NodeTree, node: bpy.types.Node) -> list[RefocusNode]:
    """Refocus nodes upstream of ``node``."""
    return [u for u in upstream(tree, node) if is_refocus_node(u) and not u.mute]


def render_layers_upstream(tree: bpy.types.NodeTree, nodes: Iterable[bpy.types.Node]) -> list[bpy.types.Node]:
    """Render Layers nodes that feed any of ``nodes``."""
    incoming = _incoming(tree)
    found: dict[str, bpy.types.Node] = {}
    for node in nodes:
        for source in upstream(tree, node, incoming):
            if source.bl_idname == RENDER_LAYERS and not source.mute:
                found[source.name] = source
    return list(found.values())


def source_scene(node: bpy.types.Node, scene: bpy.types.Scene) -> bpy.types.Scene:
    """The scene a Render Layers node renders (its own setting, else the compositing scene)."""
    return node.scene if node.scene is not None else scene


def _copy(tree: bpy.types.NodeTree, name: str) -> bpy.types.NodeTree:
    with shared_copies():
        copy = tree.copy()
    copy.name = f"{INTERNAL_PREFIX} {name}"
    return copy


@dataclass(frozen=True)
class PassUse:
    """A Render Layers output the tree uses: the node, the scene and view layer it renders, the pass."""

    node: str
    scene: str
    layer: str
    socket: str
    kind: str  # "color", "value" or "vector"

    @property
    def key(self) -> str:
        return f"{self.node}-{self.socket}"


def render_layer_uses(tree: bpy.types.NodeTree, scene: bpy.types.Scene,
                      nodes: Iterable[bpy.types.Node]) -> list[PassUse]:
    """Every linked output of the Render Layers nodes whose scene feeds any of ``nodes``.

    All of that scene's Render Layers are listed, not only those upstream of ``nodes``: the tree
    composited in their place must not render the scene again for the others.
    """
    scenes = {source_scene(rl, scene).name for rl in render_layers_upstream(tree, nodes)}
    uses = []
    for rl in tree.nodes:
        if rl.bl_idname != RENDER_LAYERS or rl.mute or source_scene(rl, scene).name not in scenes:
            continue
        for output in rl.outputs:
            if any(link.is_valid for link in output.links):
                uses.append(PassUse(rl.name, source_scene(rl, scene).name, rl.layer, output.name,
                                    SOCKET_KINDS.get(output.type, "color")))
    return uses


def with_pass_images(tree: bpy.types.NodeTree, images: dict[str, bpy.types.Image],
                     uses: Iterable[PassUse]) -> bpy.types.NodeTree:
    """A copy of ``tree`` in which each used Render Layers output reads ``images[use.key]`` instead."""
    copy = _copy(tree, f"passes {tree.name}")
    by_node: dict[str, list[PassUse]] = {}
    for use in uses:
        by_node.setdefault(use.node, []).append(use)
    for name, node_uses in by_node.items():
        rl = copy.nodes[name]
        for row, use in enumerate(node_uses):
            reader = copy.nodes.new("CompositorNodeImage")
            reader.image = images[use.key]
            reader.name = reader.label = f"{INTERNAL_PREFIX} {name} {use.socket}"
            reader.location = (rl.location.x, rl.location.y - 120 * row)
            output = reader.outputs["Image"]
            if use.kind == "value":  # the file holds V in R, G and B: take it back exactly
                separate = copy.nodes.new("CompositorNodeSeparateColor")
                copy.links.new(output, separate.inputs[0])
                output = separate.outputs[0]
            for link in [link for link in copy.links if link.from_node == rl and link.from_socket.name == use.socket]:
                copy.links.new(output, link.to_socket)
        copy.nodes.remove(rl)
    return copy


def pass_export_tree(uses: Iterable[PassUse], helper: bpy.types.Scene, directory: Path) -> tuple[bpy.types.NodeTree, dict[str, Path]]:
    """A tree for ``helper`` that writes each used pass of its own Render Layers to an EXR.

    Returns the tree and, per use key, the folder its file is written into.
    """
    tree = bpy.data.node_groups.new(f"{INTERNAL_PREFIX} export {helper.name}", "CompositorNodeTree")
    layers: dict[str, bpy.types.Node] = {}
    folders: dict[str, Path] = {}
    for use in uses:
        rl = layers.get(use.layer)
        if rl is None:
            rl = layers[use.layer] = tree.nodes.new(RENDER_LAYERS)
            rl.scene, rl.layer = helper, use.layer
        if use.socket not in rl.outputs or not rl.outputs[use.socket].enabled:
            raise RefocusError(f"view layer '{use.layer}' renders no {use.socket} pass; enable it in the "
                               "View Layer properties")
        folders[use.key] = directory / use.key
        tree.links.new(rl.outputs[use.socket], file_output(tree, folders[use.key], use.key, use.kind))
    return tree, folders


def file_output(tree: bpy.types.NodeTree, folder: Path, name: str, kind: str) -> bpy.types.NodeSocket:
    """A File Output node writing one 32-bit single-layer EXR into ``folder``; returns its input.

    Channels: RGBA for colours, V for values, RGB for vectors. Uncompressed: a scratch file read once.
    """
    item_type, colour_mode = FILE_ITEMS[kind]
    writer = tree.nodes.new("CompositorNodeOutputFile")
    writer.format.media_type = "IMAGE"
    writer.format.file_format = "OPEN_EXR"
    writer.format.color_mode = colour_mode
    writer.format.color_depth = "32"
    writer.format.exr_codec = "NONE"
    writer.directory = str(folder) + "/"
    writer.file_name = name
    writer.file_output_items.new(item_type, name)
    return writer.inputs[name]


def linked_inputs(node: RefocusNode) -> list[str]:
    """Names of ``node``'s inputs that something is linked to."""
    return [spec.name for spec in node.INPUTS
            if any(link.is_valid and not link.is_muted for link in node.inputs[spec.name].links)]


def _probe_copy(tree: bpy.types.NodeTree, node: RefocusNode) -> bpy.types.NodeTree:
    copy = _copy(tree, f"probe {node.name}")
    for output in [n for n in copy.nodes if n.bl_idname in OUTPUT_NODES]:
        copy.nodes.remove(output)
    return copy


def _source_socket(node: bpy.types.Node, name: str) -> bpy.types.NodeSocket | None:
    links = [link for link in node.inputs[name].links if link.is_valid and not link.is_muted]
    return links[0].from_socket if links else None


def probe_tree(tree: bpy.types.NodeTree, node: RefocusNode, directory: Path) -> tuple[bpy.types.NodeTree, dict[str, Path]]:
    """A copy of ``tree`` that writes each linked input of ``node`` to its own EXR under ``directory``.

    Returns the copy and, per input key, the folder its File Output node writes into: one 32-bit
    single-layer EXR, channels RGBA (colours) or V (values). A File Output per input keeps each
    input at its own size, so a depth map of the wrong size is reported rather than resampled.
    """
    copy = _probe_copy(tree, node)
    target = copy.nodes[node.name]
    folders: dict[str, Path] = {}
    for spec in node.INPUTS:
        source = _source_socket(target, spec.name)
        if source is None:
            continue
        folders[spec.key] = directory / spec.key
        copy.links.new(source, file_output(copy, folders[spec.key], spec.key, spec.kind))
    return copy, folders


def value_probe_tree(tree: bpy.types.NodeTree, node: RefocusNode, name: str) -> bpy.types.NodeTree:
    """A copy of ``tree`` whose composite is ``node``'s input ``name``.

    For inputs that are single values (a Value node, maths on values): a File Output writes
    nothing for them, but the composite of a single value is a frame filled with it.
    """
    copy = _probe_copy(tree, node)
    source = _source_socket(copy.nodes[node.name], name)
    output = copy.nodes.new("NodeGroupOutput")
    if source is not None and copy.interface.items_tree:
        copy.links.new(source, output.inputs[0])
    return copy
