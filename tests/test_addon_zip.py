"""The full extension zip on its own (issue 19, point 3): installed offline into a fresh Blender user
folder by a Python that has bpy and nothing of the project, it computes with its own core and wheels.

``make addon`` (``blender_scenes.build_extension.build_full``) builds the zip. The Blender session
runs on a fresh virtual environment whose site-packages hold only the bpy module and numpy (linked
from this environment), started isolated (``-I``) outside the repository with a cleaned
environment: before the install it can import neither ``core`` nor ``torch``. It installs the zip
through Blender's extension API, renders a small compositor tree (Image and Depth from EXR files
into Layered Defocus, no Cycles), and reports where the worker's core and torch came from: the
core from the extension's ``vendor/core``, torch's shared libraries (read from the worker
process's memory map) from the site-packages where Blender unpacked the zip's wheels. It renders
again after the add-on is disabled and enabled (which resets its preferences), and with
``$REFOCUS_PYTHON`` naming a Python of one's own (this environment's, as a CUDA one would be): the
zip's core then runs on that Python's torch. Each frame must equal ``python -m core defocus`` of the
core the zip installed, on the same files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from blender_scenes.build_extension import build, build_full
from core.imageio import read_image, write_exr

pytestmark = pytest.mark.blender
REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
WIDTH, HEIGHT = 96, 72
LENS = {"focal_length": 50.0, "f_stop": 0.5, "focus_distance": 2.0, "sensor_width": 36.0}

# The Blender side, run as ``python -I -c SESSION '<json>'`` by the bare Python.
SESSION = r'''
import importlib, json, os, sys, time
args = json.loads(sys.argv[1])
out = {"executable": sys.executable, "path_before": list(sys.path), "seconds": {}}
for name in ("core", "torch", "cv2", "OpenEXR"):
    try:
        out[name + "_before"] = importlib.import_module(name).__file__
    except ImportError:
        out[name + "_before"] = None
import bpy
MODULE = "bl_ext.user_default.refocus"
begin = time.perf_counter()
bpy.ops.extensions.package_install_files(filepath=args["zip"], repo="user_default", enable_on_install=True)
out["seconds"]["install"] = time.perf_counter() - begin
out["enabled"] = MODULE in bpy.context.preferences.addons
out["extension_dir"] = os.path.join(bpy.utils.user_resource("EXTENSIONS"), "user_default", "refocus")

scene = bpy.context.scene
r = scene.render
r.resolution_x, r.resolution_y, r.resolution_percentage = args["width"], args["height"], 100
camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
scene.collection.objects.link(camera)
scene.camera = camera
tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
group_output = tree.nodes.new("NodeGroupOutput")
scene.compositing_node_group = tree
r.use_compositing = True
image = tree.nodes.new("CompositorNodeImage")
image.image = bpy.data.images.load(args["image"], check_existing=False)
depth = tree.nodes.new("CompositorNodeImage")
depth.image = bpy.data.images.load(args["depth"], check_existing=False)
depth.image.colorspace_settings.name = "Non-Color"
node = tree.nodes.new("RefocusLayeredDefocusNode")
node.name = "Layered Defocus"
node.use_scene_camera = False
for key, value in args["lens"].items():
    setattr(node, key, value)
tree.links.new(image.outputs["Image"], node.inputs["Image"])
tree.links.new(depth.outputs["Image"], node.inputs["Depth"])
tree.links.new(node.outputs["Image"], group_output.inputs[0])
r.image_settings.media_type = "IMAGE"
r.image_settings.file_format = "OPEN_EXR"
r.image_settings.color_depth = "32"
r.use_file_extension = False


def render(name, focus_distance):
    """Render the tree with the node focused at ``focus_distance``; what the node and its worker did."""
    node = tree.nodes["Layered Defocus"]  # found again: enabling the add-on again makes new nodes
    node.focus_distance = focus_distance
    r.filepath = os.path.join(args["out"], name + ".exr")
    begin = time.perf_counter()
    bpy.ops.render.render(write_still=True, scene=scene.name)
    out["seconds"][name] = time.perf_counter() - begin
    worker_client = importlib.import_module(MODULE + ".worker_client")
    client = worker_client.current_client()
    info = client.info if client is not None else {}
    run = {"composite": r.filepath, "state": node.state, "message": node.message,
           "worker": {k: info.get(k) for k in ("pid", "core_path", "torch", "device", "ops")},
           "python": client.python if client is not None else None,
           "wheel_site_packages": importlib.import_module(MODULE + ".preferences").wheel_site_packages()}
    if info.get("pid"):
        with open(f"/proc/{info['pid']}/maps") as maps:
            run["torch_libraries"] = sorted({line.split()[-1] for line in maps if "/torch/" in line and ".so" in line})
    worker_client.shutdown()
    return run


out["first"] = render("first", args["runs"]["first"])
# Disabled and enabled again (which resets the preferences): the zip's own Python still runs it.
bpy.ops.preferences.addon_disable(module=MODULE)
out["disabled_wheels"] = os.path.isdir(out["first"]["wheel_site_packages"][0] + "/torch")
bpy.ops.preferences.addon_enable(module=MODULE)
out["enabled_again"] = MODULE in bpy.context.preferences.addons
out["again"] = render("again", args["runs"]["again"])
# A Python of one's own (a CUDA environment): the zip's core on that Python's torch, not the wheels'.
os.environ["REFOCUS_PYTHON"] = args["own_python"]
out["own_python"] = render("own_python", args["runs"]["own_python"])
del os.environ["REFOCUS_PYTHON"]

# Every core module imports with the zip's wheels: none of them needs a package the zip lacks.
import subprocess
begin = time.perf_counter()
preferences = importlib.import_module(MODULE + ".preferences")
probe = subprocess.run([sys.executable, "-I", "-c", args["probe"], str(preferences.bundled_core_root()),
                        *preferences.wheel_site_packages()], capture_output=True, text=True)
out["seconds"]["probe"] = time.perf_counter() - begin
out["probe"] = json.loads(probe.stdout) if probe.returncode == 0 else {"error": probe.stderr[-3000:]}
sys.stdout.write("RESULT " + json.dumps(out) + "\n")
'''
# Run by the session with the zip's core folder and the wheels' site-packages, laid out as the worker's.
PROBE = r'''
import importlib, json, pkgutil, site, sys
packages = set(site.getsitepackages())
at = next((i for i, p in enumerate(sys.path) if p in packages), len(sys.path))
sys.path[at:at] = sys.argv[2:]
sys.path.insert(0, sys.argv[1])
import core
missing = {}
for info in pkgutil.walk_packages(core.__path__, "core."):
    if not info.name.endswith("__main__"):
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            missing[info.name] = repr(exc)
files = {n: importlib.import_module(n).__file__ for n in ("torch", "cv2", "OpenEXR", "onnxruntime", "psutil", "numpy")}
print(json.dumps({"missing": missing, "files": files}))
'''


# ``python -m core`` of the core in the folder given first (run isolated, so nothing else shadows it),
# once for each command line in the JSON list given second.
VENDORED_CLI = ("import json, sys\n"
                "sys.path.insert(0, sys.argv[1])\n"
                "import core.cli\n"
                "assert core.cli.__file__.startswith(sys.argv[1]), core.cli.__file__\n"
                "for argv in json.loads(sys.argv[2]):\n"
                "    if core.cli.main(argv) != 0:\n"
                "        raise SystemExit(1)\n")
RUNS = {"first": LENS["focus_distance"], "again": 3.0, "own_python": 4.0}  # the session's focus distances


def _bare_python(folder: Path) -> Path:
    """A virtual environment whose site-packages hold only bpy and numpy (links to this one's)."""
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(folder)], check=True)  # type: ignore[attr-defined]
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for name in ("bpy", "numpy", "numpy.libs"):
        if (here / name).exists():
            (site / name).symlink_to(here / name)
    return python


