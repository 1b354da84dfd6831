"""The generator as a tool: same seed same bytes, shards, resume after a kill, validate, bad input.

Datasets here are tiny (48x40, two slices, two samples per pixel) so that each render takes a
fraction of a second; the command line runs as a real subprocess, as a user or a cluster runs it.
Byte-for-byte comparisons run without the denoiser: OpenImageDenoise is not deterministic (the
same sample denoised twice, even in one process, on one thread, at any quality, differs by one
half-float step in 0.1-0.4 % of its pixels). The last test pins down what does hold with it:
records, depth and the reproducible digest are equal, colour files are marked not reproducible
and agree to a rounding step. Validation is tested on folders broken the ways concurrent or
killed runs and careless copies break them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blender_scenes import dataset_io as io
from blender_scenes.generate import generate
from blender_scenes.dataset_render import Quality
from blender_scenes.dataset_samples import Options, write_plane
from blender_scenes.validate import main as validate_main, validate
from core.imageio import read_map

pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[1]
TINY = Options(width=48, height=40, quality=Quality(samples=2, denoise=False), slices=2)
TINY_ARGS = ["--size", "48", "40", "--samples", "2", "--slices", "2", "--no-denoise", "--no-preview", "--quiet"]
COUNT = 3


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path: bytes), the preview aside."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != io.PREVIEW_FILE}


def run_cli(*args: str, script: bool = False) -> subprocess.Popen:
    """Start the generator: ``python -m blender_scenes.generate ARGS`` or, with ``script``, the way
    ``blender -b -P blender_scenes/generate.py -- ARGS`` runs it (a file path, arguments after --)."""
    entry = [str(REPO / "blender_scenes" / "generate.py"), "--"] if script else ["-m", "blender_scenes.generate"]
    return subprocess.Popen([sys.executable, *entry, *args], cwd=REPO if not script else "/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One unsharded run, in-process."""
    root = tmp_path_factory.mktemp("reference")
    generate("defocusnet", COUNT, root, seed=7, options=TINY, progress=False, preview=False)
    return root


