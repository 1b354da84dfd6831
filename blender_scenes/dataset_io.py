"""The on-disk form of a Refocus dataset: folders, records, checksums, claims and the manifest. No bpy.

A dataset is one folder holding one kind and one split::

    DIR/
      dataset.json        what was asked for: kind, split, count, seed, size, options (same for every shard)
      manifest.json       the complete samples and the SHA-256 of each of their files
      preview.png         a grid a person can look at (first samples)
      000000/             one sample per folder, named by its index
        sample.json       camera, focus distances, apertures, objects, seed, and the files' checksums
        image.exr ...     scene-linear EXR: colour as half float RGB(A), depth and disparity as float32

Many processes, on one machine or many sharing the folder, may render into it at once (a Slurm
requeue while the old task still runs, a Ray cluster, a user starting a second run):

* A process *claims* a sample before rendering it: ``.NNNNNN.claim``, created atomically (a hard
  link of a complete file) and holding the host, pid, start time and a random token. A claim is
  *stale*, and the next process breaks it, when its pid is dead on this host (or was reused), or
  when its file was not refreshed for ``timeout_s`` (the holder refreshes it while it renders, so
  only a dead or unreachable holder on another host ages out). A live claim is skipped, never
  waited on or overwritten.
  Hosts sharing a folder must have distinct host names (pids are only compared on the same host).
* The holder renders into its own hidden folder ``.NNNNNN.<token>.partial``; what a killed run
  leaves there is removed by the next holder of that sample (or by :func:`sweep`).
* The commit is one ``rename`` of the complete folder to ``NNNNNN``, after ``sample.json`` (the
  last file written) names and checksums every file. A folder that is already in place is never
  replaced, so a sample is complete or absent and nothing is overwritten.
* ``manifest.json`` and ``preview.png`` are rewritten under a claim on ``.manifest.claim``, from
  what is on disk at that moment, so the last run to finish lists every sample.

Sample ``i`` of a dataset depends only on (seed, kind, split, i), never on the shard or process
that renders it. JSON is written with sorted keys and no timestamps or paths.

What is reproducible (measured with bpy 5.0.1, Cycles on the CPU): scenes, records, depth,
disparity and every other one-channel map are byte-identical from run to run, and so is colour
rendered without the denoiser (``--no-denoise``). OpenImageDenoise is not: the same sample
denoised twice, even in one process, on one thread or pinned to one core, at any denoiser quality
(fast, balanced, high), with or without albedo and normal passes and prefilter, differs by one
half-float step in about 0.1-0.4 % of its pixels. So with the denoiser the colour files, and
hence the checksums in records and manifest, vary from run to run; each file entry says whether
it is ``reproducible``, and :func:`sample_digest` (the manifest's ``digest``) hashes only what is.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from core.errors import check, fail
from core.imageio import atomic_write

FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.json"
SAMPLE_FILE = "sample.json"
PREVIEW_FILE = "preview.png"

# A claim not refreshed for this long is stale (the holder refreshes it every timeout / 4).
CLAIM_TIMEOUT_S = 600.0


# ---------------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind:
    """What the bpy-free code needs to know about one dataset kind.

    Attributes:
        name: the ``--kind`` name.
        splits: its splits, ``train`` first; the order is part of the seeds, so only append.
        stream: the kind's seed stream (part of every sample seed; never change it once data exists).
        files: files every sample holds beyond those its record names (``"file": "slice_00.exr"``).
        positive_maps: the depth or disparity maps of a record, finite and > 0 everywhere.
        options: the fields of ``dataset_samples.Options`` that shape this kind (in dataset.json).
        renderer: ``"module:function"`` rendering one sample (bpy), called as
            ``function(rng, split, seed, options, folder) -> record``.
    """

    name: str
    splits: tuple[str, ...]
    stream: int
    files: tuple[str, ...] = ()
    positive_maps: Callable[[dict], list[str]] | None = None
    options: tuple[str, ...] = ()
    renderer: str = ""


REGISTRY: dict[str, Kind] = {}
KINDS: list[str] = []  # registration order; `--kind` choices
SPLITS: dict[str, tuple[str, ...]] = {}


def register_kind(name: str, splits: Iterable[str], *, stream: int | None = None, files: Iterable[str] = (),
                  positive_maps: Callable[[dict], list[str]] | None = None, options: Iterable[str] = (),
                  renderer: str = "") -> Kind:
    """Add a dataset kind (one call per kind, at import of the kind's module or below).

    ``stream`` defaults to a hash of the name, so a new kind's seeds never depend on which other
    kinds exist or on import order.
    """
    if stream is None:
        stream = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    kind = Kind(name, tuple(splits), int(stream), tuple(files), positive_maps, tuple(options), renderer)
    check(bool(kind.splits), f"kind {name} needs at least one split")
    other = next((k for k in REGISTRY.values() if k.stream == kind.stream and k.name != name), None)
    check(other is None, f"kind {name} reuses the seed stream of {other.name if other else ''}")
    if name not in REGISTRY:
        KINDS.append(name)
    REGISTRY[name] = kind
    SPLITS[name] = kind.splits
    return kind


def kind_info(kind: str) -> Kind:
    check(kind in REGISTRY, f"unknown dataset kind {kind!r}; use one of {', '.join(KINDS)}")
    return REGISTRY[kind]


def load_renderer(kind: str) -> Callable[..., dict]:
    """The bpy function that renders one sample of ``kind`` (imported on first use)."""
    spec = kind_info(kind).renderer
    check(":" in spec, f"kind {kind} names no renderer")
    module, function = spec.split(":")
    return getattr(importlib.import_module(module), function)


def _depth_only(record: dict) -> list[str]:
    return ["depth.exr"]


def _stereo_maps(record: dict) -> list[str]:
    return ["depth_left.exr", "depth_right.exr", "disparity_left.exr", "disparity_right.exr"]


def _sweep_maps(record: dict) -> list[str]:
    return [f["depth_file"] for f in record.get("frames", [])]


# The built-in kinds keep streams 0-3 (their place in the original tuple), so their seeds hold.
# DefocusNet's held-out test sets (seed 002): new shapes, new appearance, wider and medium depth of field;
# test-unseen-camera (issue 21): held-out cameras (generate --camera unseen-50mm / unseen-phone).
register_kind("defocusnet", ("train", "test-shape", "test-appearance", "test-wide-dof", "test-medium-dof",
                             "test-unseen-camera"),
              stream=0, files=("image.exr", "depth.exr"), positive_maps=_depth_only,
              options=("slices", "focus", "f_stop", "breathing", "shake_mm", "shake_deg"),
              renderer="blender_scenes.dataset_samples:render_defocusnet")
register_kind("deeplens", ("train", "test"), stream=1, files=("image.exr", "depth.exr"), positive_maps=_depth_only,
              options=("dof_renders",), renderer="blender_scenes.dataset_samples:render_deeplens")
register_kind("stereo", ("train", "test"), stream=2,
              files=("left.exr", "right.exr", *_stereo_maps({})), positive_maps=_stereo_maps,
              renderer="blender_scenes.dataset_samples:render_stereo")
register_kind("sweep", ("train", "test"), stream=3, positive_maps=_sweep_maps, options=("frames", "ramps"),
              renderer="blender_scenes.dataset_samples:render_sweep")
# Focus Track (issue 18): nothing is trained; tune on dev, report test.
register_kind("track", ("dev", "test"), stream=4, positive_maps=_sweep_maps, options=("frames",),
              renderer="blender_scenes.kind_track:render_track")
# Mono Depth (issue 17).
register_kind("mono", ("train", "val", "test"), stream=5, files=("image.exr", "depth.exr"), positive_maps=_depth_only,
              renderer="blender_scenes.kind_mono:render_mono")
# A new kind: one register_kind(...) line here (its own stream is a hash of its name unless given),
# and its renderer in its own module (blender_scenes/kind_<name>.py), named by `renderer`.

_SAMPLE_DIR = re.compile(r"^\d{6}$")
_PARTIAL = re.compile(r"^\.(\d{6})\.([A-Za-z0-9-]+)\.(partial|broken)$")  # a holder's folder, or one set aside
_CLAIM = re.compile(r"^\.(\d{6}|manifest)\.claim$")
_FILE_SUFFIXES = (".exr", ".png", ".json", ".npy", ".npz", ".mp4")


# ---------------------------------------------------------------------------------------- names
def sample_name(index: int) -> str:
    return f"{index:06d}"


def sample_dir(root: str | os.PathLike[str], index: int) -> Path:
    return Path(root) / sample_name(index)


def temp_sample_dir(root: str | os.PathLike[str], index: int, token: str) -> Path:
    """Where the holder of claim ``token`` writes sample ``index`` before renaming it into place."""
    return Path(root) / f".{sample_name(index)}.{token}.partial"


def check_kind_split(kind: str, split: str) -> None:
    kind_info(kind)
    check(split in SPLITS[kind], f"kind {kind} has no split {split!r}; use one of {', '.join(SPLITS[kind])}")


# ---------------------------------------------------------------------------------------- seeds
def sample_seed(seed: int, kind: str, split: str, index: int) -> int:
    """The 32-bit seed of one sample: a function of the dataset seed, kind, split and index only.

    Splits draw from separate streams, so a test split never repeats a training scene.
    """
    check_kind_split(kind, split)
    sequence = np.random.SeedSequence([seed, REGISTRY[kind].stream, SPLITS[kind].index(split), index])
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


def _fsync(path: Path) -> None:
    """Flush a file or folder to the disk, so a rename after it never exposes lost data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync folders; the rename stays atomic
        pass
    finally:
        os.close(fd)


def file_entries(folder: Path, names: Iterable[str], varying: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """{name: {"sha256", "bytes", "reproducible"}} for files in ``folder``; ``varying`` names the
    files another run of the same sample does not reproduce byte for byte (denoised colour)."""
    varying = set(varying)
    return {name: {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size,
                   "reproducible": name not in varying} for name in sorted(names)}


def named_files(record: dict[str, Any]) -> set[str]:
    """Every file a sample's record says it holds: the kind's fixed files and every file name a
    view, layer or map entry gives (any string ending in a data file suffix), ``files`` aside."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key != "files":
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.endswith(_FILE_SUFFIXES) and "/" not in value:
            names.add(value)

    walk(record)
    kind = REGISTRY.get(record.get("kind", ""))
    return names | set(kind.files if kind else ())


def sample_digest(record: dict[str, Any]) -> str:
    """SHA-256 of what of a sample is reproducible: its record without checksums, and the checksums
    of its reproducible files. Equal across runs of the same seed and options, denoised or not."""
    files = record.get("files", {})
    kept = {name: entry["sha256"] for name, entry in files.items() if entry.get("reproducible", True)}
    body = {k: v for k, v in record.items() if k != "files"}
    return hashlib.sha256(dumps({"record": body, "files": kept}).encode()).hexdigest()


# --------------------------------------------------------------------------------------- claims
HOST = socket.gethostname()


def _process_started(pid: int) -> float | None:
    """Start time (Unix seconds) of process ``pid`` on this host, or None if it is not running."""
    try:
        import psutil
    except ImportError:  # no psutil: liveness only, no pid-reuse check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return 0.0


def _read_claim(path: Path) -> tuple[dict[str, Any] | None, float] | None:
    """(the claim's content or None if unreadable, its mtime), or None if there is no claim."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(text)
        return (info if isinstance(info, dict) else None), mtime
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, mtime


def claim_is_stale(info: dict[str, Any] | None, mtime: float, timeout_s: float, now: float | None = None) -> bool:
    """Whether a claim (its content and file mtime) may be broken: not refreshed for ``timeout_s``,
    or held by a dead (or since reused) pid on this host. An unreadable claim is stale once it
    has aged a few seconds (a file system without hard links can show one half-written)."""
    now = time.time() if now is None else now
    if now - mtime > timeout_s:
        return True
    if info is None:
        return now - mtime > 5.0
    if info.get("host") != HOST:
        return False
    try:
        pid, start = int(info["pid"]), float(info["start"])
    except (KeyError, TypeError, ValueError):
        return True
    started = _process_started(pid)
    return started is None or started > start + 1.0


@dataclass
class Claim:
    """A held claim: its lock file and the token naming its temporary folder."""

    path: Path
    token: str
    name: str

    def refresh(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)


class Claims:
    """This process's claims in one dataset folder, refreshed by a background thread while held.

    Use as a context manager: every claim still held (a crash, Ctrl-C) is released on exit, and
    its temporary folder removed.
    """

    def __init__(self, root: str | os.PathLike[str], timeout_s: float = CLAIM_TIMEOUT_S) -> None:
        check(timeout_s > 0, f"claim timeout must be positive, got {timeout_s}")
        self.root, self.timeout_s = Path(root), float(timeout_s)
        self.pid = os.getpid()
        self.start = _process_started(self.pid) or time.time()
        self.held: dict[str, Claim] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Claims":
        self._thread = threading.Thread(target=self._heartbeat, name="refocus-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for claim in list(self.held.values()):
            self.release(claim)
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(60.0, self.timeout_s / 4)):
            with self._lock:
                for claim in self.held.values():
                    claim.refresh()

    def take(self, name: str) -> Claim | None:
        """Claim ``name`` (a sample name, or ``manifest``): the claim, or None while another live
        process holds it. Breaks a stale claim."""
        path = self.root / f".{name}.claim"
        token = f"{re.sub(r'[^A-Za-z0-9-]', '-', HOST)[:40]}-{self.pid}-{secrets.token_hex(4)}"
        text = json.dumps({"host": HOST, "pid": self.pid, "start": self.start, "token": token,
                           "claimed": time.time()}, sort_keys=True)
        staging = self.root / f".{name}.{token}.claiming"
        staging.write_text(text)
        try:
            for _ in range(5):
                if _link(staging, path):
                    claim = Claim(path, token, name)
                    with self._lock:
                        self.held[name] = claim
                    return claim
                found = _read_claim(path)
                if found is None:  # released meanwhile: try again
                    continue
                info, mtime = found
                if not claim_is_stale(info, mtime, self.timeout_s):
                    return None
                _break(path, info, token)
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()

    def release(self, claim: Claim) -> None:
        """Give ``claim`` up and remove its temporary folder if it is still there."""
        with self._lock:
            self.held.pop(claim.name, None)
        if claim.name != "manifest":
            shutil.rmtree(temp_sample_dir(self.root, int(claim.name), claim.token), ignore_errors=True)
        found = _read_claim(claim.path)
        if found is not None and found[0] is not None and found[0].get("token") == claim.token:
            with contextlib.suppress(FileNotFoundError):
                claim.path.unlink()

    @contextlib.contextmanager
    def holding(self, name: str, wait_s: float = 0.0) -> Iterator[Claim | None]:
        """``with claims.holding("manifest", wait_s=60) as claim:`` retry for up to ``wait_s``."""
        deadline = time.monotonic() + wait_s
        claim = self.take(name)
        while claim is None and time.monotonic() < deadline:
            time.sleep(0.05)
            claim = self.take(name)
        try:
            yield claim
        finally:
            if claim is not None:
                self.release(claim)


def _link(source: Path, target: Path) -> bool:
    """Create ``target`` holding ``source``'s complete content, atomically, unless it exists."""
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # no hard links here (some network file systems): exclusive create
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(source.read_text())
    return True


def _break(path: Path, judged: dict[str, Any] | None, token: str) -> None:
    """Remove the stale claim at ``path``, unless it was replaced by a fresh one since it was judged:
    move it aside first, then look at what was moved, and put back a claim that was not the stale one."""
    grave = path.with_name(f"{path.name}.{token}.stale")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return
    moved = _read_claim(grave)
    try:
        judged_token = judged.get("token") if judged else None
        moved_token = moved[0].get("token") if moved and moved[0] else None
        if moved_token != judged_token:
            _link(grave, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            grave.unlink()


# ------------------------------------------------------------------------------------- samples
def start_sample(root: str | os.PathLike[str], index: int, claim: Claim) -> Path:
    """An empty temporary folder for sample ``index`` under ``claim``, first removing what earlier,
    now dead holders of this sample left (this process holds the claim, so none of them is live)."""
    root = Path(root)
    for stale in root.glob(f".{sample_name(index)}.*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = temp_sample_dir(root, index, claim.token)
    tmp.mkdir()
    return tmp


def commit_sample(root: str | os.PathLike[str], index: int, record: dict[str, Any], claim: Claim,
                  varying: Iterable[str] = ()) -> Path:
    """Finish sample ``index``: check that every file its record names was written, checksum them
    into ``record``, write ``sample.json`` last, and rename the folder into place in one step.

    A complete sample already in place (another run got there first; the same seed gives the same
    sample) is kept and this one dropped. ``varying``: see :func:`file_entries`.
    """
    root = Path(root)
    tmp = temp_sample_dir(root, index, claim.token)
    entries = sorted(tmp.iterdir())
    stray = [p.name for p in entries if p.name.startswith(".") or not p.is_file()]
    if stray:
        raise RuntimeError(f"sample {sample_name(index)}: the renderer left {', '.join(stray)} behind")
    names = {p.name for p in entries if p.name != SAMPLE_FILE}
    missing = named_files(record) - names
    if missing:
        raise RuntimeError(f"sample {sample_name(index)}: its record names {', '.join(sorted(missing))}, "
                           "which the renderer did not write")
    record = dict(record, files=file_entries(tmp, names, varying))
    for name in names:
        _fsync(tmp / name)
    write_json(tmp / SAMPLE_FILE, record)
    _fsync(tmp / SAMPLE_FILE)
    _fsync(tmp)
    final = sample_dir(root, index)
    try:
        os.rename(tmp, final)  # fails on a folder in place that is not empty
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        if is_complete(root, index):
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        # A folder without a record (a copy cut short, a hand edit): move it aside, then commit.
        aside = root / f".{sample_name(index)}.{claim.token}.broken"
        os.rename(final, aside)
        os.rename(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    _fsync(root)
    return final


def is_complete(root: str | os.PathLike[str], index: int) -> bool:
    return (sample_dir(root, index) / SAMPLE_FILE).is_file()


def sample_indices(root: str | os.PathLike[str]) -> list[int]:
    """Indices of every sample folder in place, complete or not."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and _SAMPLE_DIR.match(p.name))


def complete_indices(root: str | os.PathLike[str]) -> list[int]:
    """Indices of the sample folders in place holding a record (renamed into place, so complete)."""
    return [i for i in sample_indices(root) if is_complete(root, i)]


def count_samples(root: str | os.PathLike[str]) -> int:
    """How many sample folders are in place (cheap: names only; a folder appears only complete)."""
    try:
        with os.scandir(root) as entries:
            return sum(1 for e in entries if _SAMPLE_DIR.match(e.name))
    except FileNotFoundError:
        return 0


def leftover_partials(root: str | os.PathLike[str]) -> list[Path]:
    """Temporary sample folders: of a run in progress, or left by a killed one."""
    root = Path(root)
    return sorted(p for p in root.iterdir() if _PARTIAL.match(p.name))


def claim_files(root: str | os.PathLike[str]) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.iterdir() if _CLAIM.match(p.name))


def sweep(root: str | os.PathLike[str], timeout_s: float = CLAIM_TIMEOUT_S) -> list[str]:
    """Remove what dead runs left in ``root``: stale claims, temporary folders no live claim owns,
    and temporary files of dead processes. Returns the names removed. Safe while others run."""
    root = Path(root)
    removed = []
    for path in claim_files(root):
        found = _read_claim(path)
        if found is not None and claim_is_stale(found[0], found[1], timeout_s):
            _break(path, found[0], f"sweep-{os.getpid()}-{secrets.token_hex(4)}")
            removed.append(path.name)
    now = time.time()
    for entry in root.iterdir():
        match = _PARTIAL.match(entry.name)
        if match:
            if not _owned(root, match.group(1), match.group(2), timeout_s):
                # A holder creates its claim before its folder: give a just-created pair a moment.
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.stat().st_mtime > 5.0:
                        shutil.rmtree(entry, ignore_errors=True)
                        removed.append(entry.name)
        elif _dead_temp_file(entry, timeout_s, now):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry.name)
    return removed


def _owned(root: Path, name: str, token: str, timeout_s: float) -> bool:
    """Whether sample ``name``'s claim is live and holds ``token`` (the owner of that temporary folder),
    or is unreadable and young (perhaps being written): read now, not from an earlier listing."""
    found = _read_claim(root / f".{name}.claim")
    if found is None:
        return False
    info, mtime = found
    if claim_is_stale(info, mtime, timeout_s):
        return False
    return info is None or info.get("token") == token


_TEMP_FILE = re.compile(r"^\..+\.(\d+)\.tmp(\.[A-Za-z0-9]+)?$")  # core.imageio.atomic_write's names
_STAGING = re.compile(r"^\..+\.(claiming|stale)$")


def _dead_temp_file(entry: Path, timeout_s: float, now: float) -> bool:
    try:
        if not entry.is_file():
            return False
        age = now - entry.stat().st_mtime
    except FileNotFoundError:
        return False
    if _STAGING.match(entry.name):
        return age > timeout_s
    match = _TEMP_FILE.match(entry.name)
    if match is None:
        return False
    # The pid may be another host's: only a file left unwritten for a minute counts as abandoned.
    return age > timeout_s or (age > 60.0 and _process_started(int(match.group(1))) is None)


def stray_entries(root: str | os.PathLike[str]) -> list[str]:
    """Names in ``root`` that are no part of a finished dataset: temporary folders and files,
    claims, anything unknown. Empty for a finished, quiet dataset."""
    root = Path(root)
    known = {DATASET_FILE, MANIFEST_FILE, PREVIEW_FILE}
    return sorted(p.name for p in root.iterdir()
                  if not (p.name in known and p.is_file()) and not (p.is_dir() and _SAMPLE_DIR.match(p.name)))


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
            "digest": sample_digest(record),
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


def write_manifest(root: str | os.PathLike[str], claims: Claims | None = None, wait_s: float = 120.0,
                   then: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Rebuild ``manifest.json`` from the sample folders, and run ``then(manifest)`` (the preview),
    under the manifest claim so that concurrent runs take turns; the manifest written."""
    claims = Claims(root) if claims is None else claims
    with claims.holding("manifest", wait_s=wait_s) as claim:
        check(claim is not None, f"another run kept {root}/.manifest.claim for {wait_s:.0f} s; "
              "run python -m blender_scenes.validate DIR --reindex once it finishes")
        manifest = build_manifest(root)
        write_json(Path(root) / MANIFEST_FILE, manifest)
        if then is not None:
            then(manifest)
    return manifest
