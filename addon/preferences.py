"""Add-on preferences: which Python runs the worker, on which device, and how much to cache.

The worker needs the project's Python environment (torch and ``core``); Blender's own Python needs
neither. Its executable is found, in this order, from:

1. the "Worker Python" preference, when set;
2. the ``REFOCUS_PYTHON`` environment variable;
3. ``.venv/bin/python`` (``.venv\\Scripts\\python.exe`` on Windows) of the Refocus repository, when
   Blender runs the add-on straight from the repository's ``addon/`` folder;
4. Blender's own Python (``sys.executable``), when the add-on was installed from the full zip
   (``make addon``): it carries the core as ``vendor/core`` (:func:`bundled_core_root`) and the CPU
   wheels, which Blender unpacked into its extensions' ``site-packages`` (:func:`wheel_site_packages`).

Otherwise the nodes say so, with the way to fix it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .errors import RefocusError

ENV_PYTHON = "REFOCUS_PYTHON"
ENV_FAIL_RENDER = "REFOCUS_FAIL_RENDER_ON_ERROR"  # "1"/"0" overrides Fail Render on Node Error (farms)


def repository_root() -> Path | None:
    """The Refocus repository this add-on runs from, or ``None`` once installed as an extension."""
    root = Path(__file__).resolve().parent.parent
    worker = root / "core" / "worker"
    return root if (worker / "__main__.py").is_file() or worker.with_suffix(".py").is_file() else None


def bundled_core_root() -> Path | None:
    """The folder holding the ``core`` package shipped in the full extension zip, or ``None`` (the slim
    zip, or the add-on run from the repository)."""
    root = Path(__file__).resolve().parent / "vendor"
    return root if (root / "core" / "worker" / "__main__.py").is_file() else None


def wheel_site_packages() -> list[str]:
    """Where Blender unpacked the extensions' wheels (``<extensions>/.local/lib/pythonX.Y/site-packages``),
    for a worker on Blender's own Python: the folders Blender put on its ``sys.path``, else the user's."""
    tail = os.path.join(".local", "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    found = [p for p in sys.path if p.rstrip(os.sep).endswith(tail) and os.path.isdir(p)]
    user = bpy.utils.user_resource("EXTENSIONS", path=tail)
    if not found and user and os.path.isdir(user):
        found.append(user)
    return list(dict.fromkeys(found))


def bundled_python() -> str | None:
    """Blender's own Python, when the full zip's core is installed (it runs the worker); else ``None``."""
    return sys.executable if bundled_core_root() is not None and sys.executable else None


def _venv_python(root: Path) -> Path:
    return root / ".venv" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


class RefocusPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    worker_python: StringProperty(
        name="Worker Python",
        description="Python executable of the Refocus environment (with torch and the Refocus core). "
                    f"Empty: ${ENV_PYTHON}, else the repository's .venv when run from the repository",
        subtype="FILE_PATH",
        default="",
    )
    device: EnumProperty(
        name="Device",
        description="Where the worker computes",
        items=(("auto", "Auto", "CUDA when the worker sees a GPU, else the CPU"),
               ("cpu", "CPU", "Always the CPU"),
               ("cuda", "CUDA", "The first CUDA GPU (an error if there is none)")),
        default="auto",
    )
    cache_megabytes: IntProperty(
        name="Cache (MB)",
        description="Memory for computed results kept per node, input and frame, so that scrubbing back "
                    "and re-rendering do not recompute",
        default=1024, min=0, soft_max=16384,
    )
    fail_render_on_error: BoolProperty(
        name="Fail Render on Node Error",
        description="In background renders (blender -b, the bpy module), a Refocus node that fails ends "
                    f"Blender with exit code 1 and the node's message on stderr, before the frame is written "
                    f"(${ENV_FAIL_RENDER}=0 or 1 overrides this)",
        default=True,
    )
    failed_node_output: EnumProperty(
        name="Failed Nodes Show",
        description="What a Refocus node that failed gives the rest of the compositor",
        items=(("AUTO", "Marked in the Interface", "Marked in Blender's interface; in background renders "
                "(which fail instead, see Fail Render on Node Error) its input unchanged"),
               ("MARKED", "Input, Marked", "Its input with magenta stripes over it, as Blender shows a missing "
                "texture: a failed frame cannot pass for a good one"),
               ("PASS_THROUGH", "Input", "Its input unchanged")),
        default="AUTO",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "worker_python")
        try:
            layout.label(text=f"Worker: {worker_python()}", icon="CHECKMARK")
        except RefocusError as exc:
            layout.label(text=str(exc), icon="ERROR")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "cache_megabytes")
        row = layout.row()
        row.prop(self, "fail_render_on_error")
        row.prop(self, "failed_node_output")


def preferences() -> RefocusPreferences | None:
    addon = bpy.context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def worker_python() -> str:
    """The worker's Python executable; :class:`RefocusError` says how to set it when none is found."""
    prefs = preferences()
    configured = prefs.worker_python.strip() if prefs is not None and prefs.worker_python else ""
    if configured:
        # Not bpy.path.abspath: a "//" path means "next to the open .blend", and a .blend from
        # anywhere must not choose the program the add-on runs.
        if configured.startswith("//"):
            raise RefocusError(f"the Worker Python preference must be an absolute path, not one relative to the "
                               f".blend file ({configured})")
        configured = os.path.expanduser(configured)
        if not os.path.isabs(configured):
            raise RefocusError(f"the Worker Python preference must be an absolute path, got {configured}")
    candidates = [(configured, "the Worker Python preference"), (os.environ.get(ENV_PYTHON, ""), f"${ENV_PYTHON}")]
    root = repository_root()
    if root is not None:
        candidates.append((str(_venv_python(root)), "the repository's .venv"))
    else:
        candidates.append((bundled_python() or "", "Blender's own Python (the extension's bundled core)"))
    for path, origin in candidates:
        if not path:
            continue
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise RefocusError(f"the worker Python from {origin} is not an executable file: {path}")
        return path
    raise RefocusError("no worker Python: set it in Preferences > Add-ons > Refocus "
                       f"(or the {ENV_PYTHON} environment variable) to the Python of the Refocus environment, "
                       "or install the full extension zip (make addon), which brings its own")


def worker_device() -> str:
    prefs = preferences()
    return prefs.device if prefs is not None else "auto"


def cache_bytes() -> int:
    prefs = preferences()
    return (prefs.cache_megabytes if prefs is not None else 1024) * 1024 * 1024


def fail_render_on_error() -> bool:
    """Whether a background render holding a failed Refocus node must fail (exit code 1)."""
    override = os.environ.get(ENV_FAIL_RENDER, "").strip()
    if override:
        return override not in ("0", "false", "no", "off")
    prefs = preferences()
    return prefs.fail_render_on_error if prefs is not None else True


def mark_failed_nodes() -> bool:
    """Whether a failed node's colour outputs carry the magenta marker (else its input, unchanged)."""
    prefs = preferences()
    choice = prefs.failed_node_output if prefs is not None else "AUTO"
    return choice == "MARKED" or (choice == "AUTO" and not bpy.app.background)
