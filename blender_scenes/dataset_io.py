"""The on-disk form of a Refocus dataset: folders, records, checksums and the manifest. No bpy.

A dataset is one folder holding one kind and one split::

    DIR/
      dataset.json        what was asked for: kind, split, count, seed, size, options (same for every shard)
      manifest.json       the complete samples and the SHA-256 of each of their files
      preview.png         a grid a person can look at (first samples)
      000000/             one sample per folder, named by its index
        sample.json       camera, focus distances, apertures, objects, seed, and the files' checksums
        image.exr ...     scene-linear EXR: colour as half float RGB(A), depth and disparity as float32

A sample folder is rendered under a hidden temporary name and renamed into place when every file
is written, so it is either complete or absent: a run killed mid-way resumes at the first missing
sample and never sees half a sample. Sample ``i`` of a dataset depends only on (seed, kind, split,
i), never on the shard that renders it, so any split of the work into shards gives the same files.

Everything written is deterministic (sorted JSON keys, no timestamps, no paths): the same seed and
options give byte-identical datasets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from core.errors import check, fail
from core.imageio import atomic_write

FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.json"
SAMPLE_FILE = "sample.json"
PREVIEW_FILE = "preview.png"

KINDS = ("defocusnet", "deeplens", "stereo", "sweep", "track")
# DefocusNet's held-out test sets (seed 002): new shapes, new appearance, wider and medium depth of field.
SPLITS = {
    # test-unseen-camera (issue 21): held-out cameras (generate --camera unseen-50mm / unseen-phone)
    "defocusnet": ("train", "test-shape", "test-appearance", "test-wide-dof", "test-medium-dof", "test-unseen-camera"),
    "deeplens": ("train", "test"),
    "stereo": ("train", "test"),
    "sweep": ("train", "test"),
    "track": ("dev", "test"),  # Focus Track (issue 18): nothing is trained; tune on dev, report test
}

_SAMPLE_DIR = re.compile(r"^\d{6}$")
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".partial"


# ---------------------------------------------------------------------------------------- names
def sample_name(index: int) -> str:
    return f"{index:06d}"


def sample_dir(root: str | os.PathLike[str], index: int) -> Path:
    return Path(root) / sample_name(index)


def temp_sample_dir(root: str | os.PathLike[str], index: int) -> Path:
    """Where sample ``index`` is written before it is renamed into place (hidden, one per sample)."""
    return Path(root) / f"{_TEMP_PREFIX}{sample_name(index)}{_TEMP_SUFFIX}"


def check_kind_split(kind: str, split: str) -> None:
    check(kind in KINDS, f"unknown dataset kind {kind!r}; use one of {', '.join(KINDS)}")
    check(split in SPLITS[kind], f"kind {kind} has no split {split!r}; use one of {', '.join(SPLITS[kind])}")


# ---------------------------------------------------------------------------------------- seeds
def sample_seed(seed: int, kind: str, split: str, index: int) -> int:
    """The 32-bit seed of one sample: a function of the dataset seed, kind, split and index only.

    Splits draw from separate streams, so a test split never repeats a training scene.
    """
    check_kind_split(kind, split)
    sequence = np.random.SeedSequence([seed, KINDS.index(kind), SPLITS[kind].index(split), index])
    return int(sequence.generate_state(1, np.uint32)[0])


# --------------------------------------------------------------------------------------- shards
def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` to (i, N), 0 <= i < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    check(match is not None, f"shard must look like i/N (e.g. 0/4), got {text!r}")
    assert match is not None
    i, n = int(match.group(1)), int(match.group(2))
    check(n >= 1 and 0 <= i < n, f"shard {text!r} needs N >= 1 and 0 <= i < N")
    return i, n


def shard_indices(count: int, shard: tuple[int, int]) -> range:
    """The sample indices shard i of N renders: i, i + N, i + 2N, ... (interleaved, so every shard
    gets a like share of easy and hard scenes)."""
    i, n = shard
    return range(i, count, n)


# ----------------------------------------------------------------------------------------- JSON
def to_json(value: Any) -> Any:
    """Plain JSON types from numpy scalars, arrays and tuples (floats kept at full precision)."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        check(value == value and abs(value) != float("inf"), f"non-finite number {value} in a record")
    return value


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(to_json(record), indent=1, sort_keys=True) + "\n"


