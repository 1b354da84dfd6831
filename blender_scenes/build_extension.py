"""Build the Refocus add-on into an installable Blender extension zip: one command.

    python -m blender_scenes.build_extension --out dist
    # -> dist/refocus-0.1.0.zip; install it with Edit > Preferences > Get Extensions > Install from Disk,
    #    or blender --command extension install-file -r user_default dist/refocus-0.1.0.zip

The zip is made by Blender's own extension builder (``blender_ext.py build``, shipped with Blender
and with the ``bpy`` module), which validates ``addon/blender_manifest.toml`` the way Blender will.
It runs as a plain Python script: no Blender session is started.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent.parent / "addon"


def blender_ext_script() -> Path:
    """Blender's ``blender_ext.py``, found inside the installed ``bpy`` module without importing it."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("build_extension: the bpy module is not installed; run `make venv` first")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"build_extension: Blender's extension builder is missing under {root}")
    return found[-1]


def manifest(source: Path = ADDON_DIR) -> dict:
    with open(source / "blender_manifest.toml", "rb") as f:
        return tomllib.load(f)


def build(out_dir: Path, source: Path = ADDON_DIR) -> Path:
    """Build the extension zip into ``out_dir``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    info = manifest(source)
    target = out_dir / f"{info['id']}-{info['version']}.zip"
    result = subprocess.run(
        [sys.executable, str(blender_ext_script()), "build", "--source-dir", str(source),
         "--output-filepath", str(target)],
        capture_output=True, text=True,
    )
    if result.returncode != 0 or not target.is_file():
        raise SystemExit(f"build_extension: Blender's builder failed:\n{result.stdout}{result.stderr}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Refocus Blender extension zip.")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)
    print(build(Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
