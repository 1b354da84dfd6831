"""Helpers shared by subcommands: output checks before any work is done."""

from __future__ import annotations

from pathlib import Path

from ..errors import check
from ..formats import IMAGE_EXTENSIONS, MAP_EXTENSIONS, NAN_POLICIES


def check_output_path(path: str, kinds: tuple[str, ...] = IMAGE_EXTENSIONS, what: str = "output") -> None:
    """Fail before any work is done if the output could not be written."""
    p = Path(path)
    check(p.suffix.lower() in kinds, f"unknown {what} extension {p.suffix or '(none)'} for {p}; "
                                     f"use one of {', '.join(kinds)}")
    parent = p.parent if str(p.parent) else Path(".")
    check(parent.is_dir(), f"{what} folder does not exist: {parent}")


def check_map_output(path: str, what: str) -> None:
    check_output_path(path, MAP_EXTENSIONS, what)


def add_nan_policy(parser) -> None:
    """``--nan-policy``: what to do with NaN or infinite pixels in the input images."""
    parser.add_argument("--nan-policy", choices=NAN_POLICIES, default="error",
                        help="NaN or infinite input pixels: error (default; refuse the file), zero (set them to 0) "
                             "or nearest (take the nearest finite pixel)")


def check_memory(need_bytes: int, what: str) -> None:
    """Refuse, before any work, a job that needs more memory than there is (core.memory)."""
    from ..memory import check_fits

    check_fits(need_bytes, what)


def expand_files(given: list[str], extensions: tuple[str, ...], what: str) -> list[Path]:
    """Files named by ``given``: files as they are, folders expanded to their files in name order."""
    out: list[Path] = []
    for text in given:
        path = Path(text)
        check(path.exists(), f"{what} not found: {path}")
        if path.is_dir():
            inside = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in extensions
                            and not f.name.startswith("."))
            check(bool(inside), f"folder {path} holds no {what}s ({', '.join(extensions)})")
            out.extend(inside)
        else:
            check(path.suffix.lower() in extensions,
                  f"unsupported {what} type {path.suffix or '(none)'} for {path}; use one of {', '.join(extensions)}")
            out.append(path)
    return out