def _inputs(folder: Path) -> dict[str, str]:
    """A colourful checker image and planar depth from 1 to 6 m (planes and a ramp), as EXR files;
    the depth once as the Image node reads it (R = G = B) and once as the command does (Z)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    checker = ((x // 6 + y // 6) % 2).astype(np.float32)
    rgb = np.stack([0.1 + 0.8 * checker, 0.2 + 0.6 * (x / WIDTH), 0.9 - 0.7 * checker * (y / HEIGHT)], axis=-1)
    depth = np.where(x < WIDTH / 3, 1.0, np.where(x < 2 * WIDTH / 3, 2.0, 2.0 + 4.0 * y / (HEIGHT - 1)))
    depth = depth.astype(np.float32)
    files = {"image": folder / "image.exr", "depth": folder / "depth_rgb.exr", "depth_z": folder / "depth.exr"}
    write_exr(files["image"], {c: np.ascontiguousarray(rgb[..., i]) for i, c in enumerate("RGB")})
    write_exr(files["depth"], {c: depth for c in "RGB"})
    write_exr(files["depth_z"], {"Z": depth})
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("zip")
    zip_path = build_full(root / "dist")
    python = _bare_python(root / "bare")
    files = _inputs(root)
    work = root / "cwd"  # Blender started outside the repository
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "REFOCUS_", "VIRTUAL_ENV"))}
    env.update(BLENDER_USER_RESOURCES=str(root / "user"), REFOCUS_FAIL_RENDER_ON_ERROR="0", OMP_NUM_THREADS="1")
    args = {"zip": str(zip_path), "image": files["image"], "depth": files["depth"], "lens": LENS,
            "out": str(root), "width": WIDTH, "height": HEIGHT, "probe": PROBE, "own_python": sys.executable, "runs": RUNS}
    begin = time.perf_counter()
    proc = subprocess.run([str(python), "-I", "-c", SESSION, json.dumps(args)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    result.update(zip=str(zip_path), files=files, python=str(python), root=str(root))
    result["seconds"]["session"] = time.perf_counter() - begin
    print("zip session seconds:", {k: round(v, 1) for k, v in result["seconds"].items()})  # shown with -s
    return result


def test_the_full_zip_carries_core_weights_and_wheels_and_the_slim_one_none(tmp_path: Path,
                                                                            session: dict[str, Any]) -> None:
    with zipfile.ZipFile(session["zip"]) as z:
        names = set(z.namelist())
        manifest = z.read("blender_manifest.toml").decode()
    assert "vendor/core/worker/__main__.py" in names and "vendor/core/weights/dff_guided.pt" in names
    assert not any("__pycache__" in n or n.startswith(("models/", "vendor/models/")) for n in names)
    wheels = sorted(n for n in names if n.startswith("wheels/"))
    assert any(n.startswith("wheels/torch-") for n in wheels) and not any("numpy-" in n for n in wheels)
    assert all(f'"./{n}"' in manifest for n in wheels) and 'platforms = ["linux-x64"]' in manifest
    with zipfile.ZipFile(build(tmp_path)) as slim:
        assert not any(n.startswith(("wheels/", "vendor/")) for n in slim.namelist())


def test_the_bare_python_has_bpy_and_nothing_of_the_project(session: dict[str, Any]) -> None:
    assert session["core_before"] is None and session["torch_before"] is None
    assert session["cv2_before"] is None and session["OpenEXR_before"] is None
    assert not any(p.startswith(str(REPO)) for p in session["path_before"]), session["path_before"]
    assert session["enabled"]


def _in_wheels(run: dict[str, Any]) -> list[bool]:
    """For each torch library the worker had mapped: whether it came from the zip's wheels."""
    (site,) = run["wheel_site_packages"]
    assert run["torch_libraries"], "the worker has no torch library mapped"
    return [Path(lib).is_relative_to(site) for lib in run["torch_libraries"]]


