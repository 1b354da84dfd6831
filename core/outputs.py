"""Output files: all checked before any work, all written together, none half written.

A command that writes several files (a disparity map, a depth map, a confidence map) declares
them in an :class:`OutputSet` before it reads its inputs. Each is checked at once (extension,
folder present and writable, not a folder itself, not an existing read-only or special file, no
two the same file), so bad output paths fail in a second rather than after a minute of compute.
After the compute every file is written to a temporary file beside its target, and only when all
are written are they renamed into place, one after another; if a rename fails, the ones already
renamed are rolled back. A failure, Ctrl-C or SIGTERM leaves the old files (or none), never a mix
and never a temporary file. Only SIGKILL or a power cut can leave a temporary file behind; those
are swept (their process being dead) the next time anything is written to that folder.

Temporary files are named ``.<name>.<pid>-<8 hex>.refocus-tmp<suffix>`` (the suffix is kept
because encoders such as OpenCV choose the format from it). :func:`atomic_write` gives the same
for a single file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Callable, Iterable, Iterator

from .errors import InputError, check, fail

TEMP_TAG = "refocus-tmp"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\." + TEMP_TAG + r"(?:\.[^./]*)?$")
# The naming of earlier releases (``.<stem>.<pid>.tmp<suffix>``), swept the same way.
_LEGACY_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(?:\.[^./]*)?$")


class Terminated(SystemExit):
    """SIGTERM (or SIGHUP) arrived while files were being written; they have been removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


# ------------------------------------------------------------------------------ temporary names
def temp_path(target: str | os.PathLike[str]) -> Path:
    """A fresh temporary path beside ``target`` in this module's naming, with its suffix."""
    t = Path(target)
    return t.parent / f".{t.name}.{os.getpid()}-{secrets.token_hex(4)}.{TEMP_TAG}{t.suffix}"