def test_same_seed_same_files_across_processes_and_entry_points(reference: Path, tmp_path: Path) -> None:
    # The script path (as blender -P runs it) in a fresh process must give the very same bytes.
    proc = run_cli("--kind", "defocusnet", "--count", str(COUNT), "--out", str(tmp_path / "again"), "--seed", "7",
                   *TINY_ARGS, script=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert files_of(tmp_path / "again") == files_of(reference)
    assert len(files_of(reference)) == 2 + COUNT * 5  # dataset, manifest; record, image, depth, 2 slices


def test_another_seed_gives_other_scenes(reference: Path, tmp_path: Path) -> None:
    generate("defocusnet", 1, tmp_path, seed=8, options=TINY, progress=False, preview=False)
    ours = (tmp_path / "000000" / "image.exr").read_bytes()
    assert ours != (reference / "000000" / "image.exr").read_bytes()


def test_two_shards_together_equal_one_run(reference: Path, tmp_path: Path) -> None:
    # Shards on machines of another size (one render thread here) still make the same dataset.
    one_thread = Options(width=48, height=40, quality=Quality(samples=2, denoise=False, threads=1), slices=2)
    for shard in ((1, 2), (0, 2)):
        generate("defocusnet", COUNT, tmp_path, seed=7, shard=shard, options=one_thread, progress=False,
                 preview=False)
    assert files_of(tmp_path) == files_of(reference)


def test_resume_after_kill_leaves_no_half_sample(reference: Path, tmp_path: Path) -> None:
    root = tmp_path / "killed"
    proc = run_cli("--kind", "defocusnet", "--count", str(COUNT), "--out", str(root), "--seed", "7", *TINY_ARGS)
    deadline = time.monotonic() + 120
    while not io.is_complete(root, 0) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert io.is_complete(root, 0), "the run ended before its first sample"
    done = io.complete_indices(root)
    assert done != list(range(COUNT)), "the kill came too late to interrupt anything"
    for index in done:  # whatever is in place is whole
        assert not check_problems(root, index)
    proc = run_cli("--kind", "defocusnet", "--count", str(COUNT), "--out", str(root), "--seed", "7", *TINY_ARGS)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert not io.leftover_partials(root)
    assert files_of(root) == files_of(reference)


def rewrite(root: Path, index: int, name: str, values: np.ndarray, channel: str = "Z") -> None:
    """Replace a map of a sample and update its checksums, as a careless edit would: only the
    value checks can tell."""
    folder = io.sample_dir(root, index)
    write_plane(folder / name, values, channel)
    record = io.read_json(folder / io.SAMPLE_FILE)
    record["files"][name] = io.file_entries(folder, [name])[name]
    io.write_json(folder / io.SAMPLE_FILE, record)
    io.write_manifest(root)


def test_validate_checks_maps_derived_from_depth(tmp_path: Path) -> None:
    generate("stereo", 1, tmp_path, seed=1, options=TINY, progress=False, preview=False)
    assert validate(tmp_path).ok
    rewrite(tmp_path, 0, "disparity_left.exr", read_map(tmp_path / "000000" / "disparity_left.exr") * 1.01, "D")
    assert validate(tmp_path).bad == {0: ["disparity_left.exr disagrees with depth, baseline and focal length"]}


def check_problems(root: Path, index: int) -> list[str]:
    from blender_scenes.validate import check_sample
    return check_sample(root, index, None)


def test_validate_catches_corruption_and_remove_bad_lets_generate_redo(reference: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "copy"
    shutil.copytree(reference, root)
    assert validate(root).ok
    # A flipped byte in a slice: the checksum catches it.
    slice_path = root / "000001" / "slice_01.exr"
    data = bytearray(slice_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    slice_path.write_bytes(bytes(data))
    # A depth map with a NaN whose checksums were updated to match: the value check catches it.
    depth = read_map(root / "000002" / "depth.exr")
    depth[3, 4] = np.nan
    rewrite(root, 2, "depth.exr", depth)

    report = validate(root)
    assert sorted(report.bad) == [1, 2]
    assert any("slice_01.exr checksum mismatch" in p for p in report.bad[1])
    assert any("NaN" in p for p in report.bad[2])
    assert validate_main([str(root)]) == 1
    assert "000001: slice_01.exr checksum mismatch" in capsys.readouterr().out

    assert validate_main([str(root), "--remove-bad"]) == 1
    assert io.complete_indices(root) == [0]
    generate("defocusnet", COUNT, root, seed=7, options=TINY, progress=False, preview=False)
    assert validate_main([str(root)]) == 0
    assert files_of(root) == files_of(reference)


def test_bad_input_is_one_line_and_writes_nothing(reference: Path, tmp_path: Path) -> None:
    proc = run_cli("--kind", "defocusnet", "--count", "2", "--out", str(tmp_path / "x"), "--shard", "2/2", *TINY_ARGS)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().count("\n") == 0 and "shard" in err
    assert not (tmp_path / "x").exists()
    # Another seed into an existing dataset folder is refused, and nothing there changes.
    before = files_of(reference)
    proc = run_cli("--kind", "defocusnet", "--count", str(COUNT), "--out", str(reference), "--seed", "9", *TINY_ARGS)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "another dataset" in err and "seed" in err
    assert files_of(reference) == before


def test_denoised_runs_agree_to_a_rounding_step(tmp_path: Path) -> None:
    """With the denoiser (the default), two processes give the same scenes, depth and records, the
    same reproducible digest in the manifest, and colour that agrees to a half-float rounding step."""
    args = [a for a in TINY_ARGS if a != "--no-denoise"]
    for name in ("a", "b"):
        proc = run_cli("--kind", "defocusnet", "--count", "1", "--out", str(tmp_path / name), "--seed", "7", *args)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys()
    assert a["000000/depth.exr"] == b["000000/depth.exr"]
    record_a, record_b = (io.read_json(tmp_path / n / "000000" / io.SAMPLE_FILE) for n in ("a", "b"))
    assert {k: v for k, v in record_a.items() if k != "files"} == {k: v for k, v in record_b.items() if k != "files"}
    from core.imageio import read_image
    for name in ("image.exr", "slice_00.exr", "slice_01.exr"):
        ia, ib = (read_image(tmp_path / n / "000000" / name) for n in ("a", "b"))
        assert np.abs(ia - ib).max() <= 2e-3 * max(1.0, float(ia.max()))
    # What the records say is reproducible: every map, no denoised colour; the digest covers that.
    files = record_a["files"]
    assert {n for n, e in files.items() if not e["reproducible"]} == {"image.exr", "slice_00.exr", "slice_01.exr"}
    digests = [io.read_json(tmp_path / n / io.MANIFEST_FILE)["samples"][0]["digest"] for n in ("a", "b")]
    assert digests[0] == digests[1] == io.sample_digest(record_a) == io.sample_digest(record_b)


def test_no_denoise_marks_every_file_reproducible(reference: Path) -> None:
    record = io.read_json(reference / "000000" / io.SAMPLE_FILE)
    assert all(entry["reproducible"] for entry in record["files"].values())


def broken_copy(reference: Path, tmp_path: Path) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(reference, root)
    assert validate(root).ok
    return root


def test_validate_finds_what_concurrent_and_killed_runs_leave(reference: Path, tmp_path: Path) -> None:
    root = broken_copy(reference, tmp_path)
    # A sample committed with only its record and one slice (two runs sharing a temporary folder).
    for name in ("image.exr", "depth.exr", "slice_00.exr"):
        (root / "000001" / name).unlink()
    record = io.read_json(root / "000001" / io.SAMPLE_FILE)
    record["files"] = {"slice_01.exr": record["files"]["slice_01.exr"]}
    io.write_json(root / "000001" / io.SAMPLE_FILE, record)
    # A stray temporary file inside a sample, and one beside the samples.
    (root / "000002" / ".render").mkdir()
    (root / "000002" / ".render" / ".slice_4.123.tmp.exr").write_bytes(b"x")
    (root / ".000000.host-1-ab.partial").mkdir()
    (root / "notes.txt").write_text("hi")
    io.write_manifest(root)  # the manifest agrees with the records: only the new checks can tell
    report = validate(root)
    assert sorted(report.bad) == [1, 2]
    assert {p.split(" is named")[0] for p in report.bad[1] if "is named by the record" in p} == \
        {"image.exr", "depth.exr", "slice_00.exr"}
    assert report.bad[2] == ["stray folder .render (not in the record)"]
    assert any("temporary sample folder .000000.host-1-ab.partial" in p for p in report.problems)
    assert any("stray file notes.txt" in p for p in report.problems)


def test_validate_checks_manifest_and_disk_both_ways(reference: Path, tmp_path: Path) -> None:
    root = broken_copy(reference, tmp_path)
    shutil.rmtree(root / "000002")  # in the manifest, not on disk
    (root / "000001" / io.SAMPLE_FILE).unlink()  # a folder without its record
    report = validate(root)
    assert report.bad[2] == ["listed in the manifest but its folder is missing"]
    assert report.bad[1][0].startswith("folder has no sample.json")
    io.write_manifest(root)
    shutil.copytree(reference / "000002", root / "000002")  # on disk, not in the manifest
    report = validate(root)
    assert "sample 000002 is not in the manifest (run with --reindex)" in report.problems
    # A record moved to another index, and one whose seed was edited, are caught.
    root = broken_copy(reference, tmp_path / "again")
    shutil.rmtree(root / "000000")
    shutil.copytree(reference / "000001", root / "000000")
    io.write_manifest(root)
    assert any("not of its folder's 0" in p for p in validate(root).bad[0])
