"""The shipped networks, loaded once per process and again when their file changes.

The worker serves frame after frame, so a network is read once (and again if it is retrained
while Blender runs); the command line loads it once. A missing file gives one sentence naming it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def weights_path(learned: ModuleType, path: str | None = None, refined: bool = False) -> Path:
    """``path``, else the file ``learned`` (``core.stereo.learned``, ``core.focal_stack.learned``,
    ...) loads by default (``refined``: the stereo refiner's), or an error that names the file."""
    from ..errors import InputError, check, fail
    from .. import weights

    if path is not None:
        p = Path(path)
        check(p.is_file(), f"weights file not found: {p}")
        return p
    find = learned.default_refined_weights if refined else learned.default_weights
    names = learned.REFINED_WEIGHT_FILES if refined else learned.WEIGHT_FILES
    try:
        return find()
    except InputError as exc:
        others = f" (or {', '.join(names[:-1])})" if len(names) > 1 else ""
        fail(f"the learned method needs {weights.WEIGHTS_DIR / names[-1]}{others}, which is missing: {exc}")


def network(learned: ModuleType, device: "torch.device", path: str | None = None, refined: bool = False) -> Any:
    """The network of ``learned`` with the weights at ``path`` (default: its shipped ones)."""
    p = weights_path(learned, path, refined)
    return _load(learned.__name__, str(p.resolve()), p.stat().st_mtime_ns, str(device))


@lru_cache(maxsize=4)
def _load(module: str, path: str, mtime_ns: int, device: str) -> Any:
    import importlib

    return importlib.import_module(module).load_model(path, device)
