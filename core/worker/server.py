"""The worker's server: reads requests from stdin, runs them in order on one compute thread,
answers on stdout (see :mod:`core.worker.protocol` for the messages).

The main thread keeps reading while a request computes, so a cancel arrives during the work.
Every line is checked before it becomes a job: a line that is not a request object, an unknown
op, unknown inputs or parameters are answered with an error and the worker serves on. Anything a
library prints goes to stderr: stdout belongs to the protocol.

``REFOCUS_WORKER_STEP_PAUSE=<seconds>`` pauses after every progress step: slow motion for
watching a node's progress bar and trying Cancel on a tiny test scene.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..contract import PROTOCOL_VERSION
from ..errors import InputError
from .ops import registry
from .protocol import Cancelled, Job

MAX_LINE = 1 << 20  # a request is a few hundred bytes; a megabyte line is not one
HEARTBEAT_S = 1.0  # while a request computes, a heartbeat this often tells the add-on the worker lives


class BadRequest(Exception):
    """A line that is not a request this worker can serve: answered, never fatal."""


class Server:
    """Reads requests from ``stdin``, runs them in order on one thread, answers on ``stdout``."""

    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self.stdin, self.stdout = stdin, stdout
        self.lock = threading.Lock()
        self.jobs: "queue.Queue[Job | None]" = queue.Queue()
        self.cancelled: set[int] = set()
        self.current: Job | None = None
        self.pause = _step_pause()
        self.ops = registry()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(_finite(message), allow_nan=False, default=_json_default)
        with self.lock:
            self.stdout.write(line + "\n")
            self.stdout.flush()

    def ready(self) -> dict[str, Any]:
        import torch

        from .. import __version__

        core_path = str(Path(__file__).resolve().parents[1])  # which core runs: the add-on checks it
        return {"event": "ready", "protocol": PROTOCOL_VERSION, "core": __version__, "pid": os.getpid(),
                "core_path": core_path, "heartbeat_s": HEARTBEAT_S,
                "ops": sorted(self.ops), "specs": {n: op.spec.to_json() for n, op in sorted(self.ops.items())},
                "device": "cuda" if torch.cuda.is_available() else "cpu", "torch": torch.__version__}

    def serve(self) -> int:
        self.send(self.ready())
        thread = threading.Thread(target=self._compute, name="refocus-compute", daemon=True)
        thread.start()
        threading.Thread(target=self._heartbeat, name="refocus-heartbeat", daemon=True).start()
        for line in self.stdin:
            if not line.strip():
                continue
            try:
                request = parse_line(line)
            except BadRequest as exc:
                self.send({"id": None, "event": "error", "kind": "protocol", "message": str(exc)})
                continue
            op, rid = request["op"], request.get("id")
            if op == "shutdown":
                break
            if op == "cancel":
                self._cancel(request.get("target"))
                continue
            try:
                job = self._job(request)
            except InputError as exc:
                self.send({"id": rid, "event": "error", "kind": "input", "message": str(exc)})
                continue
            except BadRequest as exc:
                kind = "unsupported" if op not in self.ops else "protocol"
                self.send({"id": rid, "event": "error", "kind": kind, "message": str(exc)})
                continue
            self.jobs.put(job)
        self.jobs.put(None)
        thread.join(timeout=5.0)
        return 0

    def _job(self, request: dict[str, Any]) -> Job:
        op = self.ops.get(request["op"])
        if op is None:
            raise BadRequest(f"this Refocus core has no '{request['op']}' operation; it has {', '.join(sorted(self.ops))}")
        inputs, params, outputs = (request.get(k) or {} for k in ("inputs", "params", "outputs"))
        op.spec.check_inputs(inputs)
        if not isinstance(outputs, dict) or not all(isinstance(v, str) for v in outputs.values()):
            raise BadRequest("outputs must map each output to a file path")
        known = {o.key for o in op.spec.outputs}
        if not outputs:
            raise InputError(f"{op.spec.name}: the request names no output file; it gives {', '.join(sorted(known))}")
        unknown = sorted(set(outputs) - known)
        if unknown:
            raise InputError(f"{op.spec.name}: unknown output(s) {', '.join(unknown)}; it gives {', '.join(sorted(known))}")
        op.spec.parse(params)  # refused here, before it queues behind a long job
        declared = _declare(outputs)  # every output file checked now, written together at the end
        return Job(request.get("id"), op.spec.name, inputs, params, outputs, self.send, pause=self.pause,
                   declared=declared)

    def _cancel(self, target: Any) -> None:
        if not isinstance(target, int) or isinstance(target, bool):
            self.send({"id": None, "event": "error", "kind": "protocol",
                       "message": f"cancel needs the id of a request as its target, got {target!r}"})
            return
        self.cancelled.add(target)
        current = self.current
        if current is not None and current.id == target:
            current.cancel.set()

    def _heartbeat(self) -> None:
        """Say "still here" while a request computes (a stopped or hung process falls silent)."""
        while True:
            time.sleep(HEARTBEAT_S)
            job = self.current
            if job is not None:
                try:
                    self.send({"id": job.id, "event": "heartbeat"})
                except (OSError, ValueError):  # the add-on closed the pipe: nothing to tell
                    return

    def _compute(self) -> None:
        while (job := self.jobs.get()) is not None:
            if job.id in self.cancelled:
                self.send({"id": job.id, "event": "error", "kind": "cancelled", "message": "cancelled"})
                continue
            self.current = job
            start = time.perf_counter()
            try:
                op = self.ops[job.op]
                result = op.run(job, op.spec.parse(job.params))
                missing = sorted(set(job.outputs) - set(result.outputs))
                if missing:
                    raise InputError(f"{job.op} gave no {', '.join(missing)} for these inputs and parameters")
                declared = job.declared if job.declared is not None else _declare(job.outputs)
                written = {}
                with declared.writing():  # all outputs or none (core.outputs)
                    for out in declared:
                        key, values = out.what, result.outputs[out.what]
                        declared.write(out, lambda tmp, k=key, v=values: written.__setitem__(k, job.write(k, v, tmp)))
                self.send({"id": job.id, "event": "done", "outputs": written, "info": result.info,
                           "warnings": result.warnings, "seconds": round(time.perf_counter() - start, 4)})
            except Cancelled:
                self.send({"id": job.id, "event": "error", "kind": "cancelled", "message": "cancelled"})
            except InputError as exc:
                self.send({"id": job.id, "event": "error", "kind": "input", "message": str(exc)})
            except Exception as exc:  # anything else is a bug (or memory ran out): report it, keep serving
                from ..memory import is_out_of_memory

                if is_out_of_memory(exc):
                    self.send({"id": job.id, "event": "error", "kind": "input", "message": "out of memory: the "
                               "frame is too large for this machine; lower the resolution"})
                    continue
                traceback.print_exc(file=sys.stderr)
                self.send({"id": job.id, "event": "error", "kind": "internal",
                           "message": f"{type(exc).__name__}: {exc}"})
            finally:
                self.current = None


def _declare(outputs: dict[str, str]):
    """The request's output files as a checked core.outputs.OutputSet (``what`` is the output key)."""
    from ..outputs import OutputSet

    declared = OutputSet()
    for key, path in outputs.items():
        declared.add(path, (".npy",), key)
    return declared


