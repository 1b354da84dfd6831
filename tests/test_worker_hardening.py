"""Issue 15: the add-on's worker survives hostile lines, a stopped worker does not hang the client,
and a ``core/`` folder in Blender's working directory cannot run instead of the real core.

Real processes: the worker is started as the add-on starts it (``addon.worker_client``) or by
hand with pipes, and fed lines as a buggy or malicious add-on could.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from addon.errors import RefocusError
from addon.worker_client import WorkerClient
from core.imageio import write_exr

ROOT = Path(__file__).resolve().parents[1]


class RawWorker:
    """``python -m core.worker`` with pipes, spoken to line by line."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "core.worker"], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.ready = self.read()
        assert self.ready["event"] == "ready"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the worker closed its output (exit {self.proc.poll()})"
        return json.loads(line)

    def answer(self, rid: int) -> dict:
        """The final answer (done or error) to request ``rid``, skipping progress."""
        while True:
            message = self.read()
            if message.get("id") == rid and message.get("event") in ("done", "error"):
                return message

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send(json.dumps({"op": "shutdown"}))
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def worker():
    w = RawWorker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("worker") / "image.exr"
    write_exr(path, {c: np.full((4, 5), 0.5, np.float32) for c in "RGB"})
    return path


def echo(worker: RawWorker, image: Path, rid: int) -> dict:
    out = image.parent / f"echo_{rid}.npy"
    worker.send(json.dumps({"id": rid, "op": "echo", "inputs": {"image": {"path": str(image)}}, "params": {},
                            "outputs": {"image": str(out)}}))
    return worker.answer(rid)


HOSTILE = [
    '{"op":"cancel"}',
    '{"op":"cancel","target":"x"}',
    '{"op":"cancel","target":null}',
    '{"op":"cancel","target":99999}',
    '{"op":"cancel","target":true}',
    "[" * 100000 + "]" * 100000,
    '{"a":' * 100000 + "1" + "}" * 100000,
    "[1, 2, 3]",
    '"a string"',
    "42",
    "null",
    "not json at all",
    '{"id": 5}',
    '{"op": 7}',
    '{"op": "layered_defocus", "id": "seven"}',
    '{"op": "layered_defocus", "id": 1e400}',
    '{"op": "nope", "id": 3}',
    "\x00\x01\x02",
    '{"op": "echo", "id": 4, "inputs": [], "outputs": {}}',
    '{"op": "echo", "id": 4, "inputs": {}, "params": [], "outputs": {}}',
    '{"op": "echo", "id": 4, "inputs": {"image": {}}, "params": {}, "outputs": {"image": "/tmp/x.npy"}}',
    '{"op": "echo", "id": 4, "inputs": {"image": "a path"}, "params": {}, "outputs": {"image": "/tmp/x.npy"}}',
    '{"op": "echo", "id": 4, "inputs": {"image": {"path": 3}}, "params": {}, "outputs": {"image": "/tmp/x.npy"}}',
    '{"op": "echo", "id": 4, "inputs": {"image": {"path": "/nonexistent.exr"}}, "params": {}, "outputs": {}}',
    '{"op": "echo", "id": 4, "inputs": {"image": {"path": "/nonexistent.exr"}}, "params": {"steps": "many"}}',
    '{"op": "echo", "id": 4, "inputs": {"image": {"path": "/nonexistent.exr"}}, "params": {"steps": 1e9}}',
    '{"op": "echo", "id": 4, "inputs": {"image": {"path": "/nonexistent.exr"}}, "params": {"bogus": 1}}',
    '{"op": "layered_defocus", "id": 4, "inputs": {"image": {"path": "/x.exr"}, "depth": {"path": "/y.exr"}}, '
    '"params": {"f_stop": 2, "focal_length_mm": 50, "focus_distance_m": 2, "lens": {"bogus": 1}}, "outputs": {}}',
]


