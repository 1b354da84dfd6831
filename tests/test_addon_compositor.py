"""The add-on in real Blender (the bpy 5.0.1 module), installed from its zip as a user installs it.

Each scenario of ``addon_fixtures`` runs in a fresh Python process whose Blender user folders live
in a temporary directory: build a small Cycles scene, wire Refocus nodes in the compositor, render
headless. The tests compare the written pixels with ``core``'s own result on the same pixels: the
all-in-focus passes, rendered independently of the add-on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from addon_fixtures import FOCUS_DEPTHS, K_MAX, NODE_TYPES, install_extension, run_session
from core.defocus import refocus
from core.imageio import read_image, read_map
from core.optics import Lens

pytestmark = pytest.mark.blender
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Blender user folders with the extension installed through Blender's extension API."""
    user, result = install_extension(tmp_path_factory.mktemp("blender"))
    sockets = result["sockets"]
    assert sorted(sockets) == sorted(NODE_TYPES)
    assert sockets["RefocusLayeredDefocusNode"] == [["Image", "Depth", "Focus Distance", "Bokeh Image"],
                                                    ["Image", "Focus Map"]]
    assert sockets["RefocusStereoDepthNode"] == [["Left", "Right"], ["Depth", "Disparity", "Confidence"]]
    assert result["menu"] and result["add_menu_hooked"]
    assert "blender_manifest.toml" in result["installed_files"] and "__pycache__" not in result["installed_files"]
    return user


def _expected(passes: str, lens: dict[str, Any], image: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
    """``core.refocus`` of the passes' colour (or ``image``) with their depth."""
    colour = read_image(passes) if image is None else image
    depth = read_map(passes)
    out = refocus(torch.from_numpy(colour.transpose(2, 0, 1).copy())[None], torch.from_numpy(depth)[None, None],
                  Lens(**lens), **kwargs)
    return out[0].numpy().transpose(1, 2, 0)


def _assert_close(path: str, expected: np.ndarray) -> None:
    got = read_image(path)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) <= TOLERANCE


def test_render_layers_through_layered_defocus_equal_core(user_dir: Path, tmp_path: Path) -> None:
    result = run_session("still", user_dir, out=str(tmp_path))
    assert result["nodes"]["Layered Defocus"]["state"] == "DONE"
    # Like Blender's own nodes, one whose result reaches no output costs a render nothing.
    assert result["nodes"]["Spare"]["state"] == "IDLE"
    expected = _expected(result["passes"], result["lens"])
    _assert_close(result["still"], expected)
    assert np.abs(expected - read_image(result["passes"])).max() > 0.05  # it did refocus
    # A second render of the same frame comes from the cache, and the artist's tree is back.
    assert result["cache_hits"] == 1
    _assert_close(result["again"], expected)
    assert result["tree_after"] == "Compositing" and result["leftovers"] == []


