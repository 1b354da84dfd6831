"""The op contract as the add-on reads it: core's op specs, shipped with the add-on as JSON.

``op_specs.json`` is written by ``python -m core.contract --write addon/op_specs.json`` (the
extension build does it, and a test keeps the committed copy equal to core's), so the add-on
builds each node's sockets from core's declared inputs and outputs, with explicit keys, without
importing core (Blender's Python has no torch). No bpy here either.

A node whose op the shipped specs lack, or the running worker does not serve (its ready message
lists its ops), is unavailable: greyed in the menu with the reason, and it fails with that reason
rather than compute anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SPECS_FILE = Path(__file__).with_name("op_specs.json")


@dataclass(frozen=True)
class Socket:
    """A node socket and the wire key the worker knows it by.

    Attributes:
        key: the spec's input or output key (``image``, ``slice_3``, ``focus_distance``).
        name: the socket's label.
        kind: ``color`` (RGBA image) or ``value`` (one channel: depth in metres, a distance).
        description: tooltip.
        required: inputs only; an unlinked required input is an error.
        passthrough: outputs only; the key of the input shown instead when the node has no valid
            result (magenta for colours, zero for values when there is none).
    """

    key: str
    name: str
    kind: str
    description: str = ""
    required: bool = True
    passthrough: str | None = None


@lru_cache(maxsize=1)
def shipped() -> dict[str, Any]:
    """The specs this add-on was built with: ``{"protocol": N, "ops": {name: spec JSON}}``."""
    return json.loads(SPECS_FILE.read_text(encoding="utf-8"))


def protocol() -> int:
    return int(shipped()["protocol"])


def has_op(op: str) -> bool:
    return op in shipped()["ops"]


def sockets(op: str) -> tuple[tuple[Socket, ...], tuple[Socket, ...]]:
    """The input and output sockets of ``op``, from its spec (empty if the shipped core lacks it)."""
    spec = shipped()["ops"].get(op)
    if spec is None:
        return (), ()
    inputs = []
    for i in spec["inputs"]:
        if i["repeat"] == 1:
            inputs.append(Socket(i["key"], i["label"], i["kind"], i["description"], i["required"]))
        else:
            inputs.extend(Socket(f"{i['key']}_{k}", f"{i['label']} {k}", i["kind"], i["description"], i["required"])
                          for k in range(1, i["repeat"] + 1))
    outputs = tuple(Socket(o["key"], o["label"], o["kind"], o["description"], passthrough=o["passthrough"])
                    for o in spec["outputs"])
    return tuple(inputs), outputs


def unavailable_reason(op: str, served: set[str] | None = None) -> str:
    """Why a node of ``op`` cannot compute ('' when it can): the shipped core, or the running worker
    (``served``: the ops of its ready message), lacks the op."""
    if not has_op(op):
        return f"this Refocus add-on's core has no '{op}' operation yet; update the add-on"
    if served is not None and op not in served:
        return f"the Refocus core the worker runs has no '{op}' operation; update it (or its Python)"
    return ""
