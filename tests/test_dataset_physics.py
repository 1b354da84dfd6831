"""Physics of the generated data, against core.optics, with real Cycles renders.

A small emitter out of focus in a focal-stack slice, rendered by the dataset renderer (its camera
code, denoiser on; 64 samples rather than 4, as a 6 px emitter sends few rays through a 10-17 px
disc and the measurement would mostly see sampling noise), must image as a disc whose diameter is
core's CoC for the camera the slice records, within 1 px: with and without focus breathing,
behind and in front of the focus plane. Depth written to the sample EXR must be the known plane
distance to 1e-3 relative. Stereo disparity must register the two views.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from blender_fixtures import disc_diameter
from blender_scenes import scene as bs
from blender_scenes.dataset_render import CameraState, DatasetRenderer, Quality, sensor_distance_mm
from blender_scenes.dataset_samples import write_plane
from blender_scenes.dataset_scenes import DatasetScene, Placed
from core.imageio import read_map
from core.optics import Lens, circle_of_confusion

pytestmark = pytest.mark.blender

SIZE = 128
LENS = Lens(focal_length_mm=50.0, f_stop=2.0, focus_distance=0.5, sensor_width_mm=36.0)


def emitter(depth: float, lens: Lens = LENS) -> DatasetScene:
    """An emissive ball imaging to about 6 px at ``depth`` metres on the axis, in a black world."""
    f_px = lens.focal_length_pixels(SIZE, SIZE)
    ball = bs.Primitive("ico_sphere", (0.0, depth, 0.0), (6.0 * depth / f_px,) * 3,
                        material=bs.Material(bs.Texture("flat", (0.0, 0.0, 0.0)), emission=1.0))
    return DatasetScene((Placed("Ball", ball),), (), None, 1.0, lens)  # type: ignore[arg-type]


@pytest.mark.parametrize("depth, focus, breathing", [
    (1.0, 0.3, False),   # behind the focus plane
    (0.3, 1.0, False),   # in front of it
    (1.0, 0.25, True),   # breathing: the slice magnifies by F / (F - f) = 1.25
])
def test_out_of_focus_emitter_is_a_disc_of_core_coc(tmp_path: Path, depth: float, focus: float,
                                                     breathing: bool) -> None:
    renderer = DatasetRenderer(emitter(depth), SIZE, SIZE, Quality(samples=64), 1, tmp_path)
    # The sharp reference through a pinhole-sized aperture at the slice's own magnification, so
    # that the emitter's own image cancels out of the measured disc.
    sharp, _ = renderer.render(CameraState(focus, 1e4, breathing=breathing), "sharp")
    slice_, record = renderer.render(CameraState(focus, breathing=breathing), "slice")
    measured = disc_diameter(sharp.image.mean(axis=2), slice_.image.mean(axis=2))

    # core's thin-lens CoC for the recorded camera (nominal focal length; breathing as Eq. 1)
    expected = abs(float(circle_of_confusion(torch.tensor(depth), focus, LENS.f_stop, LENS.focal_length_mm,
                                             LENS.focal_length_pixels(SIZE, SIZE), breathing=breathing)))
    from_record = abs(record["coc_px_per_dioptre"] * (1.0 / focus - 1.0 / depth))
    assert from_record == pytest.approx(expected, rel=1e-6)
    assert expected > 8.0  # a disc large enough that 1 px is a real test
    assert abs(measured - expected) < 1.0, f"disc {measured:.2f} px, core CoC {expected:.2f} px"
    if breathing:
        assert record["focal_length_mm"] == pytest.approx(sensor_distance_mm(50.0, focus))
        assert record["relative_fov"] == pytest.approx((focus - 0.05) / focus)
        no_breathing = expected * (focus - 0.05) / focus
        assert abs(measured - no_breathing) > 1.5  # the test tells breathing from none


def test_planar_depth_in_the_sample_exr(tmp_path: Path) -> None:
    distance = 1.7345
    wall = bs.Plane(distance=distance, size=(4.0, 4.0), material=bs.Material(bs.Texture("checker", scale=8.0)))
    scene = DatasetScene((Placed("Wall", wall),), (bs.Sun(),), (0.3, 0.3, 0.3), 1.0, LENS)
    renderer = DatasetRenderer(scene, 64, 48, Quality(), 3, tmp_path)
    frame, _ = renderer.render(CameraState(), "aif")
    write_plane(tmp_path / "depth.exr", frame.depth)
    depth = read_map(tmp_path / "depth.exr")
    assert depth.shape == (48, 64)
    np.testing.assert_allclose(depth, distance, rtol=1e-3)
