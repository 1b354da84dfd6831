"""The Refocus worker: a process that runs core for the Blender add-on, one request at a time.

Blender's own Python has no torch, and a refocus must never freeze its interface, so the add-on
starts this module with the project's Python (``python -m core.worker``) and talks to it over
stdin/stdout, one JSON object per line. Pixels never travel through the pipe: inputs are EXR files
(what the compositor itself wrote through File Output nodes), results are ``.npy`` files, both in a
folder the add-on owns.

Protocol (version :data:`PROTOCOL`):

* On start the worker prints ``{"event": "ready", "protocol": 1, "ops": [...], "device": "cpu", ...}``.
* A request is ``{"id": 7, "op": "layered_defocus", "inputs": {...}, "params": {...}, "outputs": {...}}``:

  - ``inputs``: input name -> ``{"path": "in.exr"}`` (channels R, G, B, A or V), optionally with
    ``"layer"`` to pick one layer of a multilayer EXR; an input that is not linked is left out;
  - ``outputs``: output name -> the ``.npy`` path to write, (H, W, C) float32, top row first.

* Answers carry the request's id: ``{"event": "progress", "done": 3, "total": 40}`` any number of
  times, then exactly one of ``{"event": "done", "outputs": {name: {"path", "shape"}}, "info", "seconds"}``
  or ``{"event": "error", "kind": ..., "message": ...}``, ``kind`` being ``input`` (bad input, a
  sentence for the user), ``cancelled``, ``unsupported`` (no such op in this core) or ``internal``.
* ``{"op": "cancel", "target": 7}`` stops request 7 at its next progress step (or before it starts);
  ``{"op": "shutdown"}`` (or closing stdin) ends the worker.

Requests run one after another on a compute thread while the main thread keeps reading stdin, so a
cancel arrives while the work is under way. Anything a library prints goes to stderr: stdout belongs
to the protocol.

``REFOCUS_WORKER_STEP_PAUSE=<seconds>`` in the worker's environment pauses after every progress
step: slow motion for watching a node's progress bar and trying Cancel on a tiny test scene, where
a real job finishes faster than the interface polls.

Ops live in :data:`OPS` (op name -> function); the depth nodes register theirs the same way.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from .worker_ops_depth import focal_stack_depth_op, stereo_depth_op

PROTOCOL = 1
CHANNEL_ORDER = ("R", "G", "B", "A", "V", "X", "Y", "Z")


class Cancelled(Exception):
    """Raised inside a running op when its request was cancelled."""


@dataclass
class Job:
    """One request being served: its fields plus the way back to the add-on.

    ``progress(done, total)`` reports and raises :class:`Cancelled` once the add-on cancels.
    """

    id: int
    op: str
    inputs: dict[str, Any]
    params: dict[str, Any]
    outputs: dict[str, str]
    send: Callable[[dict[str, Any]], None]
    cancel: threading.Event = field(default_factory=threading.Event)
    info: dict[str, Any] = field(default_factory=dict)  # figures for the add-on (e.g. the focus used)

    pause: float = 0.0  # seconds after each progress step (REFOCUS_WORKER_STEP_PAUSE)

    def progress(self, done: int, total: int) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        self.send({"id": self.id, "event": "progress", "done": int(done), "total": int(total)})
        if self.pause > 0.0 and done < total:
            self.cancel.wait(self.pause)

    def input(self, name: str, required: bool = True) -> np.ndarray | None:
        """Input ``name`` as (H, W, C) float32, or ``None`` if it is optional and not linked."""
        from .errors import check

        spec = self.inputs.get(name)
        if spec is None:
            check(not required, f"the {name.replace('_', ' ')} input is not connected")
            return None
        return read_layer(spec["path"], spec.get("layer"))

    def write(self, name: str, values: np.ndarray) -> dict[str, Any]:
        """Write output ``name`` (H, W, C) float32 to the path the add-on asked for."""
        from .imageio import atomic_write

        values = np.ascontiguousarray(values, dtype=np.float32)
        with atomic_write(self.outputs[name]) as tmp, open(tmp, "wb") as f:
            np.save(f, values)
        return {"path": self.outputs[name], "shape": list(values.shape)}


def read_layer(path: str, layer: str | None = None) -> np.ndarray:
    """Layer ``layer`` of an EXR (channels ``layer.R`` ... or ``layer.V``) as (H, W, C) float32.

    ``None`` takes every channel of the file. Channels come in RGBA, then V, then XYZ order.
    """
    from .errors import check
    from .imageio import read_exr_channels

    channels = read_exr_channels(path)
    if layer:
        prefix = layer + "."
        picked = {name[len(prefix):]: v for name, v in channels.items() if name.startswith(prefix)}
    else:
        picked = {name.rpartition(".")[2]: v for name, v in channels.items()}
    check(bool(picked), f"{path} has no layer {layer!r}")
    order = sorted(picked, key=lambda c: (CHANNEL_ORDER.index(c) if c in CHANNEL_ORDER else 99, c))
    return np.stack([picked[c] for c in order], axis=-1).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------- ops
def _device(params: dict[str, Any]) -> Any:
    from .commands.common import pick_device

    return pick_device(params.get("device", "auto"))


def _lens(params: dict[str, Any]) -> Any:
    from .optics import Lens

    return Lens(**params["lens"])


def _focus_from_input(values: np.ndarray) -> float:
    """A focus distance wired in as an image (a Focus Track output, a Value node): its median."""
    from .errors import check

    v = values[..., 0]
    v = v[np.isfinite(v) & (v > 0)]
    check(v.size > 0, "the focus distance input holds no positive value")
    return float(np.median(v))


def layered_defocus_op(job: Job) -> dict[str, Any]:
    """Refocus the ``image`` input with its ``depth`` (metres) through ``params["lens"]``.

    Params: ``lens`` (core.optics.Lens fields), optional ``focus_point`` [x, y] in [0, 1] (from the
    top-left) to focus on the depth there, ``pixel_aspect``, ``k_max``, ``step``, ``device``. A
    linked ``focus_distance`` input overrides the lens's focus distance.
    """
    import torch

    from .commands.common import image_to_tensor, map_to_tensor, tensor_to_image
    from .defocus import DEFAULT_K_MAX, refocus
    from .errors import check, check_depth
    from .optics import focus_distance_at

    image = job.input("image")
    depth_map = job.input("depth")
    focus_input = job.input("focus_distance", required=False)
    assert image is not None and depth_map is not None
    check(image.shape[:2] == depth_map.shape[:2],
          f"depth is {depth_map.shape[1]}x{depth_map.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}")
    device = _device(job.params)
    lens = _lens(job.params)
    depth = map_to_tensor(depth_map[..., 0], device)
    check_depth(depth)
    if focus_input is not None:
        lens = lens.with_focus(_focus_from_input(focus_input))
    elif job.params.get("focus_point") is not None:
        fx, fy = job.params["focus_point"]
        h, w = depth_map.shape[:2]
        x, y = min(int(fx * w), w - 1), min(int(fy * h), h - 1)
        lens = lens.with_focus(focus_distance_at(depth, x, y, radius=2))
    lens.validate()
    with torch.no_grad():
        out = refocus(image_to_tensor(image, device), depth, lens, k_max=int(job.params.get("k_max", DEFAULT_K_MAX)),
                      step=float(job.params.get("step", 1.0)), pixel_aspect=float(job.params.get("pixel_aspect", 1.0)),
                      progress=job.progress)
    job.info["focus_distance"] = lens.focus_distance
    return {"image": job.write("image", tensor_to_image(out))}


def echo_op(job: Job) -> dict[str, Any]:
    """Copy the ``image`` input to the ``image`` output after ``params["steps"]`` progress steps of
    ``params["seconds"]`` each: a cheap, cancellable op for checking the pipeline end to end."""
    image = job.input("image")
    steps = int(job.params.get("steps", 1))
    for k in range(steps):
        time.sleep(float(job.params.get("seconds", 0.0)))
        job.progress(k + 1, steps)
    return {"image": job.write("image", image)}


OPS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "layered_defocus": layered_defocus_op,
    "echo": echo_op,
    "stereo_depth": stereo_depth_op, "focal_stack_depth": focal_stack_depth_op,
}


# -------------------------------------------------------------------------------------- server
class Server:
    """Reads requests from ``stdin``, runs them in order on one thread, answers on ``stdout``."""

    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self.stdin, self.stdout = stdin, stdout
        self.lock = threading.Lock()
        self.jobs: "queue.Queue[Job | None]" = queue.Queue()
        self.cancelled: set[int] = set()
        self.current: Job | None = None
        self.pause = _step_pause()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, allow_nan=False, default=_json_default)
        with self.lock:
            self.stdout.write(line + "\n")
            self.stdout.flush()

    def serve(self) -> int:
        import torch

        from . import __version__

        cuda = torch.cuda.is_available()
        self.send({"event": "ready", "protocol": PROTOCOL, "core": __version__, "pid": os.getpid(),
                   "ops": sorted(OPS), "device": "cuda" if cuda else "cpu", "torch": torch.__version__})
        thread = threading.Thread(target=self._compute, name="refocus-compute", daemon=True)
        thread.start()
        for line in self.stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                rid = request.get("id")
                op = request["op"]
            except (ValueError, KeyError, AttributeError) as exc:
                self.send({"id": None, "event": "error", "kind": "internal", "message": f"bad request line: {exc}"})
                continue
            if op == "shutdown":
                break
            if op == "cancel":
                self._cancel(int(request["target"]))
                continue
            self.jobs.put(Job(rid, op, request.get("inputs") or {}, request.get("params") or {},
                              request.get("outputs") or {}, self.send, pause=self.pause))
        self.jobs.put(None)
        thread.join(timeout=5.0)
        return 0

    def _cancel(self, target: int) -> None:
        self.cancelled.add(target)
        current = self.current
        if current is not None and current.id == target:
            current.cancel.set()

    def _compute(self) -> None:
        from .errors import InputError

        while (job := self.jobs.get()) is not None:
            if job.id in self.cancelled:
                self.send({"id": job.id, "event": "error", "kind": "cancelled", "message": "cancelled"})
                continue
            self.current = job
            start = time.perf_counter()
            try:
                fn = OPS.get(job.op)
                if fn is None:
                    self.send({"id": job.id, "event": "error", "kind": "unsupported",
                               "message": f"this Refocus core has no '{job.op}' operation yet"})
                    continue
                result = fn(job)
                self.send({"id": job.id, "event": "done", "outputs": result, "info": job.info,
                           "seconds": round(time.perf_counter() - start, 4)})
            except Cancelled:
                self.send({"id": job.id, "event": "error", "kind": "cancelled", "message": "cancelled"})
            except InputError as exc:
                self.send({"id": job.id, "event": "error", "kind": "input", "message": str(exc)})
            except Exception as exc:  # anything else is a bug: report it, keep serving
                traceback.print_exc(file=sys.stderr)
                self.send({"id": job.id, "event": "error", "kind": "internal",
                           "message": f"{type(exc).__name__}: {exc}"})
            finally:
                self.current = None


def _step_pause() -> float:
    text = os.environ.get("REFOCUS_WORKER_STEP_PAUSE", "").strip()
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        print(f"Refocus worker: ignoring REFOCUS_WORKER_STEP_PAUSE={text!r} (not a number of seconds)",
              file=sys.stderr)
        return 0.0


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} to the add-on")


def main() -> int:
    # The protocol owns the real stdout; prints from any library land on stderr instead.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return Server(sys.stdin, protocol_out).serve()


if __name__ == "__main__":
    raise SystemExit(main())
