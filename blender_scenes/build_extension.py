"""Build the Refocus add-on into installable Blender extension zips: one command each.

    python -m blender_scenes.build_extension --out dist          # make addon
    # -> dist/refocus-0.1.0-linux_x64.zip: the add-on, the core, its weights and the pinned CPU wheels
    python -m blender_scenes.build_extension --out dist --slim   # make addon-slim
    # -> dist/refocus-0.1.0-slim.zip: the add-on alone, for a Worker Python of your own (CUDA)

Install either with Edit > Preferences > Get Extensions > Install from Disk, or
``blender --command extension install-file -r user_default <zip>``.

The full zip is a platform extension as Blender's extension manual describes bundled wheels: its
``blender_manifest.toml`` lists ``wheels`` (``./wheels/*.whl``, which Blender unpacks into its
extensions' shared ``site-packages`` on install) and ``platforms`` (this machine's only: the wheels
are binary). It carries ``vendor/core`` (the ``core`` package, no training code) with the shipped
weights as ``vendor/core/weights/*.pt``, where ``core.weights.find_weights_dir`` looks first. With no
Worker Python set, the add-on then runs its worker on Blender's own Python with those wheels and
that core (``addon/preferences.py``), offline.

The wheels are the exact versions installed in the environment running this script (so the zip
carries what the tests run with), the project's dependencies and what they need, read from the
installed packages' metadata; numpy is left out, since Blender (and the bpy module) bring their own
numpy 1.26 and a second copy on the path could clash. They are downloaded once with ``pip download``
into ``build/wheels`` and reused. The zip is made by Blender's own builder (``blender_ext.py
build``, shipped with Blender and the ``bpy`` module) from a staged copy of ``addon/``; it validates
the manifest the way Blender will. No Blender session is started.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDON_DIR = REPO / "addon"
CORE_DIR = REPO / "core"
WEIGHTS_DIR = REPO / "models" / "weights"
WHEEL_CACHE = REPO / "build" / "wheels"
# Where the staged zip holds the core package (the add-on's preferences.bundled_core_root looks here).
VENDOR = "vendor"
# Bundled besides the project's own dependencies: psutil lets the memory checks see free RAM.
EXTRA_REQUIREMENTS = ("psutil",)
# Never bundled: numpy comes with Blender; setuptools is needed only to compile torch extensions,
# and in Blender's shared site-packages it would shadow Blender's own for every other extension.
EXCLUDED = frozenset({"numpy", "setuptools"})
BLENDER_PLATFORMS = {("linux", "x86_64"): "linux-x64", ("linux", "aarch64"): "linux-arm64",
                     ("darwin", "arm64"): "macos-arm64", ("darwin", "x86_64"): "macos-x64",
                     ("win32", "amd64"): "windows-x64", ("win32", "arm64"): "windows-arm64"}
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


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


def _blender_build(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, str(blender_ext_script()), "build", "--source-dir", str(source),
         "--output-filepath", str(target)],
        capture_output=True, text=True,
    )
    if result.returncode != 0 or not target.is_file():
        raise SystemExit(f"build_extension: Blender's builder failed:\n{result.stdout}{result.stderr}")
    return target


def build(out_dir: Path, source: Path = ADDON_DIR) -> Path:
    """Build the slim extension zip (the add-on alone, no wheels, no core) into ``out_dir``; return its path."""
    info = manifest(source)
    return _blender_build(source, Path(out_dir) / f"{info['id']}-{info['version']}-slim.zip")


# ------------------------------------------------------------------------------ the full zip
def blender_platform() -> str:
    """This machine as Blender names platforms in a manifest (``linux-x64``, ``macos-arm64``, ...)."""
    key = (sys.platform, platform.machine().lower())
    if key not in BLENDER_PLATFORMS:
        raise SystemExit(f"build_extension: no Blender platform name for {key}")
    return BLENDER_PLATFORMS[key]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_requirements() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"]) + list(EXTRA_REQUIREMENTS)


def pinned_requirements() -> dict[str, str]:
    """``{distribution: installed version}`` for the project's dependencies and everything they
    need (markers evaluated for this Python, extras left out), less :data:`EXCLUDED`."""
    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    todo = [Requirement(r) for r in _project_requirements()]
    while todo:
        req = todo.pop()
        name = _canonical(req.name)
        if name in EXCLUDED or name in pins:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(f"build_extension: {req.name} is not installed here; run `make venv` first") from None
        pins[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or ())
    return dict(sorted(pins.items()))


def _cached_wheel(cache: Path, name: str, version: str) -> Path | None:
    from packaging.utils import parse_wheel_filename
    from packaging.version import Version

    for path in sorted(cache.glob("*.whl")):
        wheel_name, wheel_version, _, _ = parse_wheel_filename(path.name)
        if _canonical(wheel_name) == name and wheel_version == Version(version):
            return path
    return None


def fetch_wheels(pins: dict[str, str], cache: Path = WHEEL_CACHE) -> list[Path]:
    """One wheel per pin for this platform and Python, from ``cache`` or ``pip download`` (into it)."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [f"{name}=={version}" for name, version in pins.items() if _cached_wheel(cache, name, version) is None]
    if missing:
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                                 "--only-binary=:all:", "-d", str(cache), *missing], capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"build_extension: pip download failed:\n{result.stdout}{result.stderr}")
    wheels = []
    for name, version in pins.items():
        wheel = _cached_wheel(cache, name, version)
        if wheel is None:
            raise SystemExit(f"build_extension: pip did not download a wheel of {name}=={version}")
        wheels.append(wheel)
    return wheels


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # the wheels are large; the stage lies beside the cache
    except OSError:
        shutil.copy2(source, target)