@pytest.mark.parametrize("line", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_line_is_answered_and_the_worker_serves_on(worker, image, line):
    worker.send(line)
    rid = 1000 + HOSTILE.index(line)
    answer = echo(worker, image, rid)
    assert worker.proc.poll() is None
    assert answer["event"] == "done", answer


def test_raw_errors_become_input_errors_with_a_sentence(worker, image, tmp_path):
    cases = [
        {"id": 11, "op": "echo", "inputs": {"image": {}}, "params": {}, "outputs": {"image": str(tmp_path / "a.npy")}},
        {"id": 12, "op": "echo", "inputs": {"image": {"path": str(tmp_path / "none.exr")}}, "params": {},
         "outputs": {"image": str(tmp_path / "a.npy")}},
        {"id": 13, "op": "echo", "inputs": {"image": {"path": str(image)}}, "params": {}, "outputs": {}},
        {"id": 14, "op": "echo", "inputs": {"image": {"path": str(image)}}, "params": {},
         "outputs": {"image": str(tmp_path / "no" / "such" / "folder.npy")}},
        {"id": 15, "op": "layered_defocus", "inputs": {"image": {"path": str(image)}, "depth": {"path": str(image)}},
         "params": {"f_stop": 2, "focal_length_mm": 50, "focus_distance_m": 2, "lens": {"bogus": 1}},
         "outputs": {"image": str(tmp_path / "b.npy")}},
    ]
    for request in cases:
        worker.send(json.dumps(request))
        answer = worker.answer(request["id"])
        assert answer["event"] == "error" and answer["kind"] == "input", answer
        message = answer["message"]
        assert "KeyError" not in message and "Traceback" not in message and "\n" not in message, message
        assert len(message.split()) >= 4, message  # a sentence, not "KeyError: 'path'"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_stopped_worker_fails_the_wait_instead_of_hanging(tmp_path):
    write_exr(tmp_path / "i.exr", {c: np.full((4, 4), 0.5, np.float32) for c in "RGB"})
    client = WorkerClient(sys.executable)
    client.start()
    try:
        os.kill(client.process.pid, signal.SIGSTOP)
        request = client.submit("echo", {"image": {"path": str(tmp_path / "i.exr")}}, {},
                                {"image": str(tmp_path / "o.npy")})
        start = time.monotonic()
        client.wait(request, timeout_s=3.0)  # returns: the request failed, the render goes on
        assert time.monotonic() - start < 20.0
        assert request.kind == "unresponsive"
        assert isinstance(request.error, RefocusError) and "not responding" in str(request.error)
        assert not client.alive  # killed: the next request starts a fresh worker
    finally:
        if client.process is not None:
            os.kill(client.process.pid, signal.SIGCONT)
        client.close()


def test_a_slow_but_live_worker_is_waited_for(tmp_path):
    write_exr(tmp_path / "i.exr", {c: np.full((4, 4), 0.5, np.float32) for c in "RGB"})
    client = WorkerClient(sys.executable)
    client.start()
    try:
        # One 5 s step, longer than the silence allowed (2.5 s): only the heartbeats keep it going.
        result = client.run("echo", {"image": {"path": str(tmp_path / "i.exr")}}, {"steps": 1, "seconds": 5.0},
                            {"image": str(tmp_path / "o.npy")}, timeout_s=2.5)
        assert result["event"] == "done"
    finally:
        client.close()


def test_a_core_folder_in_the_working_directory_cannot_hijack_the_worker(tmp_path, monkeypatch):
    # A folder that looks like core, in the directory Blender was started from.
    fake = tmp_path / "blend_dir" / "core" / "worker"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    marker = tmp_path / "hijacked"
    (fake / "__main__.py").write_text(
        f"import json, sys\nopen({str(marker)!r}, 'w').write('ran')\n"
        "print(json.dumps({'event': 'ready', 'protocol': 0, 'fake': True}), flush=True)\n")
    monkeypatch.chdir(tmp_path / "blend_dir")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "blend_dir"))  # and on a hostile PYTHONPATH too
    import addon.worker_client as wc

    for root in (ROOT, None):  # from the repository, and installed (the core from the environment)
        monkeypatch.setattr(wc, "repository_root", lambda r=root: r)
        client = WorkerClient(sys.executable)
        try:
            client.start()
            assert not client.info.get("fake"), "the fake core ran"
            assert Path(client.info["core_path"]).resolve() == (ROOT / "core").resolve()
        finally:
            client.close()
    assert not marker.exists()


def test_the_worker_python_preference_is_not_relative_to_the_blend(tmp_path, monkeypatch):
    import addon.preferences as prefs

    class Prefs:
        worker_python = "//venv/bin/python"

    monkeypatch.setattr(prefs, "preferences", lambda: Prefs())
    with pytest.raises(RefocusError, match="absolute path"):
        prefs.worker_python()
    Prefs.worker_python = sys.executable
    assert prefs.worker_python() == sys.executable
