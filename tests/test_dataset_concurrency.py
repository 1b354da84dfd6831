"""Many generators on one dataset folder: claims, per-process temporary folders, one-rename commits.

Claims are checked on their own first (live, dead, reused pid, other host, aged), then real
generator processes run at once on one folder, one of them killed with SIGKILL mid-sample, and a
resumed run finishes the job: the folder validates and is byte for byte what one run writes.
Renders are tiny (32x32, one sample per pixel, no denoiser: see dataset_io on what the denoiser
does not reproduce) so that the whole module takes well under a minute.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blender_scenes import dataset_io as io
from blender_scenes.dataset_render import Quality
from blender_scenes.dataset_samples import Options
from blender_scenes.generate import generate
from blender_scenes.validate import validate

REPO = Path(__file__).resolve().parents[1]
COUNT = 8
OPTIONS = Options(width=32, height=32, quality=Quality(samples=1, denoise=False, threads=1), slices=2)
ARGS = ["--kind", "defocusnet", "--count", str(COUNT), "--seed", "5", "--size", "32", "32", "--samples", "1",
        "--slices", "2", "--no-denoise", "--threads", "1", "--no-preview"]


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant_claim(root: Path, name: str, host: str, pid: int, start: float, age_s: float = 0.0) -> Path:
    path = root / f".{name}.claim"
    path.write_text(json.dumps({"host": host, "pid": pid, "start": start, "token": f"planted-{pid}"}))
    if age_s:
        os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


# ------------------------------------------------------------------------------------- claims
def test_a_live_claim_is_respected_and_a_stale_one_broken(tmp_path: Path) -> None:
    with io.Claims(tmp_path, timeout_s=60) as ours, io.Claims(tmp_path, timeout_s=60) as theirs:
        claim = ours.take("000000")
        assert claim is not None and json.loads(claim.path.read_text())["pid"] == os.getpid()
        assert theirs.take("000000") is None  # held by a live process (this one)
        ours.release(claim)
        assert not claim.path.exists()
        assert theirs.take("000000") is not None

        me = os.getpid()
        started = io._process_started(me)
        assert started is not None
        cases = {
            "000001": (io.HOST, dead_pid(), started, 0.0, True),  # dead pid on this host
            "000002": (io.HOST, me, started - 100.0, 0.0, True),  # pid reused: the claim predates the process
            "000003": ("another-host", me, started, 0.0, False),  # other host, fresh: cannot know, respected
            "000004": ("another-host", me, started, 120.0, True),  # other host, not refreshed for the timeout
            "000005": (io.HOST, me, started, 0.0, False),  # live
        }
        for name, (host, pid, start, age, stale) in cases.items():
            plant_claim(tmp_path, name, host, pid, start, age)
            taken = ours.take(name)
            assert (taken is not None) == stale, name
            if taken is not None:
                assert json.loads(taken.path.read_text())["token"] == taken.token


def test_a_held_claim_is_refreshed_and_sweep_clears_what_dead_runs_left(tmp_path: Path) -> None:
    with io.Claims(tmp_path, timeout_s=0.4) as claims:
        claim = claims.take("000000")
        assert claim is not None
        os.utime(claim.path, (time.time() - 100, time.time() - 100))
        time.sleep(0.3)  # the heartbeat (every timeout / 4) touches it again
        assert time.time() - claim.path.stat().st_mtime < 0.4
        folder = io.start_sample(tmp_path, 0, claim)
        assert folder.is_dir() and folder.name.startswith(".000000.")
        claims.release(claim)
        assert not folder.exists() and not claim.path.exists()

    dead = dead_pid()
    plant_claim(tmp_path, "000001", io.HOST, dead, 0.0)
    orphan = io.temp_sample_dir(tmp_path, 1, f"host-{dead}-abcd")
    orphan.mkdir()
    temp_file = tmp_path / f".manifest.{dead}.tmp.json"
    temp_file.write_text("{}")
    keep = io.temp_sample_dir(tmp_path, 2, "live-token")
    keep.mkdir()
    plant_claim(tmp_path, "000002", io.HOST, os.getpid(), io._process_started(os.getpid()) or 0.0)
    (tmp_path / ".000002.claim").write_text(json.dumps({"host": io.HOST, "pid": os.getpid(), "token": "live-token",
                                                        "start": io._process_started(os.getpid())}))
    for path in (orphan, temp_file, keep):
        os.utime(path, (time.time() - 100, time.time() - 100))
    removed = io.sweep(tmp_path)
    assert sorted(removed) == sorted([".000001.claim", orphan.name, temp_file.name])
    assert keep.is_dir() and (tmp_path / ".000002.claim").is_file()


def test_commit_checks_the_record_and_never_replaces_a_sample(tmp_path: Path) -> None:
    io.open_dataset(tmp_path, {"kind": "defocusnet", "split": "train", "count": 2, "seed": 0})
    with io.Claims(tmp_path) as claims:
        claim = claims.take("000000")
        folder = io.start_sample(tmp_path, 0, claim)
        (folder / "image.exr").write_bytes(b"first")
        record = {"kind": "defocusnet", "index": 0, "slices": [{"file": "slice_00.exr"}]}
        with pytest.raises(RuntimeError, match="depth.exr, slice_00.exr"):
            io.commit_sample(tmp_path, 0, record, claim)
        (folder / "depth.exr").write_bytes(b"d")
        (folder / "slice_00.exr").write_bytes(b"s")
        io.commit_sample(tmp_path, 0, record, claim)
        assert sorted(io.read_json(tmp_path / "000000" / io.SAMPLE_FILE)["files"]) == \
            ["depth.exr", "image.exr", "slice_00.exr"]
        claims.release(claim)
        # A second commit of the same sample (a run that lost a race) leaves the first in place.
        claim = claims.take("000000")
        folder = io.start_sample(tmp_path, 0, claim)
        for name in ("image.exr", "depth.exr", "slice_00.exr"):
            (folder / name).write_bytes(b"second")
        io.commit_sample(tmp_path, 0, record, claim)
        claims.release(claim)
    assert (tmp_path / "000000" / "image.exr").read_bytes() == b"first"
    assert io.stray_entries(tmp_path) == []


# ------------------------------------------------------------------------------ real processes
def start(root: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "blender_scenes.generate", *ARGS, "--out", str(root), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def rendered_by(stderr: str) -> int:
    match = re.search(r"rendered (\d+) samples", stderr)
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("single")
    generate("defocusnet", COUNT, root, seed=5, options=OPTIONS, progress=False, preview=False)
    return root


@pytest.mark.blender
def test_three_runs_one_killed_then_resumed_equal_one_run(reference: Path, tmp_path: Path) -> None:
    root = tmp_path / "shared"
    # The victim starts first, so that it surely holds a sample when the others join; it is killed
    # while it renders one (it holds a claim and has a temporary folder), the three running at once.
    victim = start(root)

    def victim_holds(partial: bool) -> bool:
        held = [p for p in (io.claim_files(root) if root.is_dir() else [])
                if f"-{victim.pid}-" in p.read_text(errors="replace")]
        return bool(held) and (not partial or any(f"-{victim.pid}-" in p.name for p in io.leftover_partials(root)))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None and not victim_holds(False):
        time.sleep(0.005)
    procs = [start(root), victim, start(root)]
    while time.monotonic() < deadline and victim.poll() is None:
        if victim_holds(True):
            break
        time.sleep(0.005)
    assert victim.poll() is None, "the victim finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    outputs = [p.communicate(timeout=120) for p in procs if p is not victim]
    assert all(p.returncode == 0 for p in procs if p is not victim), outputs
    # The survivors took over the dead run's sample; a resumed run finds at most that left to do.
    resumed = start(root)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert rendered_by(err) <= 1, err  # at most the sample the victim held when it died
    report = validate(root)
    assert report.ok, report.lines()
    assert io.stray_entries(root) == []
    assert files_of(root) == files_of(reference)


@pytest.mark.blender
def test_two_live_runs_never_render_the_same_sample(reference: Path, tmp_path: Path) -> None:
    root = tmp_path / "pair"
    procs = [start(root) for _ in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert sum(rendered_by(e) for e in errs) == COUNT, errs  # each sample rendered once, by one of them
    assert validate(root).ok
    assert files_of(root) == files_of(reference)
