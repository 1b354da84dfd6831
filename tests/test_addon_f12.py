"""F12 in real Blender (bpy 5.0.1): a render in a job thread gives the right image, or says why.

The reproduction (``artist_fixtures.threaded``) renders from a Python thread, so Blender calls the
add-on's handlers from a render thread as the interface's F12 does, then runs the interface's
timers on the main thread. The frame the artist sees (the Render Result) must equal ``core``'s
refocus of the all-in-focus passes, rendered independently of the add-on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from addon_fixtures import install_extension, run_session
from artist_fixtures import __file__ as ARTIST_SCRIPT
from core.defocus import refocus
from core.imageio import read_image, read_map
from core.optics import Lens

pytestmark = pytest.mark.blender
TOLERANCE = 1e-4
MAGENTA = np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_extension(tmp_path_factory.mktemp("blender"))[0]


def expected(passes: str, lens: dict[str, Any]) -> np.ndarray:
    colour = torch.from_numpy(read_image(passes).transpose(2, 0, 1).copy())[None]
    depth = torch.from_numpy(read_map(passes))[None, None]
    return refocus(colour, depth, Lens(**lens))[0].numpy().transpose(1, 2, 0)


def magenta_share(path: str) -> float:
    pixels = read_image(path)
    return float(np.mean(np.all(np.abs(pixels - MAGENTA) < 1e-6, axis=-1)))


@pytest.fixture(scope="module")
def threaded(user_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("f12")
    return run_session("threaded", user_dir, script=Path(ARTIST_SCRIPT), out=str(out))


def node_lens(result: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    own = node["lens"]
    return {**result["lens"], "focal_length_mm": own["focal_length_mm"], "f_stop": own["f_stop"],
            "focus_distance": own["focus_distance"], "sensor_width_mm": own["sensor_width_mm"]}


def test_handlers_ran_in_a_render_thread(threaded: dict[str, Any]) -> None:
    assert threaded["handlers_threaded"]
    assert threaded["opened_state"] == "IDLE"


def test_f12_after_opening_a_file_shows_a_marker_then_the_right_image(threaded: dict[str, Any]) -> None:
    # While the nodes have no result (the file was just opened), the thread composites the pending
    # marker: magenta stripes, not a black frame.
    during = read_image(threaded["opened_during"])
    assert 0.3 < magenta_share(threaded["opened_during"]) < 0.7
    assert during[..., :3].max() > 0.5
    # Once the render is over, the nodes are computed from its own passes and the frame composited
    # again without rendering: no further Cycles render.
    assert threaded["opened_node"]["state"] == "DONE", threaded["opened_node"]
    assert threaded["opened_follow_up_cycles"] == 0
    want = expected(threaded["passes"], node_lens(threaded, threaded["opened_node"]))
    got = read_image(threaded["opened_after"])
    assert float(np.abs(got - want).max()) <= TOLERANCE
    assert float(np.abs(want - read_image(threaded["passes"])).max()) > 0.05  # it did refocus


def test_f12_after_a_live_edit_composites_the_edit_at_once(threaded: dict[str, Any]) -> None:
    want = expected(threaded["passes"], node_lens(threaded, threaded["live_node"]))
    assert threaded["live_node"]["lens"]["focus_distance"] == pytest.approx(5.0)
    for frame in ("live_during", "live_after"):
        assert float(np.abs(read_image(threaded[frame]) - want).max()) <= TOLERANCE, frame
    assert threaded["live_cycles"] == 1  # F12's own render, nothing more


def test_f12_after_a_focus_change_is_not_the_old_result(threaded: dict[str, Any]) -> None:
    assert threaded["opened_node"]["lens"]["focus_distance"] == pytest.approx(3.0)
    assert threaded["refocused_node"]["lens"]["focus_distance"] == pytest.approx(8.0)
    assert threaded["refocused_node"]["state"] == "DONE"
    assert threaded["refocused_follow_up_cycles"] == 0
    at_8 = expected(threaded["passes"], node_lens(threaded, threaded["refocused_node"]))
    at_3 = expected(threaded["passes"], node_lens(threaded, threaded["opened_node"]))
    got = read_image(threaded["refocused_after"])
    assert float(np.abs(got - at_8).max()) <= TOLERANCE
    assert float(np.abs(got - at_3).max()) > 0.05


def test_f12_with_the_scene_cameras_depth_of_field_renders_sharp_passes_once(threaded: dict[str, Any]) -> None:
    # Cycles blurred F12's own passes with the camera's depth of field, so the follow-up renders
    # them again all in focus (one Cycles render) and refocuses those.
    assert threaded["camera_node"]["state"] == "DONE", threaded["camera_node"]
    assert threaded["camera_follow_up_cycles"] == 1
    lens = {**threaded["lens"], "focus_distance": 6.0}
    got = read_image(threaded["camera_after"])
    assert float(np.abs(got - expected(threaded["passes"], lens)).max()) <= TOLERANCE
    assert threaded["leftovers"] == []  # no helper scene, tree or image left behind (or saved with the file)


def test_ctrl_f12_animation_says_its_frames_hold_the_last_results(threaded: dict[str, Any]) -> None:
    assert len(threaded["animation_frames"]) == 2
    assert threaded["animation_cycles_after"] == 0
    assert "Render Animation (Ctrl+F12) renders in a thread" in threaded["stderr"]
    assert "Render Animation with Refocus" in threaded["stderr"]


def test_f12_with_the_interface_locked_renders_once_all_in_focus(threaded: dict[str, Any]) -> None:
    # Lock Interface lets the render thread switch the camera's depth of field off for the render
    # (and back): F12's own passes are all in focus, and no second render is needed.
    assert threaded["locked_dof_after_render"] is True
    assert threaded["locked_node"]["state"] == "DONE", threaded["locked_node"]
    assert threaded["locked_follow_up_cycles"] == 0
    lens = {**threaded["lens"], "focus_distance": 6.0}
    assert float(np.abs(read_image(threaded["locked_after"]) - expected(threaded["passes"], lens)).max()) <= TOLERANCE