def _manifest_with_wheels(text: str, wheels: list[str], platforms: list[str]) -> str:
    """The manifest text with top-level ``platforms`` and ``wheels`` keys before its first table."""
    lines = text.splitlines(keepends=True)
    first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    added = ["# Added by blender_scenes/build_extension.py: the bundled wheels are binary.\n",
             "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]\n",
             "wheels = [\n", *(f'  "./wheels/{w}",\n' for w in wheels), "]\n\n"]
    return "".join(lines[:first_table] + added + lines[first_table:])


def stage(stage_dir: Path, wheels: list[Path], platform_name: str) -> Path:
    """Lay out the full extension in ``stage_dir``: addon/, wheels/, vendor/core (with weights/)."""
    shutil.copytree(ADDON_DIR, stage_dir, ignore=COPY_IGNORE)
    (stage_dir / "wheels").mkdir()
    for wheel in wheels:
        _link_or_copy(wheel, stage_dir / "wheels" / wheel.name)
    core = stage_dir / VENDOR / "core"
    shutil.copytree(CORE_DIR, core, ignore=COPY_IGNORE)
    (core / "weights").mkdir(exist_ok=True)
    for weights in sorted(WEIGHTS_DIR.glob("*.pt")):
        shutil.copy2(weights, core / "weights" / weights.name)
    text = (ADDON_DIR / "blender_manifest.toml").read_text(encoding="utf-8")
    (stage_dir / "blender_manifest.toml").write_text(
        _manifest_with_wheels(text, [w.name for w in wheels], [platform_name]), encoding="utf-8")
    return stage_dir


def build_full(out_dir: Path, cache: Path = WHEEL_CACHE) -> Path:
    """Build the full extension zip (add-on, core, weights, pinned CPU wheels) into ``out_dir``."""
    info = manifest()
    platform_name = blender_platform()
    wheels = fetch_wheels(pinned_requirements(), cache)
    target = Path(out_dir) / f"{info['id']}-{info['version']}-{platform_name.replace('-', '_')}.zip"
    with tempfile.TemporaryDirectory(prefix="stage-", dir=cache.parent) as tmp:
        return _blender_build(stage(Path(tmp) / info["id"], wheels, platform_name), target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Refocus Blender extension zip.")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument("--slim", action="store_true",
                        help="the add-on alone (no core, no wheels), for a Worker Python of your own")
    args = parser.parse_args(argv)
    target = build(Path(args.out)) if args.slim else build_full(Path(args.out))
    print(f"{target} ({target.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
