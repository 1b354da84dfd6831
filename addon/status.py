"""Where Refocus tells the artist what it is doing: on the node, in the status bar, in the render log.

In Blender's interface the node draws its own progress bar and error (see ``nodes.py``); this module
mirrors the same news into the status bar and redraws the node editors. Headless (``blender -b``,
the bpy module) there is no status bar, so progress and errors go to stderr, progress at most every
few seconds so that render-farm logs stay readable.
"""

from __future__ import annotations

import sys
import threading
import time

import bpy

LOG_INTERVAL_S = 5.0
_last_log = 0.0


def _status_bar(text: str | None) -> None:
    if bpy.app.background or threading.current_thread() is not threading.main_thread():
        return  # no interface, or a render thread where touching it is unsafe
    workspace = getattr(bpy.context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager is not None else ():
        for area in window.screen.areas:
            if area.type == "NODE_EDITOR":
                area.tag_redraw()


def progress(node: bpy.types.Node, done: int, total: int) -> None:
    """``node`` has done ``done`` of ``total`` steps."""
    global _last_log
    node.progress = done / total if total else 0.0
    text = f"Refocus: {node.name} {node.progress * 100:.0f}% ({done}/{total})"
    if bpy.app.background:
        now = time.monotonic()
        if total > 0 and (now - _last_log >= LOG_INTERVAL_S or done == total):
            _last_log = now
            sys.stderr.write(text + "\n")
    else:
        _status_bar(text + "  (the node's Cancel button stops it)")


def error(node: bpy.types.Node, message: str) -> None:
    """``node`` shows its input instead of a result because of ``message``."""
    text = f"Refocus: {node.name}: {message}"
    sys.stderr.write(text + "\n")
    _status_bar(text)


def note(text: str) -> None:
    sys.stderr.write(f"Refocus: {text}\n")
    _status_bar(f"Refocus: {text}")


def clear() -> None:
    _status_bar(None)