@pytest.fixture(scope="module")
def animation(user_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("animation")
    result = run_session("animation", user_dir, out=str(out), blend=str(out / "scene.blend"))
    result["blend"] = str(out / "scene.blend")
    return result


def test_moving_focus_object_gives_three_correct_frames(animation: dict[str, Any]) -> None:
    frames = [read_image(path) for path in animation["frames"]]
    for depth, frame in zip(FOCUS_DEPTHS, frames):
        lens = {**animation["lens"], "focus_distance": depth}
        expected = _expected(animation["passes"], lens, k_max=K_MAX)
        assert float(np.abs(frame - expected).max()) <= TOLERANCE
    for a, b in ((0, 1), (1, 2), (0, 2)):
        assert np.abs(frames[a] - frames[b]).max() > 0.05
    assert animation["leftovers"] == []
    # The rest of the tree saw Render Layers as the add-on rendered them, all in focus: Blender did
    # not render the scene a second time.
    assert len(animation["layers"]) == len(FOCUS_DEPTHS)
    for path in animation["layers"]:
        assert float(np.abs(read_image(path) - read_image(animation["passes"])).max()) <= TOLERANCE


def test_saved_file_reloads_and_renders_the_same_frames(animation: dict[str, Any], tmp_path: Path,
                                                        user_dir: Path) -> None:
    result = run_session("reload", user_dir, out=str(tmp_path), blend=animation["blend"])
    kept = result["kept"]
    assert kept["idname"] == "RefocusLayeredDefocusNode" and kept["k_max"] == K_MAX
    assert kept["location"] == [300.0, 40.0] and kept["focus_object"] == "Focus Target"
    assert kept["links"] == ["Layered Defocus:Image->Group Output:Image", "Render Layers:Depth->Layered Defocus:Depth",
                             "Render Layers:Image->File Output:image", "Render Layers:Image->Layered Defocus:Image"]
    for before, after in zip(animation["frames"], result["frames"]):
        assert float(np.abs(read_image(before) - read_image(after)).max()) <= TOLERANCE
    # Disabling the add-on leaves the node in the file; enabling it brings it back, properties and all.
    assert result["disabled"]["idname"] == "NodeUndefined" and result["disabled"]["k_max_after"] == K_MAX
    assert result["nodes"]["Layered Defocus"]["state"] == "DONE"
    assert float(np.abs(read_image(result["reenabled"]) - read_image(animation["frames"][1])).max()) <= TOLERANCE


def test_wrong_inputs_show_on_the_node_and_the_render_finishes(user_dir: Path, tmp_path: Path) -> None:
    result = run_session("errors", user_dir, out=str(tmp_path))
    image = read_image(result["passes"])
    messages = {
        "no_depth": "connect the Depth input",
        "small_depth": "the image is 96x72 but the depth is 48x36",
        "no_dof": "camera 'Camera' has depth of field off",
    }
    for case, message in messages.items():
        node = result[case]
        assert node["state"] == "ERROR" and message in node["message"]
        assert f"Refocus: Layered Defocus: {message}" in result["stderr"]
        # The render finished and passes the image through: never a black frame.
        np.testing.assert_array_equal(read_image(node["path"]), image)
    assert result["fixed"]["state"] == "DONE"
    _assert_close(result["fixed"]["path"], _expected(result["passes"], result["lens"]))


def test_worker_that_cannot_start_or_dies_shows_on_the_node(user_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    broken.chmod(0o755)
    result = run_session("broken_worker", user_dir, out=str(tmp_path), broken_python=str(broken))
    assert result["bad_python"]["state"] == "ERROR"
    assert "No module named 'torch'" in result["bad_python"]["message"]
    assert result["killed"]["state"] == "ERROR"
    assert "stopped unexpectedly (killed by signal 9)" in result["killed"]["message"]
    assert result["recovered"]["state"] == "DONE"


def test_interactive_updates_report_progress_cancel_and_refocus(user_dir: Path, tmp_path: Path) -> None:
    result = run_session("interactive", user_dir, out=str(tmp_path), env={"REFOCUS_WORKER_STEP_PAUSE": "0.02"})
    assert result["without_passes"]["state"] == "IDLE"
    assert "press Update" in result["without_passes"]["message"]
    cancelled = result["cancelled"]
    assert cancelled["state"] == "CANCELLED"
    assert any(state == "RUNNING" and 0.0 < progress < 1.0 for state, progress in cancelled["progress_seen"])
    assert cancelled["chained"]["state"] == "CANCELLED"
    assert {node["state"] for node in result["updated"].values()} == {"DONE"}
    expected = _expected(result["passes"], result["lens"])
    assert float(np.abs(np.load(result["shown"]) - expected).max()) <= TOLERANCE


def test_other_sources_and_chained_nodes(user_dir: Path, tmp_path: Path) -> None:
    """A Movie Clip (EXR sequence), a multilayer EXR's Depth layer and a Value node (the focus
    distance) feed two chained nodes; a Stereo Depth node beside them computes from the same clip."""
    result = run_session("sources", user_dir, out=str(tmp_path))
    nodes = result["nodes"]
    assert nodes["Layered Defocus"]["state"] == nodes["Layered Defocus.001"]["state"] == "DONE"
    assert result["leftovers"] == []
    assert nodes["Stereo Depth"]["state"] == "DONE", nodes["Stereo Depth"]
    base = {**result["lens"], "f_stop": 2.0}
    depth = torch.from_numpy(read_map(result["passes"]))[None, None]
    for source, frame in zip(result["sequence"], result["frames"]):
        image = torch.from_numpy(read_image(source).transpose(2, 0, 1).copy())[None]
        first = refocus(image, depth, Lens(**{**base, "focus_distance": 6.0}))
        second = refocus(first, depth, Lens(**{**base, "focus_distance": 1.0}))
        _assert_close(frame, second[0].numpy().transpose(1, 2, 0))


def test_a_bokeh_image_is_the_aperture_and_the_focus_map_comes_out(user_dir: Path, tmp_path: Path) -> None:
    """Any image linked to Bokeh Image is the kernel core uses (as the command line's --bokeh-image),
    Blender's Bokeh Image node too; the Focus Map output is core's heat map of the same CoC."""
    from core.focus_map import focus_map
    from core.pipelines.defocus import LayeredDefocusParams, run

    result = run_session("bokeh", user_dir, out=str(tmp_path))
    cases = result["cases"]
    for case in cases.values():
        assert case["node"]["state"] == "DONE", case
    image, depth = read_image(result["passes"]), read_map(result["passes"])
    lens = result["lens"]
    params = LayeredDefocusParams(focal_length_mm=lens["focal_length_mm"], f_stop=1.0, focus_distance_m=2.0,
                                  sensor_width_mm=lens["sensor_width_mm"], device="cpu")
    kernel = read_image(result["kernel"])[..., 0]
    expected = run(image, depth, params, bokeh_image=kernel, focus_map=True)
    _assert_close(cases["image"]["frame"], expected.outputs["image"])
    heat = np.load(cases["image"]["focus_map"])[..., :3]
    assert float(np.abs(heat - expected.outputs["focus_map"][..., :3]).max()) <= TOLERANCE
    round_frame, shaped = read_image(cases["round"]["frame"]), read_image(cases["image"]["frame"])
    assert float(np.abs(round_frame - shaped).max()) > 0.02  # the triangle really shaped the blur
    pentagon = read_image(cases["bokeh_node"]["frame"])
    assert float(np.abs(pentagon - round_frame).max()) > 0.005
