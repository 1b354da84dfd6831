"""CameraNet, the camera-aware learned focal-stack method: its input, the shipped weights on cameras
of very different blur, the command line, and the training command.

Stacks are rendered with the project's layered defocus (Cycles' thin-lens camera), so the blur each
slice shows is the blur core.optics predicts for the lens.
"""

from __future__ import annotations

import math

import pytest
import torch

from core.cli import main
from core.focal_stack.camera_learned import camera_learned_depth, default_weights, load_model
from core.focal_stack.camera_net import (BINS, CameraNet, CameraNetConfig, expected_position, feature_count,
                                         volume_features)
from core.focal_stack.defocus_volume import physical_depth, physical_volume
from core.focal_stack.synthetic import dioptre_spaced, noise_texture, render_stack, slanted_plane
from core.imageio import read_map, write_image
from core.optics import Lens

SIZE = 128


def _abs_rel(est: torch.Tensor, gt: torch.Tensor, margin: int = 8) -> float:
    e, g = est[..., margin:-margin, margin:-margin], gt[..., margin:-margin, margin:-margin]
    return float(((e - g).abs() / g).mean())


def _scene(lens: Lens, near: float, far: float, slices: int, seed: int):
    """A textured plane slanting over most of the focus range near..far, ``slices`` slices."""
    g = torch.Generator().manual_seed(seed)
    image = noise_texture(SIZE, SIZE, g)
    depth = slanted_plane(SIZE, SIZE, near * 1.15, far * 0.8)
    focus = dioptre_spaced(near, far, slices)
    return depth, focus, render_stack(image, depth, lens, focus)


# Two cameras unlike each other and unlike any one training camera: a full-frame 85 mm f/1.8 focused
# 2-20 m (14 px of CoC per dioptre at 128 px, 6 px across the range) and a 25 mm f/1.4 on a Micro
# Four Thirds sensor focused 0.3-2 m (3.3 px per dioptre, 9 px across the range).
CAMERAS = {
    "85mm": (Lens(85.0, 1.8, sensor_width_mm=36.0), 2.0, 20.0, 5),
    "25mm": (Lens(25.0, 1.4, sensor_width_mm=17.3), 0.3, 2.0, 7),
}


def test_features_have_the_declared_layout_and_the_untrained_net_reads_out_the_physical_softmax():
    lens, near, far, n = CAMERAS["85mm"]
    _, focus, stack = _scene(lens, near, far, n, seed=3)
    volume = physical_volume(stack, focus, lens)
    features = volume_features(volume)
    h, w = (SIZE + 1) // 2, (SIZE + 1) // 2
    assert features.shape == (1, feature_count(), h, w)
    probabilities = features[:, BINS:2 * BINS]
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(1, h, w), atol=1e-4)
    net = CameraNet(CameraNetConfig(width=8)).eval()  # its last layer starts at zero
    with torch.no_grad():
        logits, gate = net(features)
        t, spread = net.position(features)
    positions = torch.linspace(0, 1, BINS).view(1, BINS, 1, 1)
    soft = (probabilities * positions).sum(dim=1, keepdim=True)
    assert torch.allclose(expected_position(logits)[0], soft, atol=1e-4)
    # Untrained, the gate is one half: the mean of the physical peak and the soft read-out.
    assert torch.allclose(gate, torch.full_like(gate, 0.5))
    peak = features[:, 2 * BINS:2 * BINS + 1]
    assert torch.allclose(t, 0.5 * peak + 0.5 * soft, atol=1e-4)
    assert float(spread.min()) >= 0.0 and float(spread.max()) <= 0.5


@pytest.mark.parametrize("camera", sorted(CAMERAS))
def test_shipped_weights_serve_cameras_they_never_saw(camera):
    """One set of weights on both cameras: depth within 10 %, not far off the physical method it
    reads (on these clean, fully textured planes the local evidence is already good, and the
    network's learned caution about far, faint evidence costs a little), and every depth inside
    the focus range."""
    lens, near, far, n = CAMERAS[camera]
    depth, focus, stack = _scene(lens, near, far, n, seed=5)
    model = load_model()
    learned = camera_learned_depth(stack, focus, lens, model)
    physical = physical_depth(stack, focus, lens)
    err_l, err_p = _abs_rel(learned.depth, depth), _abs_rel(physical.depth, depth)
    assert err_l < 0.10, (err_l, err_p)  # measured 0.075 (85 mm) and 0.031 (25 mm)
    assert err_l < 2.5 * err_p, (err_l, err_p)  # physical 0.036 and 0.029
    assert float(learned.depth.min()) >= near * 0.999 and float(learned.depth.max()) <= far * 1.001
    assert learned.uncertainty is not None and float(learned.uncertainty.min()) >= 0.0
    assert learned.all_in_focus.shape == stack[:1].shape


def test_the_camera_matters():
    """Told the wrong f-number (f/5.6 for an f/1.8 stack: a third of the blur per dioptre), the
    method puts the plane elsewhere; the network cannot undo a wrong camera, and must not hide it."""
    lens, near, far, n = CAMERAS["85mm"]
    depth, focus, stack = _scene(lens, near, far, n, seed=5)
    model = load_model()
    right = _abs_rel(camera_learned_depth(stack, focus, lens, model).depth, depth)
    wrong = _abs_rel(camera_learned_depth(stack, focus, Lens(85.0, 5.6, sensor_width_mm=36.0), model).depth, depth)
    assert wrong > 2 * right + 0.02, (right, wrong)


def test_shipped_weights_are_small_and_documented():
    path = default_weights()
    assert path.name == "dff_camera.pt" and path.stat().st_size <= 25 * 2**20
    card = path.with_suffix(".md").read_text(encoding="utf-8")
    assert "python -m models.dff.train_camera" in card and "test-unseen-50mm" in card


def test_command_line_learned_camera(tmp_path, capsys):
    lens, near, far, n = CAMERAS["85mm"]
    depth, focus, stack = _scene(lens, near, far, n, seed=7)
    paths = []
    for i, s in enumerate(stack):
        paths.append(tmp_path / f"s{i}.exr")
        write_image(paths[-1], s.permute(1, 2, 0).numpy())
    out = tmp_path / "d.exr"
    args = ["focal-stack-depth", "--stack", *paths, "--focus-distances", *focus, "--method", "learned-camera",
            "--focal-length", 85, "--f-stop", 1.8, "--sensor-width", 36, "--align", "none", "--depth", out,
            "--uncertainty", tmp_path / "u.exr", "--quiet"]
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    got = torch.from_numpy(read_map(out)).view(1, 1, SIZE, SIZE)
    assert _abs_rel(got, depth) < 0.12
    without_camera = [a for a in args if a not in ("--f-stop", 1.8)]
    (tmp_path / "d.exr").unlink()
    assert main([str(a) for a in without_camera]) == 2
    assert "learned-camera method needs the camera" in capsys.readouterr().err
    assert not out.exists()


def test_training_command_tiny_runs_and_writes_loadable_weights(tmp_path):
    from models.dff.train_camera import main as train_main

    assert train_main(["--config", "tiny", "--data", "synthetic:4", "--val", "synthetic:2", "--out", str(tmp_path),
                       "--val-every", "20", "--threads", "1"]) == 0
    model = load_model(tmp_path / "dff_camera_tiny.pt")
    lens, near, far, n = CAMERAS["85mm"]
    _, focus, stack = _scene(lens, near, far, n, seed=9)
    result = camera_learned_depth(stack, focus, lens, model)
    assert math.isfinite(float(result.depth.mean()))
