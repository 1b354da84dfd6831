"""Core's optics against Cycles' camera: disc size, Z pass, polygon orientation, anamorphic squeeze.

Each case renders a small emissive ball in a black world twice with real Cycles, without and with
depth of field, and compares what the lens did to it with what core predicts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from blender_fixtures import (POINT_LENS, POINT_SIZE, blender, blender_tmp, disc_diameter, iou,  # noqa: F401
                              render_emitter, second_moments)

from blender_scenes import scene as bs
from core.bokeh import bokeh_kernel
from core.defocus import layered_defocus
from core.optics import Lens

pytestmark = blender

# Focus at 1 m: a ball at 4 m is behind focus (CoC about +10 px), at 0.55 m in front (about -11 px).
BEHIND, FRONT = 4.0, 0.55


def coc_px(lens: Lens, depth: float) -> float:
    return float(lens.circle_of_confusion(torch.full((1, 1, POINT_SIZE, POINT_SIZE), depth))[0, 0, 0, 0])


def test_z_pass_is_planar_depth(blender_tmp):
    """A plane facing the camera reads its distance in every pixel, corners included (not ray length)."""
    lens = Lens(24.0, 2.8, 3.7)  # wide angle: ray length at the corners is 30% longer than the depth
    spec = bs.SceneSpec(objects=(bs.Plane(3.7, (20.0, 14.0)),), world=(0.5, 0.5, 0.5))
    scn = bs.build(spec, bs.RenderSettings(width=64, height=48, samples=1, adaptive_threshold=0.0), lens)
    frame = bs.render(scn, blender_tmp / "plane.exr", dof=False)
    assert frame.depth.shape == (48, 64)
    np.testing.assert_allclose(frame.depth, 3.7, atol=1e-4)


@pytest.mark.parametrize("depth", [BEHIND, FRONT], ids=["behind", "front"])
def test_disc_diameter_matches_coc(blender_tmp, depth):
    sharp, blurred = render_emitter(blender_tmp, depth, POINT_LENS)
    expected = abs(coc_px(POINT_LENS, depth))
    assert expected > 9.0  # big enough that a one-pixel tolerance means something
    assert disc_diameter(sharp, blurred) == pytest.approx(expected, abs=1.0)
    # Defocus moves light, it does not add or remove it.
    assert blurred.sum() == pytest.approx(sharp.sum(), rel=0.03)


@pytest.mark.parametrize("depth", [BEHIND, FRONT], ids=["behind", "front"])
def test_polygon_bokeh_has_core_orientation(blender_tmp, depth):
    """Five blades turned 20 degrees: Cycles' shape is what core's layered defocus makes of the same
    emitter, not that turned 180 degrees nor the blades turned the other way."""
    lens = Lens(100.0, 2.0, 1.0, blades=5, rotation=math.radians(20.0))
    sharp, blurred = render_emitter(blender_tmp, depth, lens)
    coc = coc_px(lens, depth)

    def core(rotation: float) -> np.ndarray:
        image = torch.from_numpy(sharp)[None, None].double()
        # One CoC everywhere: core's output is the emitter spread by the kernel it uses for that
        # CoC; a k_max above the kernel keeps downsampling out of a test of shape.
        out = layered_defocus(image, torch.full_like(image, coc), blades=5, rotation=rotation, k_max=31)
        return out[0, 0].numpy()

    right = core(lens.rotation)
    shapes = {
        "core": right,
        "turned 180 degrees": np.rot90(right, 2),  # about the frame centre, where the emitter is
        "turned the other way": core(-lens.rotation),
    }
    overlap = {name: iou(shape, blurred) for name, shape in shapes.items()}
    error = {name: float(np.abs(shape - blurred).sum()) for name, shape in shapes.items()}
    report = ", ".join(f"{name}: IoU {overlap[name]:.3f}, L1 {error[name]:.2f}" for name in shapes)
    assert overlap["core"] > 0.85, report
    for name in list(shapes)[1:]:
        assert overlap["core"] > overlap[name] + 0.05, report
        assert error["core"] < 0.8 * error[name], report


def test_anamorphic_ratio_squeezes_the_same_axis(blender_tmp):
    """Aperture ratio 2: Cycles' bokeh is twice as tall as wide, and so is core's kernel."""
    lens = Lens(100.0, 2.0, 1.0, ratio=2.0)
    sharp, blurred = render_emitter(blender_tmp, BEHIND, lens)
    _, _, sx, sy = second_moments(sharp)
    _, _, bx, by = second_moments(blurred)
    cycles_aspect = math.sqrt((by - sy) / (bx - sx))  # height over width of the blur itself
    _, _, kx, ky = second_moments(bokeh_kernel(abs(coc_px(lens, BEHIND)), ratio=2.0).numpy())
    core_aspect = math.sqrt(ky / kx)
    assert cycles_aspect > 1.5 and core_aspect > 1.5
    assert cycles_aspect == pytest.approx(core_aspect, rel=0.1)
