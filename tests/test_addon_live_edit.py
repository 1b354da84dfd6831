"""Live edits in real Blender (bpy 5.0.1): a node edit recomputes from the last render's passes.

After one F12 render (``artist_fixtures.live``), edits of the focus distance, f-stop, aperture
blades and kernel limit each run the interface's update: the worker recomputes from the render's
kept passes, with no Cycles render (renders are counted), and the node shows ``core``'s refocus
of the all-in-focus passes with the new parameters. At another frame the kept passes do not apply:
the node asks for a render instead of showing a wrong result.
"""

from __future__ import annotations

import math
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


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_extension(tmp_path_factory.mktemp("blender"))[0]


@pytest.fixture(scope="module")
def live(user_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("live")
    return run_session("live", user_dir, script=Path(ARTIST_SCRIPT), out=str(out))


def expected(passes: str, lens: dict[str, Any], k_max: int) -> np.ndarray:
    colour = torch.from_numpy(read_image(passes).transpose(2, 0, 1).copy())[None]
    depth = torch.from_numpy(read_map(passes))[None, None]
    return refocus(colour, depth, Lens(**lens), k_max=k_max)[0].numpy().transpose(1, 2, 0)


def lens_of(result: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    own = edit["lens"]
    return {**result["lens"], "focal_length_mm": own["focal_length_mm"], "f_stop": own["f_stop"],
            "focus_distance": own["focus_distance"], "sensor_width_mm": own["sensor_width_mm"],
            "blades": own["blades"], "rotation": math.radians(own["rotation_deg"]), "ratio": own["ratio"]}


def test_edits_recompute_from_the_last_render_without_cycles(live: dict[str, Any]) -> None:
    assert live["cycles_during_edits"] == 0
    assert [e["edit"] for e in live["edits"]] == ["focus_distance", "f_stop", "blades", "k_max"]
    previous = np.load(live["shown_first"])
    for edit in live["edits"]:
        assert edit["state"] == "DONE", edit
        assert edit["from_last_render"]
        want = expected(live["passes"], lens_of(live, edit), edit["k_max"])
        shown = np.load(edit["shown"])
        assert float(np.abs(shown - want).max()) <= TOLERANCE, edit["edit"]
        if edit["edit"] != "k_max":  # a limit above this small frame's largest blur changes nothing
            assert float(np.abs(shown - previous).max()) > 1e-3, f"{edit['edit']} changed nothing"
        previous = shown


def test_the_render_window_shows_the_last_edit(live: dict[str, Any]) -> None:
    last = live["edits"][-1]
    want = expected(live["passes"], lens_of(live, last), last["k_max"])
    assert float(np.abs(read_image(live["recomposited"]) - want).max()) <= TOLERANCE


def test_edits_leave_nothing_behind(live: dict[str, Any]) -> None:
    assert live["leftovers"] == []


def test_another_frame_asks_for_a_render(live: dict[str, Any]) -> None:
    assert live["other_frame"]["state"] == "IDLE"
    assert "press Update" in live["other_frame"]["message"]


def test_scene_camera_edits_count_as_edits(live: dict[str, Any]) -> None:
    assert live["camera_edit_seen"] and not live["world_edit_seen"]
    # The add-on's own re-composite (an engine switched for a moment) is no camera edit: no loop.
    assert not live["own_render_changes_camera"]
