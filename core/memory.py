"""Memory planning: refuse, before any work, a job that will not fit.

Each command estimates its peak from the frame size (bytes per pixel measured with
``bench.large_frames``, plus what its parameters add) and calls :func:`check_fits`, which
compares it with what the machine can give: the memory available now (psutil), or the limit in
``$REFOCUS_MEMORY_LIMIT`` (``4G``, ``512M``, bytes) when that is set and lower. A job over the
limit fails with one line saying how much it needs and how much there is, instead of swapping
the machine to a halt or dying half way with a MemoryError.
"""

from __future__ import annotations

import os
import re

from .errors import check, fail

LIMIT_ENV = "REFOCUS_MEMORY_LIMIT"
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GiB"``, ``"1000000"`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*", text.upper())
    check(m is not None, f"${LIMIT_ENV} must be a size such as 4G or 512M, got {text!r}")
    assert m is not None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def available_bytes() -> int:
    """Memory this process may still use: available RAM (psutil), capped by $REFOCUS_MEMORY_LIMIT."""
    limit = os.environ.get(LIMIT_ENV, "").strip()
    try:
        import psutil

        free = int(psutil.virtual_memory().available)
    except Exception:  # no psutil: only the explicit limit can refuse
        free = 1 << 62
    if limit:
        free = min(free, parse_bytes(limit))
    return free


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.0f} MiB" if nbytes < 10 * 2**30 else f"{nbytes / 2**30:,.1f} GiB"


def check_fits(need_bytes: float, what: str) -> None:
    """Refuse ``what`` (e.g. "defocus of a 8000x6000 frame") when it needs more than is available."""
    have = available_bytes()
    if need_bytes > have:
        source = f"${LIMIT_ENV}" if os.environ.get(LIMIT_ENV, "").strip() else "available memory"
        fail(f"{what} needs about {mib(need_bytes)} of memory but only {mib(have)} is free ({source}); "
             f"use a smaller frame, or fewer slices or layers")


_OUT_OF_MEMORY = ("can't allocate memory", "out of memory", "insufficient memory", "failed to allocate",
                  "cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: Python's MemoryError, or the RuntimeError torch
    raises ("DefaultCPUAllocator: can't allocate memory", CUDA's "out of memory") and OpenCV's
    "Insufficient memory", which an estimate that was too low lets through."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, Exception) and any(k in text for k in _OUT_OF_MEMORY)


# ------------------------------------------------------------------------------------ estimates
# Peak bytes per pixel above the interpreter's own ~300 MiB, measured with bench.large_frames.
PROCESS_BYTES = 350 * 2**20


def defocus_bytes(height: int, width: int, channels: int, layers: int = 64) -> int:
    """Layered defocus: the image, depth and output, the layer masks and blurred layers it keeps."""
    # in/out images and depth, then about three working layer tensors (74 B/px measured for RGB, 4000x3000)
    per_pixel = 4 * (2 * channels + 1) + 4 * 3 * (channels + 1)
    return PROCESS_BYTES + int(height * width * per_pixel)


def stereo_bytes(height: int, width: int, channels: int, strip_rows: int | None = None) -> int:
    """SGBM in strips: both views, the output maps, and one strip's working set."""
    from .stereo.strips import BYTES_PER_PIXEL

    rows = height if strip_rows is None else min(height, strip_rows)
    inputs = 2 * height * width * channels * 4
    outputs = height * width * (4 + 4 + 1 + 1 + 4 + 4)  # disparity, confidence, masks, depth, a copy to write
    return PROCESS_BYTES + inputs + outputs + rows * width * BYTES_PER_PIXEL


def focal_stack_bytes(count: int, height: int, width: int, channels: int, banded: bool) -> int:
    """Depth from focus: whole-frame volumes, or the banded method's outputs and one band."""
    if banded:
        from .focal_stack.banded import estimate_bytes

        return PROCESS_BYTES + estimate_bytes(count, height, width, channels) + height * width * channels * 4
    per_slice = height * width * (channels * 4 * 3 + 4 * 6)  # slices, aligned copies, volumes
    return PROCESS_BYTES + count * per_slice + height * width * (channels + 2) * 4
