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
            if area.type in ("NODE_EDITOR", "IMAGE_EDITOR"):  # the backdrop, the nodes, the F12 window
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


# ------------------------------------------------------------------------------ markers in the picture
MARKER = (1.0, 0.0, 1.0, 1.0)  # magenta, as Blender shows a missing texture
PENDING_BASE = (0.05, 0.05, 0.05, 1.0)


def _stripes(height: int, width: int) -> "np.ndarray":
    """(H, W) bool: diagonal stripes about 1/24 of the frame wide, every other band (visible at any zoom)."""
    import numpy as np

    period = max(8, min(height, width) // 12)
    y, x = np.mgrid[0:height, 0:width]
    return ((x + y) // (period // 2)) % 2 == 0


def _colour_images(node: bpy.types.Node) -> list[bpy.types.Image]:
    return [node._image(spec) for spec in node.OUTPUTS if spec.kind == "color"]


def mark_failed(node: bpy.types.Node) -> None:
    """Magenta stripes over what a failed ``node`` shows (its input passed through), so a failed
    frame cannot pass for a good one; values (depth) are numbers and stay unmarked."""
    import numpy as np

    for image in _colour_images(node):
        w, h = image.size
        pixels = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        pixels = pixels.reshape(h, w, 4)
        pixels[_stripes(h, w)] = MARKER
        image.pixels.foreach_set(pixels.ravel())
        image.update()


def mark_failures(nodes: "list[bpy.types.Node]") -> None:
    """Mark each node of ``nodes`` that failed (state ERROR), unless the artist chose pass-through."""
    from . import preferences

    if not preferences.mark_failed_nodes():
        return
    for node in nodes:
        if node.state == "ERROR":
            try:
                mark_failed(node)
            except Exception as exc:  # a lost inner tree: the node already says so
                sys.stderr.write(f"Refocus: {node.name}: cannot mark its output ({exc})\n")


def mark_pending(node: bpy.types.Node, size: tuple[int, int]) -> None:
    """Magenta stripes on dark grey at ``size`` (width, height): ``node`` has no result yet (a file
    just opened); what the compositor shows before the node is computed is this, never black."""
    import numpy as np

    w, h = max(1, size[0]), max(1, size[1])
    pixels = np.empty((h, w, 4), dtype=np.float32)
    pixels[...] = PENDING_BASE
    pixels[_stripes(h, w)] = MARKER
    for image in _colour_images(node):
        if tuple(image.size) != (w, h):
            image.scale(w, h)
        image.pixels.foreach_set(pixels.ravel())
        image.update()


def is_marked(pixels: "np.ndarray") -> bool:
    """Whether (H, W, 4) pixels carry the marker's stripes (tests, and the farm check)."""
    import numpy as np

    h, w = pixels.shape[:2]
    stripes = _stripes(h, w)
    return bool(np.all(np.abs(pixels[stripes] - np.float32(MARKER)) < 1e-6))


def fail_render(text: str) -> None:
    """End a background render now: ``text`` on stderr, the worker stopped, exit code 1.

    Raising from a handler does not fail a Blender render (checked with bpy 5.0.1: the error is
    printed and the frame written all the same), so the process ends here, before the frame is
    composited and written, for ``blender -b ... -a`` and bpy scripts alike."""
    import os

    from . import worker_client

    sys.stderr.write(f"Refocus: render failed: {text}\n")
    sys.stderr.flush()
    sys.stdout.flush()
    try:
        worker_client.shutdown()
    finally:
        os._exit(1)
