"""Failures a pipeline can see, in real Blender (bpy 5.0.1).

A render holding a failed Refocus node (here Layered Defocus with no Depth linked) must fail in a
background render: ``blender -b scene.blend -a`` (opening the file and rendering the animation in
a bpy process is what it does) and a bpy script rendering an animation end with exit code 1 and the
node's message on stderr, before the failed frame is written. With the preference off the render
goes on, and the failed node's output carries magenta stripes unless pass-through was chosen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from addon_fixtures import REPO, blender_env, install_extension, run_session
from artist_fixtures import __file__ as ARTIST_SCRIPT
from core.imageio import read_image

pytestmark = pytest.mark.blender
MAGENTA = np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32)
MESSAGE = "node 'Layered Defocus': connect the Depth input"


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_extension(tmp_path_factory.mktemp("blender"))[0]


def bpy_process(user_dir: Path, scenario: str, fail: str, **args: str) -> subprocess.CompletedProcess[str]:
    """``scenario`` in a fresh bpy process; ``fail``: $REFOCUS_FAIL_RENDER_ON_ERROR ("": the preference)."""
    env = blender_env(user_dir, REFOCUS_FAIL_RENDER_ON_ERROR=fail)
    return subprocess.run([sys.executable, ARTIST_SCRIPT, scenario, json.dumps(args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def blend(user_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("farm")
    run_session("farm_scene", user_dir, script=Path(ARTIST_SCRIPT), out=str(out), blend=str(out / "scene.blend"))
    return out / "scene.blend"


def test_background_animation_of_a_file_with_a_failed_node_exits_non_zero(user_dir: Path, blend: Path) -> None:
    proc = bpy_process(user_dir, "farm_render", "", blend=str(blend))  # the preference's default: on
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"Refocus: render failed: scene 'Scene' frame 1: {MESSAGE}" in proc.stderr
    assert "RESULT" not in proc.stdout  # the render did not come back as if it had worked
    assert not list(blend.parent.glob("farm_*.exr"))  # the failed frame was not written


def test_bpy_script_rendering_an_animation_exits_non_zero(user_dir: Path, tmp_path: Path) -> None:
    proc = bpy_process(user_dir, "farm_script", "", out=str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"Refocus: render failed: scene 'Scene' frame 1: {MESSAGE}" in proc.stderr
    assert not list(tmp_path.glob("script_*.exr"))


def test_with_the_preference_off_the_render_goes_on(user_dir: Path, tmp_path: Path) -> None:
    proc = bpy_process(user_dir, "farm_script", "0", out=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Refocus: Layered Defocus: connect the Depth input" in proc.stderr
    assert "render failed" not in proc.stderr
    assert len(sorted(tmp_path.glob("script_*.exr"))) == 3


def test_failed_node_marked_or_passed_through(user_dir: Path, tmp_path: Path) -> None:
    """MARKED is what the interface shows by default (AUTO); background renders that go on pass the
    input through by default, as the artist's pass-through choice does everywhere."""
    runs = {display: run_session("marked", user_dir, script=Path(ARTIST_SCRIPT), out=str(_folder(tmp_path / display)),
                                 display=display) for display in ("MARKED", "AUTO")}
    for display, result in runs.items():
        assert result["node"]["state"] == "ERROR" and "connect the Depth input" in result["node"]["message"]
    image = read_image(runs["AUTO"]["passes"])
    np.testing.assert_array_equal(read_image(runs["AUTO"]["path"]), image)
    marked = read_image(runs["MARKED"]["path"])
    stripes = np.all(marked == MAGENTA, axis=-1)
    assert 0.3 < float(stripes.mean()) < 0.7  # stripes across the frame, the picture between them
    np.testing.assert_array_equal(marked[~stripes], image[~stripes])


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
