"""Computed results kept in memory, so that scrubbing back and re-rendering do not recompute.

A result is keyed by everything it depends on: the node, the worker op, the frame, the parameters
sent to the worker (the lens as resolved at that frame included) and a digest of each input file the
compositor wrote for it. Entries are dropped least recently used first once their arrays exceed
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


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes (the compositor writes the same bytes for the same pixels)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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

    def put(self, key: str, outputs: Outputs) -> None:
        if key in self.entries:
            self.size -= _nbytes(self.entries.pop(key))
        size = _nbytes(outputs)
        if size > self.capacity:
            return
        self.entries[key] = outputs
        self.size += size
        while self.size > self.capacity:
            _, dropped = self.entries.popitem(last=False)
            self.size -= _nbytes(dropped)

    def resize(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        while self.entries and self.size > self.capacity:
            _, dropped = self.entries.popitem(last=False)
            self.size -= _nbytes(dropped)

    def clear(self) -> None:
        self.entries.clear()
        self.size = 0


def _nbytes(outputs: Outputs) -> int:
    return sum(a.nbytes for a in outputs.values())
