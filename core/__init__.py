"""Refocus core: depth and physically based refocusing, headless (never imports bpy).

Import what you need from the modules, or the common entry points from here::

    from core import Lens, refocus
    out = refocus(image, depth, Lens(focal_length_mm=50, f_stop=2, focus_distance=3))

The names below are resolved on first use (PEP 562), so ``import core`` (and ``python -m core
--help``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it
_EXPORTS = {
    "InputError": ".errors",
    "LayeredDefocus": ".defocus",
    "Lens": ".optics",
    "bokeh_kernel": ".bokeh",
    "circle_of_confusion": ".optics",
    "focal_length_pixels": ".optics",
    "layered_defocus": ".defocus",
    "refocus": ".defocus",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
