"""Stereo Depth against Cycles: a pair rendered with Blender's stereo camera, depth vs its Z pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from blender_scenes.dataset_samples import Options
from blender_scenes.generate import generate
from core.imageio import read_image, read_map
from core.stereo import StereoCamera, estimate_disparity
from core.stereo.confidence import texture_strength
from core.stereo.sgbm import _grey, to_matching_image

pytestmark = pytest.mark.blender


def test_depth_from_a_cycles_stereo_pair_matches_the_z_pass(tmp_path):
    # One sample of the project's ``stereo`` dataset: Blender's stereo camera (PARALLEL, centred),
    # street-scale scene, 35 mm lens, rendered by Cycles with its Z pass for each view. At 512 px
    # the 15-30 m backdrop still has 3-10 px of disparity, so a tenth of a pixel is a few percent
    # of depth there (measured: 2.3 % median; at 256 px it was 4.9 %).
    generate("stereo", 1, tmp_path, seed=11, options=Options(width=512, height=384), progress=False, preview=False)
    sample = tmp_path / "000000"
    record = json.loads((sample / "sample.json").read_text())
    left, right = read_image(sample / "left.exr"), read_image(sample / "right.exr")
    z = read_map(sample / "depth_left.exr")
    camera = StereoCamera(interocular_distance=record["baseline_m"], convergence_mode="PARALLEL",
                          focal_length_mm=35.0, sensor_width_mm=36.0)
    assert camera.focal_length_pixels(512, 384) == pytest.approx(record["focal_length_px"])

    tensors = [torch.from_numpy(v.transpose(2, 0, 1).copy())[None] for v in (left, right)]
    result = estimate_disparity(*tensors, method="sgbm", max_disparity=192)
    depth = camera.to_depth(result.disparity)[0, 0].numpy()
    # Textured surfaces that both views see: matched, with horizontal texture to match.
    textured = result.valid[0, 0].numpy() & (texture_strength(_grey(to_matching_image(left))) > 0.5)
    assert textured.mean() > 0.05
    relative = np.abs(depth - z) / z
    print(f"median relative error {np.median(relative[textured]):.4f} on {textured.mean():.0%} of pixels")
    assert float(np.median(relative[textured])) <= 0.05
