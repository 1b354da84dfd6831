"""The generator on a Ray cluster (a local one of 2 CPUs, as CI has): the same dataset as one run.

Each shard is a Ray task running one short generator process. A shard that cannot finish (here a
file squatting on one of its sample folders) is tried again and then reported, the other shards'
samples are kept, and the same call once the obstacle is gone renders only what is missing.
Ray is started once for the module and shut down after it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blender_scenes import dataset_io as io
from blender_scenes import ray_runner
from blender_scenes.dataset_render import Quality
from blender_scenes.dataset_samples import Options
from blender_scenes.generate import describe, finish, generate, shard_arguments
from blender_scenes.validate import validate

pytestmark = pytest.mark.blender

COUNT = 4
OPTIONS = Options(width=32, height=32, quality=Quality(samples=1, denoise=False, threads=1), slices=2)
ARGV = ["--kind", "defocusnet", "--count", str(COUNT), "--seed", "11", "--size", "32", "32", "--samples", "1",
        "--slices", "2", "--no-denoise"]


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != io.PREVIEW_FILE}


@pytest.fixture(scope="module")
def cluster() -> object:
    import ray

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPUs asked for
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def run(out: Path, retries: int = 1) -> dict:
    return ray_runner.run(shard_arguments([*ARGV, "--out", str(out), "--ray"]), "defocusnet", COUNT, out,
                          describe("defocusnet", COUNT, 11, "train", OPTIONS), shards=2, retries=retries,
                          progress=False, finish=lambda root: finish(root, preview=False))


def test_shard_arguments_drop_only_the_drivers_options() -> None:
    argv = ["--kind", "stereo", "--ray", "--out", "x", "--count", "3", "--ray", "head:6379", "--threads=2",
            "--quiet", "--shard-size", "5", "--no-denoise"]
    assert shard_arguments(argv) == ["--kind", "stereo", "--count", "3", "--no-denoise"]


def test_ray_shards_equal_one_run_retry_and_resume(cluster: object, tmp_path: Path) -> None:
    reference = tmp_path / "one"
    generate("defocusnet", COUNT, reference, seed=11, options=OPTIONS, progress=False, preview=False)

    out = tmp_path / "ray"
    out.mkdir()
    (out / io.sample_name(1)).write_text("in the way")  # shard 1/2 (samples 1, 3) cannot commit sample 1
    figures = run(out, retries=1)
    assert figures["failed"] == [1] and figures["retried"] == 1
    assert io.complete_indices(out) == [0, 2]  # shard 0's samples are kept
    assert not validate(out).ok

    (out / io.sample_name(1)).unlink()
    figures = run(out)
    assert figures["shards"] == 1 and figures["rendered"] == 2 and not figures["failed"]
    assert validate(out).ok
    assert files_of(out) == files_of(reference)


def test_ray_refuses_a_shard_of_its_own_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "blender_scenes.generate", *ARGV, "--out", str(tmp_path / "x"),
                           "--ray", "--shard", "0/2"], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--shard" in proc.stderr
    assert not (tmp_path / "x").exists()
