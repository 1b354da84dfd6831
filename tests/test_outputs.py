"""core.outputs: every output checked up front, all renamed together, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError
from core.imageio import IMAGE_EXTENSIONS, MAP_EXTENSIONS, read_map, write_image, write_map
from core.outputs import TEMP_TAG, OutputSet, Terminated, resolve_output, sweep_stale, temp_path

ROOT = Path(__file__).resolve().parents[1]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_declared_outputs_are_checked_at_once(tmp_path):
    (tmp_path / "dir.exr").mkdir()
    outputs = OutputSet()
    outputs.add(tmp_path / "a.pfm", MAP_EXTENSIONS, "disparity output")
    with pytest.raises(InputError, match="the depth output and the disparity output are the same file"):
        outputs.add(tmp_path / "sub" / ".." / "a.pfm", MAP_EXTENSIONS, "depth output")
    with pytest.raises(InputError, match="depth output path is a folder"):
        outputs.add(tmp_path / "dir.exr", MAP_EXTENSIONS, "depth output")
    with pytest.raises(InputError, match="unknown depth output extension .png"):
        outputs.add(tmp_path / "d.png", MAP_EXTENSIONS, "depth output")
    with pytest.raises(InputError, match="folder does not exist"):
        outputs.add(tmp_path / "nope" / "d.exr", MAP_EXTENSIONS, "depth output")
    with pytest.raises(InputError, match="not a regular file"):
        resolve_output(_fifo(tmp_path), MAP_EXTENSIONS)
    assert names(tmp_path) == ["dir.exr", "f.exr"]  # nothing created by the checks


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "f.exr")
    return folder / "f.exr"


def test_a_symlinked_output_is_written_through_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    outputs = OutputSet()
    out = outputs.add(tmp_path / "link" / "d.npy", MAP_EXTENSIONS)
    other = outputs.add(tmp_path / "real" / "e.npy", MAP_EXTENSIONS)
    with pytest.raises(InputError, match="same file"):
        outputs.add(tmp_path / "real" / "d.npy", MAP_EXTENSIONS)
    with outputs.writing():
        outputs.write(out, lambda p: write_map(p, np.ones((2, 2), np.float32)))
        outputs.write(other, lambda p: write_map(p, np.zeros((2, 2), np.float32)))
    assert names(tmp_path / "real") == ["d.npy", "e.npy"]


def test_a_failure_leaves_the_old_files_and_no_temporary(tmp_path):
    write_map(tmp_path / "a.exr", np.full((3, 3), 1.0, np.float32))
    outputs = OutputSet()
    a = outputs.add(tmp_path / "a.exr", MAP_EXTENSIONS)
    b = outputs.add(tmp_path / "b.png", IMAGE_EXTENSIONS)
    with pytest.raises(RuntimeError):
        with outputs.writing():
            outputs.write(a, lambda p: write_map(p, np.full((3, 3), 2.0, np.float32)))
            outputs.write(b, lambda p: write_image(p, np.zeros((3, 3, 3), np.float32)))
            raise RuntimeError("the compute failed after the writes")
    assert names(tmp_path) == ["a.exr"]
    assert read_map(tmp_path / "a.exr")[0, 0] == 1.0


def test_a_failed_rename_rolls_back_the_ones_done(tmp_path):
    write_map(tmp_path / "a.npy", np.full((3, 3), 1.0, np.float32))
    outputs = OutputSet()
    a = outputs.add(tmp_path / "a.npy", MAP_EXTENSIONS)
    b = outputs.add(tmp_path / "b.npy", MAP_EXTENSIONS)
    with pytest.raises(OSError):
        with outputs.writing():
            outputs.write(a, lambda p: write_map(p, np.full((3, 3), 2.0, np.float32)))
            outputs.write(b, lambda p: write_map(p, np.full((3, 3), 3.0, np.float32)))
            (tmp_path / "b.npy").mkdir()  # appears between the checks and the commit
            (tmp_path / "b.npy" / "x").write_text("keeps the folder non-empty")
    assert read_map(tmp_path / "a.npy")[0, 0] == 1.0
    assert names(tmp_path) == ["a.npy", "b.npy"] and (tmp_path / "b.npy").is_dir()


def test_success_writes_everything_and_only_that(tmp_path):
    outputs = OutputSet()
    a = outputs.add(tmp_path / "a.pfm", MAP_EXTENSIONS)
    b = outputs.add(tmp_path / "b.exr", MAP_EXTENSIONS)
    with outputs.writing():
        outputs.write(a, lambda p: write_map(p, np.full((3, 4), 5.0, np.float32)))
        outputs.write(b, lambda p: write_map(p, np.full((3, 4), 6.0, np.float32)))
        assert names(tmp_path) != ["a.pfm", "b.exr"]  # nothing in place before the commit
    assert names(tmp_path) == ["a.pfm", "b.exr"]
    assert read_map(tmp_path / "b.exr")[0, 0] == 6.0


def test_stale_temporaries_of_dead_processes_are_swept(tmp_path):
    dead = dead_pid()
    stale = tmp_path / f".d.exr.{dead}-0123abcd.{TEMP_TAG}.exr"
    legacy = tmp_path / f".out.{dead}.tmp.exr"  # the naming of earlier releases
    live = tmp_path / f".d.exr.{os.getppid()}-0123abcd.{TEMP_TAG}.exr"
    other = tmp_path / ".someone-elses.tmp"
    for p in (stale, legacy, live, other):
        p.write_bytes(b"x")
    assert sorted(sweep_stale(tmp_path, force=True)) == sorted([stale, legacy])
    assert names(tmp_path) == sorted([live.name, other.name])
    assert temp_path(tmp_path / "d.exr").name.startswith(f".d.exr.{os.getpid()}-")


def test_sigterm_mid_write_removes_the_temporaries(tmp_path):
    # A child writes one output, then stalls inside the second write; SIGTERM must leave nothing.
    script = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from core.imageio import MAP_EXTENSIONS, write_map
        from core.outputs import OutputSet
        outputs = OutputSet()
        a = outputs.add({str(tmp_path / 'a.exr')!r}, MAP_EXTENSIONS)
        b = outputs.add({str(tmp_path / 'b.exr')!r}, MAP_EXTENSIONS)
        def slow(p):
            open(p, "wb").write(b"half")
            print("writing", flush=True)
            time.sleep(60)
        with outputs.writing():
            outputs.write(a, lambda p: write_map(p, np.ones((64, 64), np.float32)))
            outputs.write(b, slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert len(names(tmp_path)) == 2  # both temporaries exist now
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert names(tmp_path) == []


def test_the_previous_signal_handler_comes_back(tmp_path):
    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        outputs = OutputSet()
        a = outputs.add(tmp_path / "a.npy", MAP_EXTENSIONS)
        with outputs.writing():
            assert signal.getsignal(signal.SIGTERM) is not mine
            outputs.write(a, lambda p: write_map(p, np.ones((2, 2), np.float32)))
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_terminated_is_an_exit_with_the_signal_status():
    exc = Terminated(signal.SIGTERM)
    assert isinstance(exc, SystemExit) and exc.code == 143
