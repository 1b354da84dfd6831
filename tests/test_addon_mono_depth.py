"""The Mono Depth node in real Blender (bpy 5.0.1): image -> Mono Depth -> Layered Defocus renders in one
tree, and the node's outputs equal ``python -m core mono-depth`` on the same pixels.

The Cycles sample's left view goes through the node (``mono_node_fixtures``) with a network weight
file, then Fit to Focus Object, then an ONNX export of the network, then a file that is not a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from addon_fixtures import blender_float, install_extension, max_diff
from core.cli import main as cli
from core.defocus import refocus
from core.imageio import read_image, read_map
from core.mono.export import export_onnx
from core.mono.network import save_model
from core.optics import Lens
from depth_node_fixtures import DEFOCUS_LENS, STEREO_SAMPLE, sample
from mono_fixtures import random_network
from mono_node_fixtures import FAR_M, FOCUS_LOCAL, IMAGE, NEAR_M, run_mono_session

pytestmark = pytest.mark.blender
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mono")
    _, installed = install_extension(root)
    assert installed["sockets"]["RefocusMonoDepthNode"] == [["Image"], ["Depth", "Inverse Depth"]]
    model = random_network("tiny")
    weights, onnx_model, junk = root / "mono_test.pt", root / "mono_test.onnx", root / "junk.onnx"
    save_model(weights, model, {"note": "random weights for a test"})
    export_onnx(model, onnx_model, 256, 256)
    junk.write_text("not a model")
    out = root / "out"
    out.mkdir()
    result = run_mono_session(root / "user", out=str(out), model=str(weights), onnx_model=str(onnx_model),
                              junk_model=str(junk))
    result["files"] = {"weights": str(weights), "onnx": str(onnx_model), "root": str(root)}
    return result


def _cli(session: dict[str, Any], name: str, *args: Any) -> dict[str, np.ndarray]:
    folder = Path(session["files"]["root"]) / "cli"
    folder.mkdir(exist_ok=True)
    depth, inverse = folder / f"{name}_depth.exr", folder / f"{name}_inverse.exr"
    code = cli(["mono-depth", "--image", str(IMAGE), "--output", str(depth), "--inverse-depth", str(inverse),
                "--quiet", *(str(a) for a in args)])
    assert code == 0
    return {"depth": read_map(depth), "inverse_depth": read_map(inverse)}


def _assert_equal_to_cli(run: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    assert run["nodes"]["Mono Depth"]["state"] == "DONE", run["nodes"]
    for key in ("depth", "inverse_depth"):
        assert max_diff(read_map(run["outputs"][key]), expected[key]) <= TOLERANCE, key


def test_mono_depth_node_equals_the_command_and_feeds_layered_defocus(session: dict[str, Any]) -> None:
    chain = session["chain"]
    expected = _cli(session, "chain", "--model", session["files"]["weights"], "--near", blender_float(NEAR_M),
                    "--far", blender_float(FAR_M))
    _assert_equal_to_cli(chain, expected)
    assert expected["depth"].min() == pytest.approx(NEAR_M, rel=1e-4)
    assert expected["depth"].max() == pytest.approx(FAR_M, rel=1e-4)
    assert session["leftovers"] == []
    # Layered Defocus refocused the image with the node's depth, in the same render.
    assert chain["nodes"]["Layered Defocus"]["state"] == "DONE", chain["nodes"]
    left = read_image(STEREO_SAMPLE / "left.exr")
    image = np.concatenate([left, np.ones_like(left[..., :1])], axis=-1)  # the compositor's RGBA
    want = refocus(torch.from_numpy(image.transpose(2, 0, 1).copy())[None],
                   torch.from_numpy(expected["depth"])[None, None], Lens(**DEFOCUS_LENS))[0].numpy().transpose(1, 2, 0)
    got = read_image(chain["composite"])
    assert max_diff(got, want) <= TOLERANCE
    assert np.abs(got - image).max() > 0.02  # it did refocus


def test_fit_to_the_focus_object(session: dict[str, Any]) -> None:
    params = session["focus_params"]
    cam = sample(STEREO_SAMPLE)["camera"]
    x, y, z = FOCUS_LOCAL
    scale = cam["focal_length_mm"] / cam["sensor_width_mm"]  # a square frame: the sensor width spans it
    assert params["focus_distance_m"] == pytest.approx(-z, rel=1e-6)
    assert params["focus_point"] == pytest.approx([0.5 + scale * x / -z, 0.5 - scale * y / -z], abs=1e-6)
    assert params["far_m"] == pytest.approx(FAR_M) and "near_m" not in params
    expected = _cli(session, "focus", "--model", session["files"]["weights"], "--focus-distance",
                    repr(params["focus_distance_m"]), "--focus-point", *map(repr, params["focus_point"]),
                    "--far", blender_float(FAR_M))
    _assert_equal_to_cli(session["focus"], expected)
    h, w = expected["depth"].shape
    px, py = (int(round(params["focus_point"][0] * w - 0.5)), int(round(params["focus_point"][1] * h - 0.5)))
    assert float(np.median(expected["depth"][py - 2:py + 3, px - 2:px + 3])) == pytest.approx(-z, rel=1e-3)
    behind = session["behind"]["Mono Depth"]
    assert behind["state"] == "ERROR" and "outside camera" in behind["message"], behind


def test_onnx_model_on_the_node_equals_the_command(session: dict[str, Any]) -> None:
    expected = _cli(session, "onnx", "--model", session["files"]["onnx"], "--near", blender_float(NEAR_M),
                    "--far", blender_float(FAR_M))
    _assert_equal_to_cli(session["onnx"], expected)


def test_a_file_that_is_not_a_model_is_an_error_and_the_render_finishes(session: dict[str, Any]) -> None:
    junk = session["junk"]
    node = junk["nodes"]["Mono Depth"]
    assert node["state"] == "ERROR" and "not an ONNX model" in node["message"], node
    assert "Refocus: Mono Depth:" in session["stderr"]
    assert junk["nodes"]["Layered Defocus"]["state"] == "ERROR"
    # The render finished: Layered Defocus passed its image through (a background render's default).
    left = read_image(STEREO_SAMPLE / "left.exr")
    np.testing.assert_array_equal(read_image(junk["composite"])[..., :3], left)
