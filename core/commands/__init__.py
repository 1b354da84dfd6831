"""Subcommands of ``python -m core``; each module exposes ``register(subparsers)``.

Every module of this package that defines ``register`` is a subcommand: adding a capability's
command is adding its module. Modules import their heavy parts (torch, OpenCV) inside ``run``, so
``python -m core --help`` answers at once.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

HELPERS = {"common", "options"}


def commands() -> list[ModuleType]:
    """The subcommand modules, in name order."""
    names = sorted(i.name for i in pkgutil.iter_modules(__path__) if i.name not in HELPERS)
    modules = [importlib.import_module(f"{__name__}.{n}") for n in names]
    return [m for m in modules if hasattr(m, "register")]
