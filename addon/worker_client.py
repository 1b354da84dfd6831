"""The add-on's side of the worker: starts ``python -m core.worker`` and exchanges JSON lines with it.

The worker (``core/worker/protocol.py``, which documents the protocol) runs in the project's Python
environment, so Blender's Python never imports torch and a long refocus never blocks Blender's
interface: requests are sent and their answers collected without waiting (:meth:`WorkerClient.pump`,
driven by a timer), or waited for when a render needs the result before it can composite
(:meth:`WorkerClient.wait`).

Two threads read the worker's stdout and stderr into queues, so neither pipe can fill up and stall
it. When the worker dies (a crash, out of memory, killed), every request still open fails with a
:class:`RefocusError` quoting its last lines on stderr, and the next request starts a fresh worker.
A worker that stops talking (stopped with SIGSTOP, hung, swapped to a halt) is caught the same
way: it sends a heartbeat every second while it computes, and after :data:`SILENCE_TIMEOUT_S`
without a word it is killed and its requests fail, so a render goes on without the node.

The worker is started in isolated mode (``python -I``: neither the working directory, nor
``$PYTHONPATH``, nor the user's site-packages are on its path) with the core's folder given
explicitly, so a ``core/`` folder in Blender's working directory cannot run instead of the real
core; the ready message names the core that runs, and it must be the expected one. Installed from the
full zip with no Worker Python set, the worker runs on Blender's own Python: the core is the zip's
``vendor/core`` and the folders where Blender unpacked the zip's wheels go on its path, before its
site-packages (as Blender orders them for itself).
"""

from __future__ import annotations

import atexit
import collections
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import contract
from .errors import RefocusError
from .preferences import bundled_core_root, bundled_python, repository_root, wheel_site_packages, worker_python

PROTOCOL = contract.protocol()  # core.contract.PROTOCOL_VERSION, shipped in op_specs.json
START_TIMEOUT_S = 180.0  # the first import of torch after installation can take a minute
SILENCE_TIMEOUT_S = 60.0  # a computing worker sends a heartbeat every second; a minute of silence is a hang
# Run by ``python -I -c``: put the given repository (if any) first on the path, and the wheel folders
# (if any) before the site-packages, then serve.
BOOTSTRAP = ("import sys\n"
             "root = sys.argv[1]\n"
             "if len(sys.argv) > 2:\n"
             "    import site\n"
             "    packages = set(site.getsitepackages())\n"
             "    at = next((i for i, p in enumerate(sys.path) if p in packages), len(sys.path))\n"
             "    sys.path[at:at] = sys.argv[2:]\n"
             "if root:\n"
             "    sys.path.insert(0, root)\n"
             "from core.worker.server import main\n"
             "raise SystemExit(main())\n")
STDERR_LINES = 40

ProgressFn = Callable[[int, int], None]