def is_own_temp(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a temporary file of this process in this module's naming."""
    m = _TEMP_NAME.match(Path(path).name)
    return bool(m) and int(m.group("pid")) == os.getpid()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's live process (or a pid we cannot ask about): leave it alone
    return True


_swept: set[str] = set()


def sweep_stale(folder: str | os.PathLike[str], force: bool = False) -> list[Path]:
    """Remove temporary files of our naming in ``folder`` whose writing process is dead.

    Each folder is swept once per process unless ``force``. Returns the files removed.
    """
    key = os.path.abspath(folder)
    if key in _swept and not force:
        return []
    _swept.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        m = _TEMP_NAME.match(entry.name) or _LEGACY_NAME.match(entry.name)
        if m is None or _alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


# ------------------------------------------------------------------------ cleanup on termination
_live: set[Path] = set()  # temporary files being written right now, by any thread
_live_lock = threading.Lock()
_guard_depth = 0
_previous: dict[int, object] = {}
_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


def _remove_live() -> None:
    with _live_lock:
        paths = list(_live)
        _live.clear()
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _remove_live()
    raise Terminated(signum)


@contextlib.contextmanager
def _cleanup_on_signal() -> Iterator[None]:
    """While inside, SIGTERM/SIGHUP remove every live temporary file and raise :class:`Terminated`.

    Handlers can only be set from the main thread; elsewhere (the worker's compute thread) the
    block still removes its files on exceptions, and the process's own handler stays in charge.
    Nested uses share one installation; the previous handlers come back on leaving the outermost.
    """
    global _guard_depth
    main = threading.current_thread() is threading.main_thread()
    if main:
        if _guard_depth == 0:
            for s in _SIGNALS:
                with contextlib.suppress(ValueError, OSError):
                    _previous[s] = signal.signal(s, _on_signal)
        _guard_depth += 1
    try:
        yield
    finally:
        if main:
            _guard_depth -= 1
            if _guard_depth == 0:
                for s, handler in list(_previous.items()):
                    with contextlib.suppress(ValueError, OSError, TypeError):
                        signal.signal(s, handler)  # type: ignore[arg-type]
                _previous.clear()


def _track(path: Path) -> None:
    with _live_lock:
        _live.add(path)


def _untrack(path: Path) -> None:
    with _live_lock:
        _live.discard(path)


def _discard(path: Path | None) -> None:
    if path is None:
        return
    _untrack(path)
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
        path.unlink()


def _sync(path: Path) -> None:
    """Flush a written file to disk before it is renamed over an old one (a power cut keeps one)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------- checks
def _check_folder(folder: Path, what: str) -> None:
    check(folder.exists(), f"{what} folder does not exist: {folder}")
    check(folder.is_dir(), f"{what} folder is not a folder: {folder}")
    probe = temp_path(folder / "probe")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        fail(f"cannot write in the {what} folder {folder}: {exc.strerror or exc}")
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def resolve_output(path: str | os.PathLike[str], kinds: Iterable[str], what: str = "output") -> Path:
    """Check that one output can be written and return its resolved path (symlinks followed).

    Raises :class:`InputError` (one sentence naming the file) for an unknown extension, a missing
    or unwritable folder, a path that is a folder, a special file or a read-only file.
    """
    text = os.fspath(path)
    check(bool(text.strip()), f"the {what} path is empty")
    check("\0" not in text, f"the {what} path holds a NUL character")
    kinds = tuple(kinds)
    given = Path(text).expanduser()
    check(given.suffix.lower() in kinds, f"unknown {what} extension {given.suffix or '(none)'} for {given}; "
                                         f"use one of {', '.join(kinds)}")
    try:
        target = given.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a too-long name
        fail(f"cannot use {what} path {given}: {exc}")
    if target.exists() or target.is_symlink():
        check(not target.is_dir(), f"{what} path is a folder: {given}")
        check(target.is_file(), f"{what} path exists and is not a regular file: {given}")
        check(os.access(target, os.W_OK), f"{what} file exists and is read-only: {given}")
    check(len(target.name.encode()) <= 200, f"{what} file name is too long: {given}")
    _check_folder(target.parent, what)
    sweep_stale(target.parent)
    return target


@dataclass
class Output:
    """One declared output: the path as given, its resolved target, and what it holds."""

    given: str
    target: Path
    what: str
    temp: Path | None = None

    def __fspath__(self) -> str:
        return self.given


class OutputSet:
    """The files one command writes: checked when declared, renamed into place together.

    Usage::

        outputs = OutputSet()
        disparity = outputs.add(args.output, MAP_EXTENSIONS, "disparity output")
        ...  # read inputs, compute
        with outputs.writing():
            outputs.write(disparity, lambda tmp: write_map(tmp, values))

    Inside ``writing()`` each ``write`` runs the writer on a temporary path (writers from
    :mod:`core.imageio` write such a path directly); leaving the block without an exception
    renames them all, an exception (or SIGTERM) removes them all.
    """

    def __init__(self) -> None:
        self.outputs: list[Output] = []
        self._writing = False

    def add(self, path: str | os.PathLike[str], kinds: Iterable[str], what: str = "output") -> Output:
        """Declare and check an output (see :func:`resolve_output`); no two may be the same file."""
        target = resolve_output(path, kinds, what)
        for other in self.outputs:
            same = os.path.normcase(str(other.target)) == os.path.normcase(str(target))
            if not same and target.exists() and other.target.exists():
                with contextlib.suppress(OSError):
                    same = os.path.samefile(target, other.target)
            check(not same, f"the {what} and the {other.what} are the same file ({os.fspath(path)}); "
                            f"give each output its own path")
        out = Output(os.fspath(path), target, what)
        self.outputs.append(out)
        return out

    def __iter__(self) -> Iterator[Output]:
        return iter(self.outputs)

    def check_space(self, nbytes: int) -> None:
        """Refuse before writing when the outputs' folders lack ``nbytes`` of free space (all outputs)."""
        import shutil

        folders = {o.target.parent for o in self.outputs}
        for folder in folders:
            with contextlib.suppress(OSError):
                free = shutil.disk_usage(folder).free
                check(free >= nbytes, f"not enough free space in {folder} for the outputs: "
                                      f"{nbytes / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB free")

    @contextlib.contextmanager
    def writing(self) -> Iterator["OutputSet"]:
        """Stage writes inside; commit them all on success, remove them all otherwise."""
        check(not self._writing, "outputs are already being written")
        self._writing = True
        try:
            with _cleanup_on_signal():
                try:
                    yield self
                    self._commit()
                finally:
                    for out in self.outputs:
                        _discard(out.temp)
                        out.temp = None
        finally:
            self._writing = False

    def write(self, out: Output, writer: Callable[[Path], None]) -> None:
        """Run ``writer(temp_path)`` for a declared output; the file is renamed at commit."""
        check(self._writing, "OutputSet.write must be called inside writing()")
        check(out in self.outputs, f"{out.given} was not declared as an output")
        check(out.temp is None, f"{out.given} is written twice")
        tmp = temp_path(out.target)
        _track(tmp)
        out.temp = tmp
        writer(tmp)
        check(tmp.is_file(), f"the {out.what} writer produced no file for {out.given}")

    def _commit(self) -> None:
        staged = [o for o in self.outputs if o.temp is not None]
        done: list[tuple[Output, Path | None]] = []
        try:
            for out in staged:
                assert out.temp is not None
                _sync(out.temp)
            for out in staged:
                assert out.temp is not None
                backup = None
                if out.target.exists():
                    backup = temp_path(out.target)
                    _track(backup)
                    try:
                        os.link(out.target, backup)  # the old file stays in place; a second name keeps it
                    except OSError:
                        _untrack(backup)
                        backup = None
                os.replace(out.temp, out.target)
                _untrack(out.temp)
                out.temp = None
                done.append((out, backup))
        except BaseException:
            for out, backup in reversed(done):  # put back what was there before
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, out.target)
                        _untrack(backup)
                    else:
                        out.target.unlink()
            raise
        finally:
            for _, backup in done:
                _discard(backup)


# ------------------------------------------------------------------------------- single files
@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    A ``path`` that is already one of this process's temporary files (an :class:`OutputSet`
    staging it) is yielded as is: the set renames it later.
    """
    target = Path(path)
    if is_own_temp(target):
        yield target
        return
    parent = target.parent if str(target.parent) else Path(".")
    check(parent.is_dir(), f"output folder does not exist: {parent}")
    check(not target.is_dir(), f"output path is a folder: {target}")
    sweep_stale(parent)
    tmp = temp_path(target)
    with _cleanup_on_signal():
        _track(tmp)
        try:
            yield tmp
            if tmp.exists():
                _sync(tmp)
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise InputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            _discard(tmp)