def test_the_worker_runs_on_blenders_python_with_the_zips_core_and_wheels(session: dict[str, Any]) -> None:
    run = session["first"]
    assert run["python"] == session["executable"] == session["python"]
    extension = Path(session["extension_dir"]).resolve()
    assert Path(run["worker"]["core_path"]).resolve() == extension / "vendor" / "core"
    (site,) = run["wheel_site_packages"]
    assert Path(site).is_relative_to(Path(session["root"]) / "user"), site  # where Blender unpacked the wheels
    assert all(_in_wheels(run)), run["torch_libraries"]
    assert run["worker"]["torch"].endswith("+cpu")
    specs = json.loads((REPO / "addon" / "op_specs.json").read_text())["ops"]
    assert set(run["worker"]["ops"]) >= set(specs)  # every node of the add-on can compute


def test_disabled_and_enabled_again_it_still_runs_on_its_own(session: dict[str, Any]) -> None:
    assert session["enabled_again"]
    run = session["again"]
    assert run["state"] == "DONE", run
    assert run["python"] == session["python"] and all(_in_wheels(run))
    assert run["worker"]["pid"] != session["first"]["worker"]["pid"]  # computed anew, not from a cache


def test_a_worker_python_of_ones_own_runs_the_zips_core_on_its_own_torch(session: dict[str, Any]) -> None:
    run = session["own_python"]
    assert run["state"] == "DONE", run
    assert run["python"] == sys.executable
    assert Path(run["worker"]["core_path"]).resolve() == Path(session["extension_dir"]).resolve() / "vendor" / "core"
    assert not any(_in_wheels(run)), run["torch_libraries"]