@dataclass
class Request:
    """One request in flight: its progress so far and, once finished, its result or error."""

    id: int
    op: str
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: RefocusError | None = None
    kind: str = ""  # the worker's error kind: input, cancelled, unsupported, internal, crashed
    started: float = field(default_factory=time.perf_counter)

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class WorkerClient:
    """A running worker process and the requests sent to it."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.ids = itertools.count(1)
        self.requests: dict[int, Request] = {}
        self.events: "queue.Queue[dict[str, Any] | None]" = queue.Queue()
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.info: dict[str, Any] = {}
        self.start_seconds = 0.0
        self.process: subprocess.Popen[str] | None = None
        self.exited = False
        self.last_heard = time.monotonic()  # when the worker last said anything

    # ------------------------------------------------------------------------------ lifetime
    def start(self) -> None:
        """Start the worker and wait until it reports ready (torch imported, device chosen)."""
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)  # Blender's, which would hijack the worker's own standard library
        root = repository_root() or bundled_core_root()
        # Blender's own Python has no torch: it gets the zip's wheels (a Worker Python of its own needs none).
        wheels = wheel_site_packages() if root is not None and self.python == bundled_python() else []
        begin = time.perf_counter()
        try:
            # -I: no working directory, $PYTHONPATH or user site on the path (a core/ folder beside
            # the .blend must not run); the repository, when the add-on runs from one, is given explicitly.
            self.process = subprocess.Popen(
                [self.python, "-I", "-u", "-c", BOOTSTRAP, str(root) if root is not None else "", *wheels],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                encoding="utf-8", bufsize=1, env=env, cwd=str(root) if root is not None else None,
            )
        except OSError as exc:
            raise RefocusError(f"cannot start the worker Python {self.python}: {exc.strerror or exc}") from None
        threading.Thread(target=self._read_stdout, name="refocus-worker-out", daemon=True).start()
        self.stderr_reader = threading.Thread(target=self._read_stderr, name="refocus-worker-err", daemon=True)
        self.stderr_reader.start()
        try:
            message = self.events.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.close()
            raise RefocusError(f"the worker did not start within {START_TIMEOUT_S:.0f} s ({self.python})") from None
        if message is None or message.get("event") != "ready":
            self.close()
            self.stderr_reader.join(timeout=2.0)  # its last words explain why
            raise RefocusError(f"the worker Python {self.python} could not start the Refocus worker: "
                               f"{self._last_words()}")
        if message.get("protocol") != PROTOCOL:
            self.close()
            raise RefocusError(f"the Refocus core at {self.python} speaks worker protocol "
                               f"{message.get('protocol')}, this add-on {PROTOCOL}: update one of them")
        core_path = message.get("core_path")
        if root is not None and (not isinstance(core_path, str) or not _same_folder(core_path, root / "core")):
            self.close()
            raise RefocusError(f"the worker ran the core at {core_path}, not this add-on's {root / 'core'}")
        self.info = message
        self.last_heard = time.monotonic()
        self.start_seconds = time.perf_counter() - begin

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and not self.exited

    def close(self, timeout: float = 5.0) -> None:
        """Ask the worker to finish, then make sure it has."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.poll() is None and process.stdin is not None:
                process.stdin.write(json.dumps({"op": "shutdown"}) + "\n")
                process.stdin.flush()
                process.stdin.close()
            process.wait(timeout=timeout)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=timeout)

    # ------------------------------------------------------------------------------ requests
    def submit(self, op: str, inputs: dict[str, Any], params: dict[str, Any], outputs: dict[str, str]) -> Request:
        if not self.requests:
            self.last_heard = time.monotonic()  # the silence clock starts with the first open request
        request = Request(next(self.ids), op)
        self.requests[request.id] = request
        self._send({"id": request.id, "op": op, "inputs": inputs, "params": params, "outputs": outputs})
        return request

    def cancel(self, request: Request) -> None:
        if not request.finished and self.alive:
            self._send({"op": "cancel", "target": request.id})

    def pump(self, block_s: float = 0.0, timeout_s: float | None = None) -> None:
        """Apply every answer received so far to its request; wait up to ``block_s`` for the first.

        With requests open and no word from the worker for ``timeout_s`` (default
        :data:`SILENCE_TIMEOUT_S`), the worker is given up (:meth:`_give_up`).
        """
        try:
            message = self.events.get(timeout=block_s) if block_s > 0 else self.events.get_nowait()
        except queue.Empty:
            self._check_silence(SILENCE_TIMEOUT_S if timeout_s is None else timeout_s)
            return
        while True:
            self._apply(message)
            try:
                message = self.events.get_nowait()
            except queue.Empty:
                return

    def wait(self, request: Request, progress: ProgressFn | None = None, timeout_s: float | None = None) -> None:
        """Block until ``request`` has its result or its error, reporting progress as it comes.

        A worker silent for ``timeout_s`` (default :data:`SILENCE_TIMEOUT_S`) while the request is
        open is killed, and the request fails (kind ``unresponsive``) instead of waiting forever.
        """
        seen = (-1, -1)
        while not request.finished:
            self.pump(block_s=0.25, timeout_s=timeout_s)
            if progress is not None and request.total and (request.done, request.total) != seen:
                seen = (request.done, request.total)
                progress(*seen)

    def run(self, op: str, inputs: dict[str, Any], params: dict[str, Any], outputs: dict[str, str],
            progress: ProgressFn | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        """Submit, wait, and return the result (or raise the request's :class:`RefocusError`)."""
        request = self.submit(op, inputs, params, outputs)
        self.wait(request, progress, timeout_s)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    # ------------------------------------------------------------------------------ plumbing
    def _send(self, message: dict[str, Any]) -> None:
        if not self.alive:
            self._fail_all("the Refocus worker is not running")
            return
        assert self.process is not None and self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            self.exited = True
            self._fail_all(f"the Refocus worker stopped unexpectedly: {self._last_words()}")

    def _check_silence(self, timeout_s: float) -> None:
        if not self.requests or self.process is None:
            self.last_heard = time.monotonic()  # idle silence is fine: the clock starts with a request
            return
        if not self.info.get("heartbeat_s"):
            return  # a core without heartbeats: silence during a long op is normal for it
        silent = time.monotonic() - self.last_heard
        if silent > timeout_s:
            self._give_up(f"the Refocus worker is not responding (no word for {silent:.0f} s; stopped or hung); "
                          f"it was stopped and will restart with the next request")

    def _give_up(self, text: str) -> None:
        """Kill an unresponsive worker and fail its requests; the next request starts a fresh one."""
        process, self.process = self.process, None
        self.exited = True
        if process is not None:
            try:
                process.kill()  # SIGKILL reaches a stopped process too
                process.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for request in list(self.requests.values()):
            request.kind = "unresponsive"
            request.error = RefocusError(text)
        self.requests.clear()

    def _apply(self, message: dict[str, Any] | None) -> None:
        if message is None:  # stdout closed: the process is gone
            self.exited = True
            code = self.process.poll() if self.process is not None else None
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self._fail_all(f"the Refocus worker stopped unexpectedly ({how}): {self._last_words()}")
            return
        self.last_heard = time.monotonic()
        request = self.requests.get(message.get("id"))  # type: ignore[arg-type]
        if request is None:
            return
        event = message.get("event")
        if event == "heartbeat":
            return
        if event == "progress":
            request.done, request.total = int(message["done"]), int(message["total"])
        elif event == "done":
            request.result = message
            del self.requests[request.id]
        elif event == "error":
            request.kind = message.get("kind", "internal")
            request.error = RefocusError(message.get("message", "unknown worker error"))
            del self.requests[request.id]

    def _fail_all(self, text: str) -> None:
        for request in list(self.requests.values()):
            request.kind = "crashed"
            request.error = RefocusError(text)
        self.requests.clear()

    def _last_words(self) -> str:
        lines = [line for line in self.stderr if line.strip()]
        return lines[-1].strip() if lines else "no message"

    def _read_stdout(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        for line in process.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.stderr.append(f"(not protocol) {line.rstrip()}")
        process.wait()
        self.events.put(None)

    def _read_stderr(self) -> None:
        process = self.process
        assert process is not None and process.stderr is not None
        for line in process.stderr:
            self.stderr.append(line.rstrip("\n"))
            sys.stderr.write(f"[refocus worker] {line}")


def _same_folder(a: str, b: Any) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


_client: WorkerClient | None = None


def client() -> WorkerClient:
    """The running worker, started (or restarted after a crash or a change of Python) when needed."""
    global _client
    python = worker_python()
    if _client is not None and (not _client.alive or _client.python != python):
        _client.close()
        _client = None
    if _client is None:
        started = WorkerClient(python)
        started.start()
        _client = started
    return _client


def current_client() -> WorkerClient | None:
    """The worker last started, running or not (its requests learn of a crash through it); never
    starts one."""
    return _client


def shutdown() -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None


atexit.register(shutdown)


def served_ops() -> set[str] | None:
    """The ops the running worker serves (its ready message), or ``None`` before one has started."""
    c = current_client()
    if c is None or not c.info:
        return None
    return set(c.info.get("ops", ()))