def write_json(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Write ``record`` as sorted, indented JSON, atomically."""
    text = dumps(record)
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    check(p.is_file(), f"file not found: {p}")
    try:
        value = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{p} is not valid JSON: {exc}")
    check(isinstance(value, dict), f"{p} must hold a JSON object")
    return value


# ------------------------------------------------------------------------------------ checksums
def sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entries(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{name: {"sha256", "bytes"}} for files in ``folder``."""
    return {name: {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size} for name in sorted(names)}


# ------------------------------------------------------------------------------------- samples
def commit_sample(root: str | os.PathLike[str], index: int, record: dict[str, Any]) -> Path:
    """Finish sample ``index``: checksum every file in its temporary folder into ``record``, write
    ``sample.json`` last, and rename the folder into place."""
    tmp = temp_sample_dir(root, index)
    names = [p.name for p in tmp.iterdir() if p.is_file() and p.name != SAMPLE_FILE]
    record = dict(record, files=file_entries(tmp, names))
    write_json(tmp / SAMPLE_FILE, record)
    final = sample_dir(root, index)
    if final.exists():  # a sample found bad by validate and re-rendered
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def start_sample(root: str | os.PathLike[str], index: int) -> Path:
    """An empty temporary folder for sample ``index``, removing what a killed run left there."""
    tmp = temp_sample_dir(root, index)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def is_complete(root: str | os.PathLike[str], index: int) -> bool:
    return (sample_dir(root, index) / SAMPLE_FILE).is_file()


def complete_indices(root: str | os.PathLike[str]) -> list[int]:
    """Indices of the sample folders present (renamed into place, so complete)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir()
                  if p.is_dir() and _SAMPLE_DIR.match(p.name) and (p / SAMPLE_FILE).is_file())


def leftover_partials(root: str | os.PathLike[str]) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.iterdir() if p.name.startswith(_TEMP_PREFIX) and p.name.endswith(_TEMP_SUFFIX))


# ------------------------------------------------------------------------------ dataset records
def open_dataset(root: str | os.PathLike[str], description: dict[str, Any]) -> None:
    """Create ``root`` for ``description`` or check that what it holds is the same dataset.

    Every shard calls this with the same description, so concurrent shards write identical files.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / DATASET_FILE
    if path.exists():
        existing = read_json(path)
        if existing != json.loads(dumps(description)):
            differ = sorted(k for k in set(existing) | set(description)
                            if existing.get(k) != json.loads(dumps({k: description.get(k)})).get(k))
            fail(f"{root} already holds another dataset (differs in {', '.join(differ)}); "
                 f"choose a new --out or the same options")
        return
    write_json(path, description)


def build_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of what ``root`` holds now: counts and every complete sample's checksums."""
    root = Path(root)
    description = read_json(root / DATASET_FILE)
    samples = []
    for index in complete_indices(root):
        folder = sample_dir(root, index)
        record = read_json(folder / SAMPLE_FILE)
        samples.append({
            "index": index,
            "name": sample_name(index),
            "record_sha256": sha256(folder / SAMPLE_FILE),
            "files": record.get("files", {}),
        })
    return {
        "format": FORMAT_VERSION,
        "kind": description["kind"],
        "split": description["split"],
        "count": description["count"],
        "complete": len(samples),
        "samples": samples,
    }


def write_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    manifest = build_manifest(root)
    write_json(Path(root) / MANIFEST_FILE, manifest)
    return manifest
