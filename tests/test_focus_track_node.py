"""The Focus Track node in real Blender: a Cycles-rendered 3-frame clip read through an Image node gives
the same focus series as ``python -m core focus-track`` on the same files, drives Layered Defocus;
a Movie Clip tracking marker gives the CLI's series for the same boxes; and Bake Focus to Camera
keys the camera with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from addon_fixtures import install_extension, run_session
from core.cli import main

pytestmark = pytest.mark.blender
SESSION = Path(__file__).with_name("focus_track_session.py")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("focus_track_blender")
    install_extension(root)
    out = root / "out"
    out.mkdir()
    return run_session("clip", root / "user", script=SESSION, out=str(out))


def test_node_gives_the_cli_series_and_drives_layered_defocus(session: dict, tmp_path: Path, capsys) -> None:
    shown = session["shown"]
    assert sorted(shown) == ["1", "2", "3"], session
    for f, entry in shown.items():
        assert entry["state"] == "DONE", entry
        assert entry["defocus_state"] == "DONE", entry
    x0, y0, x1, y1 = session["box_bottom_left"]
    csv = tmp_path / "track.csv"
    lens = session["lens"]
    code = main(["focus-track", "--frames", *session["files"], "--depth", *session["files"],
                 "--box-uv", str(x0), str(1.0 - y1), str(x1), str(1.0 - y0), "--fps", str(session["fps"]),
                 "--focal-length", str(lens["focal_length_mm"]), "--f-stop", str(lens["f_stop"]),
                 "--sensor-width", str(lens["sensor_width_mm"]), "--output", str(csv), "--quiet"])
    assert code == 0, capsys.readouterr().err
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    cli = np.array([float(r[5]) for r in rows])
    node = np.array([shown[str(f)]["focus"] for f in (1, 2, 3)])
    assert node == pytest.approx(cli, abs=2e-5)
    # The subject walks from 3.0 to 2.6 m; its card's median planar depth is its distance.
    assert node == pytest.approx([3.0, 2.8, 2.6], rel=0.01)
    confidence = np.array([shown[str(f)]["confidence"] for f in (1, 2, 3)])
    assert np.all(confidence > 0.5)
    # Layered Defocus took each frame's value: the render is core's refocus at the tracked distance.
    from core.imageio import read_image, read_map
    from core.pipelines.defocus import LayeredDefocusParams, run as defocus

    for f in (1, 2, 3):
        frame = session["files"][f - 1]
        params = LayeredDefocusParams(focal_length_mm=lens["focal_length_mm"], f_stop=lens["f_stop"],
                                      focus_distance_m=float(node[f - 1]), sensor_width_mm=lens["sensor_width_mm"],
                                      device="cpu")
        expected = defocus(read_image(frame), read_map(frame), params).outputs["image"]
        got = read_image(session["refocused"][f - 1])
        assert float(np.abs(got[..., :3] - expected[..., :3]).max()) <= 1e-4, f  # at 3 m instead: 3e-4


def test_marker_node_samples_blenders_own_track(session: dict, tmp_path: Path, capsys) -> None:
    import json

    shown = session["shown"]
    assert all(shown[str(f)]["marker_state"] == "DONE" for f in (1, 2, 3)), shown
    boxes = [[x0, 1.0 - y1, x1, 1.0 - y0] for x0, y0, x1, y1 in session["boxes_bottom_left"]]
    csv = tmp_path / "markers.csv"
    lens = session["lens"]
    code = main(["focus-track", "--frames", *session["files"], "--depth", *session["files"],
                 "--boxes-uv", json.dumps(boxes), "--fps", str(session["fps"]),
                 "--focal-length", str(lens["focal_length_mm"]), "--f-stop", str(lens["f_stop"]),
                 "--sensor-width", str(lens["sensor_width_mm"]), "--output", str(csv), "--quiet"])
    assert code == 0, capsys.readouterr().err
    cli = np.array([float(line.split(",")[5]) for line in csv.read_text().splitlines()[1:]])
    node = np.array([shown[str(f)]["marker_focus"] for f in (1, 2, 3)])
    assert node == pytest.approx(cli, abs=2e-5)
    assert node == pytest.approx([3.0, 2.8, 2.6], rel=0.01)


def test_node_fed_by_a_non_file_source_says_what_to_do(session: dict) -> None:
    entry = session["shown"]["1"]
    assert entry["unfed_state"] == "ERROR"
    assert "reads the whole clip from files" in entry["unfed_message"], entry["unfed_message"]


def test_bake_focus_to_camera_keys_every_frame(session: dict) -> None:
    assert session["bake_result"] == ["FINISHED"]
    assert session["animated"]
    node = [session["shown"][str(f)]["focus"] for f in (1, 2, 3)]
    assert session["baked"] == pytest.approx(node, abs=1e-5)
