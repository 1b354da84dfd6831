"""The Refocus node types: every ``node_*`` module's node class, in the Add > Refocus menu's order.

A node type is found by its module's name (``node_<name>.py``) and ordered by its ``menu_order``,
so adding a node type is adding its module.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .nodes import RefocusNode


def _node_classes() -> tuple[type[RefocusNode], ...]:
    found = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not info.name.startswith("node_") or info.name == "node_types":
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        found += [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, RefocusNode)
                  and c is not RefocusNode and c.__module__ == module.__name__]
    return tuple(sorted(found, key=lambda c: (c.menu_order, c.bl_label)))


NODE_CLASSES = _node_classes()
