"""Whether the add-on itself is changing Blender data, so that its own edits start no update."""

from __future__ import annotations

import contextlib
from typing import Iterator

_busy = 0  # > 0 while the add-on itself changes Blender data


@contextlib.contextmanager
def busy() -> Iterator[None]:
    global _busy
    _busy += 1
    try:
        yield
    finally:
        _busy -= 1


def is_busy() -> bool:
    return _busy > 0
