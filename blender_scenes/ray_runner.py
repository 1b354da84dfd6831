"""Render a dataset on a Ray cluster: every shard one Ray task, every task one short generator process.

``python -m blender_scenes.generate ... --ray [ADDRESS]`` comes here. The driver splits the
dataset into ``--ray-shards`` interleaved shards (default: one per ``--shard-size`` samples) and
submits each as a task that runs ``python -m blender_scenes.generate ... --shard i/N`` in a fresh
process: Blender's memory (scenes, images, Cycles' caches) is returned to the system when the
shard ends, however long the whole run is. Shards use the claims of :mod:`dataset_io`, so tasks
that overlap (a retry while the first try still runs, a second driver, a Slurm array on the same
folder) never render a sample twice or overwrite one.

* Progress: the driver counts the complete samples in ``--out`` (every node writes there) and the
  finished shards, on one progress line.
* Retries: a shard whose process fails (non-zero exit, or its node lost: Ray's own retries) is
  submitted again, up to ``--retries`` times; it renders only what is still missing.
* Resume: running the same command again submits only shards that still have missing samples.
* The manifest and preview are written once, by the driver, when the shards are done.

On a real cluster (see the README): the repository and its venv at the same path on every node
(``--ray-repo`` if it differs), ``ray start --head`` on one node and ``ray start --address
HEAD:6379`` on the others (from the venv), ``--out`` on a file system every node mounts, then
``--ray HEAD:6379`` (or ``--ray auto`` on a cluster node). Without an address a local cluster
with ``--ray-cpus`` CPUs is started for the run and stopped after it.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from core.errors import check, fail
from core.progress import ProgressBar

from . import dataset_io as io

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ShardResult:
    """What one shard's process did: exit code, seconds, the node and the end of its stderr."""

    shard: int
    returncode: int
    seconds: float
    node: str
    stderr_tail: str


def shard_count(count: int, shard_size: int, shards: int | None) -> int:
    """How many shards to split ``count`` samples into: ``shards``, or one per ``shard_size``."""
    n = shards if shards is not None else math.ceil(count / shard_size)
    check(n >= 1, f"--ray-shards must be at least 1, got {n}")
    return min(n, count)


def _render_shard(command: list[str], cwd: str, shard: int) -> ShardResult:
    """The Ray task: one generator process for one shard (runs on a worker node)."""
    import platform

    start = time.monotonic()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, *command], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    return ShardResult(shard, proc.returncode, time.monotonic() - start, platform.node(), proc.stderr[-2000:])


def run(generator_args: Sequence[str], kind: str, count: int, out: Path, description: dict[str, Any],
        address: str | None = None, shards: int | None = None, shard_size: int = 25, threads: int = 1,
        retries: int = 2, num_cpus: int | None = None, repo: Path = REPO, progress: bool = True,
        finish: Callable[[Path], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Render every missing sample of the dataset in ``out`` as Ray tasks; the run's figures.

    Args:
        generator_args: the generator's arguments that make the dataset (kind, count, seed, size,
            quality, ...), without ``--out``, ``--shard`` or ``--ray``; every shard gets them.
        description: dataset.json's content, written (or checked) before any task starts.
        address: a running cluster (``HOST:PORT``, ``auto``); ``None``: use the Ray this process
            already initialised, or start a local one with ``num_cpus`` CPUs.
        shards, shard_size: the split (see :func:`shard_count`).
        threads: Cycles threads per shard, and the CPUs each task asks Ray for.
        retries: times a failed shard is submitted again.
        repo: the repository's path on the worker nodes.
        finish: called with ``out`` when the shards are done (writes the manifest and preview).

    Returns:
        {"shards", "rendered" (samples new this run), "complete", "seconds", "samples_per_s",
        "failed" (shards that failed every try), "retried", "nodes"}.
    """
    try:
        import ray
    except ImportError:
        fail("--ray needs Ray: pip install 'ray[default]' (or use --shard i/N with another scheduler)")

    out = Path(out).resolve()
    io.open_dataset(out, description)
    io.sweep(out)
    n = shard_count(count, shard_size, shards)
    check(threads >= 1, f"--threads must be at least 1 with --ray, got {threads}")
    check(retries >= 0, f"--retries must be 0 or more, got {retries}")
    todo = [i for i in range(n) if any(not io.is_complete(out, j) for j in io.shard_indices(count, (i, n)))]
    before = len(io.complete_indices(out))
    started_ray = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPUs asked for; keep Ray quiet
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
        started_ray = True
    try:
        task = ray.remote(num_cpus=threads, max_retries=2)(_render_shard)
        base = ["-m", "blender_scenes.generate", *generator_args, "--out", str(out), "--threads", str(threads),
                "--quiet", "--no-preview", "--no-manifest"]

        def submit(i: int) -> Any:
            return task.remote([*base, "--shard", f"{i}/{n}"], str(repo), i)

        pending = {submit(i): i for i in todo}
        tries = {i: 1 for i in todo}
        failed: list[ShardResult] = []
        retried = 0
        nodes: set[str] = set()
        bar = ProgressBar(f"{kind} on ray, {len(todo)} shards", unit=" samples", enabled=progress)
        start = time.monotonic()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except (ray.exceptions.RayError, OSError) as exc:  # the node or worker died past Ray's retries
                    result = ShardResult(i, -1, 0.0, "?", str(exc)[-2000:])
                nodes.add(result.node)
                if result.returncode != 0:
                    if tries[i] <= retries:
                        tries[i] += 1
                        retried += 1
                        pending[submit(i)] = i
                    else:
                        failed.append(result)
            bar(io.count_samples(out), count)
        seconds = time.monotonic() - start
    finally:
        if started_ray:
            ray.shutdown()
    manifest = finish(out) if finish is not None else io.write_manifest(out)
    rendered = manifest["complete"] - before
    for result in failed:
        sys.stderr.write(f"generate: shard {result.shard}/{n} failed {retries + 1} times; last error:\n"
                         f"{result.stderr_tail.strip()}\n")
    return {"shards": len(todo), "rendered": rendered, "complete": manifest["complete"], "seconds": seconds,
            "samples_per_s": rendered / seconds if seconds > 0 else 0.0, "failed": [r.shard for r in failed],
            "retried": retried, "nodes": sorted(nodes)}
