"""The worker's protocol: one JSON object per line each way, and the job a request becomes.

* On start the worker prints ``{"event": "ready", "protocol": 2, "ops": [...], "specs": {...},
  "device": "cpu", ...}``; ``specs`` holds every op's spec as :meth:`core.contract.OpSpec.to_json`
  gives it, so the add-on can tell which of its nodes this core serves.
* A request is ``{"id": 7, "op": "layered_defocus", "inputs": {...}, "params": {...}, "outputs": {...}}``:

  - ``inputs``: input key (the spec's) -> ``{"path": "in.exr"}`` (channels R, G, B, A or V),
    optionally with ``"layer"`` to pick one layer of a multilayer EXR; an unlinked input is left out;
  - ``params``: the op's parameter dataclass as JSON (unknown keys and wrong types are refused);
  - ``outputs``: output key -> the ``.npy`` path to write, (H, W, C) float32, top row first.

* Answers carry the request's id: ``{"event": "progress", "done": 3, "total": 40}`` any number of
  times, then exactly one of ``{"event": "done", "outputs": {key: {"path", "shape"}}, "info",
  "warnings", "seconds"}`` or ``{"event": "error", "kind": ..., "message": ...}``, ``kind`` being
  ``input`` (bad input, a sentence for the user), ``cancelled``, ``unsupported`` (no such op in
  this core), ``protocol`` (a line that is not a request) or ``internal`` (a bug).
* While a request computes, ``{"id": 7, "event": "heartbeat"}`` comes every ``heartbeat_s`` seconds
  (given in the ready message, with ``core_path``, the folder of the core that runs): a worker
  that falls silent is stopped or hung, and the add-on gives up on it.
* ``{"op": "cancel", "target": 7}`` stops request 7 at its next progress step (or before it
  starts); ``{"op": "shutdown"}`` (or closing stdin) ends the worker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..contract import PROTOCOL_VERSION
from ..errors import check

__all__ = ["PROTOCOL_VERSION", "CHANNEL_ORDER", "Cancelled", "Job", "read_layer"]

CHANNEL_ORDER = ("R", "G", "B", "A", "V", "X", "Y", "Z")


class Cancelled(Exception):
    """Raised inside a running op when its request was cancelled."""


@dataclass
class Job:
    """One request being served: its fields plus the way back to the add-on.

    ``progress(done, total)`` reports and raises :class:`Cancelled` once the add-on cancels.
    """

    id: int | None
    op: str
    inputs: dict[str, Any]
    params: dict[str, Any]
    outputs: dict[str, str]
    send: Callable[[dict[str, Any]], None]
    cancel: threading.Event = field(default_factory=threading.Event)
    pause: float = 0.0  # seconds after each progress step (REFOCUS_WORKER_STEP_PAUSE)
    declared: Any = None  # the outputs as a checked core.outputs.OutputSet (the server's)

    def progress(self, done: int, total: int) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        self.send({"id": self.id, "event": "progress", "done": int(done), "total": int(total)})
        if self.pause > 0.0 and done < total:
            self.cancel.wait(self.pause)

    def has(self, key: str) -> bool:
        return key in self.inputs

    def input(self, key: str) -> np.ndarray:
        """Input ``key`` as (H, W, C) float32 (the server has checked required inputs are there)."""
        entry = self.inputs.get(key)
        check(entry is not None, f"the {key.replace('_', ' ')} input is not connected")
        check(isinstance(entry, dict) and isinstance(entry.get("path"), str),
              f"input {key} must be an object with a file path")
        layer = entry.get("layer")
        check(layer is None or isinstance(layer, str), f"input {key}: the layer must be a name")
        return read_layer(entry["path"], layer)

    def write(self, key: str, values: np.ndarray, path: Any = None) -> dict[str, Any]:
        """Write output ``key`` (H, W, C) float32 to the path the add-on asked for (or to ``path``,
        the temporary file a core.outputs.OutputSet renames there)."""
        from ..imageio import atomic_write

        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.ndim == 2:
            values = values[..., None]
        with atomic_write(path if path is not None else self.outputs[key]) as tmp, open(tmp, "wb") as f:
            np.save(f, values)
        return {"path": self.outputs[key], "shape": list(values.shape)}


def read_layer(path: str, layer: str | None = None) -> np.ndarray:
    """Layer ``layer`` of an EXR (channels ``layer.R`` ... or ``layer.V``) as (H, W, C) float32.

    ``None`` takes every channel of the file. Channels come in RGBA, then V, then XYZ order.
    """
    from ..imageio import read_exr_channels

    channels = read_exr_channels(path)
    if layer:
        prefix = layer + "."
        picked = {name[len(prefix):]: v for name, v in channels.items() if name.startswith(prefix)}
    else:
        picked = {name.rpartition(".")[2]: v for name, v in channels.items()}
    check(bool(picked), f"{path} has no layer {layer!r}")
    order = sorted(picked, key=lambda c: (CHANNEL_ORDER.index(c) if c in CHANNEL_ORDER else 99, c))
    return np.stack([picked[c] for c in order], axis=-1).astype(np.float32, copy=False)
