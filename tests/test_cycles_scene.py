"""The scene API: what it builds is what the data says, and renders repeat exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from blender_fixtures import blender, blender_tmp  # noqa: F401

from blender_scenes import scene as bs
from core.optics import Lens

pytestmark = blender

TINY = bs.RenderSettings(width=48, height=32, samples=4, adaptive_threshold=0.0)


def textured_wall(kind: str) -> bs.SceneSpec:
    material = bs.Material(bs.Texture(kind, (0.9, 0.2, 0.1), (0.1, 0.3, 0.9), scale=6.0))
    return bs.SceneSpec(objects=(bs.Plane(3.0, (6.0, 4.0), material=material), bs.Sun()), world=(0.5, 0.5, 0.5))


def test_lens_round_trips_through_the_blender_camera():
    lens = Lens(35.0, 2.8, 4.5, sensor_width_mm=24.0, sensor_height_mm=16.0, sensor_fit="VERTICAL",
                blades=7, rotation=math.radians(12.0), ratio=1.5)
    scn = bs.build(bs.SceneSpec(), TINY, lens)
    back = bs.lens_of(scn.camera)
    for name, value in vars(lens).items():
        if isinstance(value, float):
            assert getattr(back, name) == pytest.approx(value, rel=1e-6), name  # Blender stores float32
        else:
            assert getattr(back, name) == value, name


@pytest.mark.parametrize("kind", ["flat", "checker", "noise", "voronoi", "brick"])
def test_every_texture_renders_its_colours(blender_tmp, kind):
    frame = bs.render(bs.build(textured_wall(kind), TINY, Lens(50.0, 2.8, 3.0)), blender_tmp / f"{kind}.exr")
    assert frame.image.shape == (32, 48, 3) and np.isfinite(frame.image).all()
    red, blue = frame.image[..., 0], frame.image[..., 2]
    assert red.max() > 2 * blue.min()  # colour a shows
    if kind != "flat":
        assert blue.max() > red.min()  # colour b shows too: a pattern, not a flat fill


def test_renders_are_deterministic_and_overwrite_atomically(blender_tmp):
    scn = bs.build(textured_wall("noise"), TINY, Lens(50.0, 2.0, 3.0))
    first = bs.render(scn, blender_tmp / "a.exr", dof=True)
    second = bs.render(scn, blender_tmp / "a.exr", dof=True)
    np.testing.assert_array_equal(first.image, second.image)
    assert sorted(p.name for p in blender_tmp.iterdir()) == ["a.exr"]  # no temporary left behind


def test_emission_is_hdr_and_the_world_can_be_black(blender_tmp):
    ball = bs.Primitive("sphere", (0.0, 2.0, 0.0), (0.5, 0.5, 0.5),
                        material=bs.Material(bs.Texture("flat", (0.0, 0.0, 0.0)), emission=20.0))
    frame = bs.render(bs.build(bs.SceneSpec(objects=(ball,), world=None), TINY, Lens(50.0, 2.8, 2.0)),
                      blender_tmp / "ball.exr")
    assert frame.image.max() > 10.0  # not clipped
    assert frame.image[0, 0].max() == 0.0  # black world, nothing else lit
