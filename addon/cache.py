"""Computed results kept in memory, so that scrubbing back and re-rendering do not recompute.

A result is keyed by everything it depends on: the node, the worker op, the frame, the parameters
sent to the worker (the lens as resolved at that frame included) and a digest of the pixels of each
input file the compositor wrote for it (:func:`file_digest`). Entries are dropped least recently used first once their arrays exceed
the byte budget set in the preferences.
"""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

Outputs = dict[str, np.ndarray]


EXR_MAGIC = b"\x76\x2f\x31\x01"
PIXEL_ATTRIBUTES = {b"channels", b"compression", b"dataWindow", b"lineOrder"}


def file_digest(path: str | Path) -> str:
    """SHA-1 of what a file's pixels are, not of its bytes.

    An EXR's header also holds the frame number as text ("001" in a still, "1" in an animation)
    and its offset table moves with the header's length, so for an EXR only the attributes that
    shape the pixels and the chunks themselves (from the first chunk on) are hashed; other files
    whole. The compositor writes the same chunks for the same pixels.
    """
    data = Path(path).read_bytes()
    digest = hashlib.sha1()
    pixels = _exr_pixel_bytes(data) if data[:4] == EXR_MAGIC else None
    if pixels is None:
        digest.update(data)
    else:
        for part in pixels:
            digest.update(part)
    return digest.hexdigest()


def _exr_pixel_bytes(data: bytes) -> list[bytes] | None:
    """The pixel-shaping header attributes and the chunk data of a single-part scan-line or tiled
    EXR, or ``None`` when the file is not one this reads (then it is hashed whole)."""
    pos, parts = 8, []
    if int.from_bytes(data[4:8], "little") & 0x1000:  # multi-part: hash the whole file
        return None
    try:
        while data[pos] != 0:
            name_end = data.index(b"\0", pos)
            type_end = data.index(b"\0", name_end + 1)
            size = int.from_bytes(data[type_end + 1:type_end + 5], "little")
            value = data[type_end + 5:type_end + 5 + size]
            if data[pos:name_end] in PIXEL_ATTRIBUTES:
                parts += [data[pos:name_end], value]
            pos = type_end + 5 + size
        first_chunk = int.from_bytes(data[pos + 1:pos + 9], "little")
    except (IndexError, ValueError):
        return None
    if not pos < first_chunk <= len(data):
        return None
    return parts + [data[first_chunk:]]


def result_key(uid: str, op: str, frame: int, params: dict[str, Any], input_files: Iterable[tuple[str, str]]) -> str:
    """Key of a node's result: ``input_files`` is (input name, path) for every linked input."""
    inputs = {name: file_digest(path) for name, path in input_files}
    text = json.dumps([uid, op, frame, params, inputs], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


class ResultCache:
    """Least-recently-used store of node outputs, bounded in bytes."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.entries: collections.OrderedDict[str, Outputs] = collections.OrderedDict()
        self.notes: dict[str, str] = {}  # what the worker warned of, shown on the node with the result
        self.size = 0
        self.hits = self.misses = 0

    def get(self, key: str) -> Outputs | None:
        outputs = self.entries.get(key)
        if outputs is None:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return outputs

    def note(self, key: str) -> str:
        return self.notes.get(key, "")

    def put(self, key: str, outputs: Outputs, note: str = "") -> None:
        if key in self.entries:
            self.size -= _nbytes(self.entries.pop(key))
        size = _nbytes(outputs)
        if size > self.capacity:
            return
        self.entries[key] = outputs
        if note:
            self.notes[key] = note
        self.size += size
        self._shrink()

    def _shrink(self) -> None:
        while self.entries and self.size > self.capacity:
            dropped_key, dropped = self.entries.popitem(last=False)
            self.notes.pop(dropped_key, None)
            self.size -= _nbytes(dropped)

    def resize(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self._shrink()

    def clear(self) -> None:
        self.entries.clear()
        self.notes.clear()
        self.size = 0


def _nbytes(outputs: Outputs) -> int:
    return sum(a.nbytes for a in outputs.values())
