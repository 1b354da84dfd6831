"""Layered Defocus's depth types, focus picker and per-node device (issue 19, point 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.optics import focal_length_pixels
from core.pipelines.defocus import SPEC, LayeredDefocusParams, run

ROOT = Path(__file__).resolve().parents[1]
H, W = 96, 160
NEAR, FAR, BASELINE = 1.0, 8.0, 0.1


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    image = rng.random((H, W, 3), dtype=np.float32)
    depth = np.linspace(NEAR, FAR, W, dtype=np.float32)[None].repeat(H, 0)
    return image, depth


def _encoded(depth: np.ndarray, kind: str) -> np.ndarray:
    """``depth`` in metres written as ``kind``, by hand."""
    if kind == "normalised":
        return (depth - NEAR) / (FAR - NEAR)
    if kind == "inverse":
        return (1.0 / depth - 1.0 / FAR) / (1.0 / NEAR - 1.0 / FAR)
    if kind == "disparity":
        return BASELINE * focal_length_pixels(50.0, W, H, 36.0) / depth
    return depth


@pytest.fixture(scope="module")
def node_params(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from addon_fixtures import run_session

    return run_session("defocus_node", tmp_path_factory.mktemp("blender"),
                       script=ROOT / "tests" / "defocus_node_session.py")


@pytest.mark.parametrize("kind", ["normalised", "inverse", "disparity"])
def test_each_depth_type_gives_what_metres_give(kind: str) -> None:
    image, depth = _scene()
    lens = dict(focal_length_mm=50.0, f_stop=1.0, focus_distance_m=2.0, device="cpu")
    reference = run(image, depth, LayeredDefocusParams(**lens)).outputs["image"]
    extra = {"near_m": NEAR, "far_m": FAR} if kind != "disparity" else {"baseline_m": BASELINE}
    out = run(image, _encoded(depth, kind).astype(np.float32),
              LayeredDefocusParams(**lens, depth_type=kind, **extra)).outputs["image"]
    np.testing.assert_allclose(out, reference, atol=2e-4)
    assert np.abs(reference - image).max() > 0.05  # the scene is really defocused


@pytest.mark.parametrize("kind", ["METRES", "NORMALISED", "INVERSE", "DISPARITY"])
def test_the_node_sends_each_depth_type_as_core_takes_it(node_params: dict, kind: str) -> None:
    image, depth = _scene()
    params = SPEC.parse(node_params[kind])
    reference = run(image, depth, SPEC.parse(node_params["METRES"])).outputs["image"]
    out = run(image, _encoded(depth, params.depth_type).astype(np.float32), params).outputs["image"]
    np.testing.assert_allclose(out, reference, atol=2e-4)


def test_the_picker_sets_the_focus_point_that_core_focuses_on(node_params: dict) -> None:
    picked = node_params["picked"]
    assert picked["result"] == ["FINISHED"] and picked["use_focus_point"]
    assert picked["focus_point"] == pytest.approx([0.25, 0.75])
    params = SPEC.parse(picked["params"])
    assert params.focus_point == pytest.approx((0.25, 0.25))  # core's point runs from the top
    image, depth = _scene()
    result = run(image, depth, params)
    assert result.info["focus_distance_m"] == pytest.approx(float(depth[H // 4, W // 4]), rel=0.02)


def test_the_device_follows_the_compositor_unless_the_node_says(node_params: dict) -> None:
    assert node_params["devices"] == {"COMPOSITOR": "cpu", "CPU": "cpu", "GPU": "auto"}


def test_a_click_maps_to_the_backdrop_image_point() -> None:
    from addon.focus_picker import backdrop_point

    # A 200x100 image at zoom 2 in a 1000x600 region, moved 50 px right: its centre at (550, 300).
    assert backdrop_point((550, 300), (1000, 600), (200, 100), 2.0, (50, 0)) == pytest.approx((0.5, 0.5))
    assert backdrop_point((350, 200), (1000, 600), (200, 100), 2.0, (50, 0)) == pytest.approx((0.0, 0.0))
    assert backdrop_point((100, 300), (1000, 600), (200, 100), 2.0, (50, 0)) is None  # beside the image