def parse_line(line: str) -> dict[str, Any]:
    """One request line as a JSON object with an ``op``; :class:`BadRequest` for anything else."""
    if len(line) > MAX_LINE:
        raise BadRequest(f"a request line of {len(line)} bytes is too long")
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"not a JSON request: {str(exc)[:200]}") from None
    if not isinstance(request, dict):
        raise BadRequest(f"a request is a JSON object, got {type(request).__name__}")
    if not isinstance(request.get("op"), str):
        raise BadRequest("a request needs an 'op' string")
    rid = request.get("id")
    if rid is not None and (not isinstance(rid, int) or isinstance(rid, bool)):
        raise BadRequest(f"a request's id must be a whole number, got {rid!r}")
    return request


def _step_pause() -> float:
    text = os.environ.get("REFOCUS_WORKER_STEP_PAUSE", "").strip()
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        print(f"Refocus worker: ignoring REFOCUS_WORKER_STEP_PAUSE={text!r} (not a number of seconds)",
              file=sys.stderr)
        return 0.0


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as a string ("inf"): JSON has no infinity."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} to the add-on")


def main() -> int:
    # The protocol owns the real stdout; prints from any library land on stderr instead.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return Server(sys.stdin, protocol_out).serve()


if __name__ == "__main__":
    raise SystemExit(main())