def test_every_core_module_imports_with_the_zips_wheels(session: dict[str, Any]) -> None:
    probe = session["probe"]
    assert "error" not in probe, probe
    assert probe["missing"] == {}
    (site,) = session["first"]["wheel_site_packages"]
    bare = Path(session["python"]).parent.parent
    for name, path in probe["files"].items():
        # numpy is Blender's own (here the bare Python's); the rest come from the zip's wheels.
        assert Path(path).is_relative_to(bare if name == "numpy" else site), (name, path)


@pytest.fixture(scope="module")
def command(session: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``python -m core defocus`` of the core the zip installed, at each run's focus distance (the
    working tree's core, shared with work in progress, may have changed since the zip was built)."""
    out = tmp_path_factory.mktemp("cli")
    files = session["files"]
    expected = {run: str(out / f"{run}.exr") for run in RUNS}
    argvs = [["defocus", "--image", files["image"], "--depth", files["depth_z"], "--output", expected[run],
              "--focal-length", str(LENS["focal_length"]), "--f-stop", str(LENS["f_stop"]),
              "--focus-distance", str(distance), "--sensor-width", str(LENS["sensor_width"]), "--quiet"]
             for run, distance in RUNS.items()]
    vendor = Path(session["extension_dir"]) / "vendor"
    proc = subprocess.run([sys.executable, "-I", "-c", VENDORED_CLI, str(vendor), json.dumps(argvs)], cwd=out,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return expected


@pytest.mark.parametrize("run", list(RUNS))
def test_the_zips_layered_defocus_equals_the_command(session: dict[str, Any], command: dict[str, str],
                                                     run: str) -> None:
    assert session[run]["state"] == "DONE", session[run]
    files = session["files"]
    ours, theirs = read_image(session[run]["composite"])[..., :3], read_image(command[run])[..., :3]
    assert float(np.abs(ours - theirs).max()) <= TOLERANCE
    assert float(np.abs(theirs - read_image(files["image"])).max()) > 0.05  # the lens blurred something
