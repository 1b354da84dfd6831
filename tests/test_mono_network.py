"""The built-in Mono Depth network (core.mono.network), its losses and metrics (models.mono), and
the shipped weights against the ground-plane prior on the shipped held-out samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import InputError
from core.mono.network import (MULTIPLE, WEIGHT_FILES, MonoDepthConfig, MonoDepthNet, default_weights, load_model,
                               padded_size, save_model)
from core.weights import WEIGHTS_DIR
from models.data.mono import MonoDepthDataset, normalise_inverse_depth
from models.mono.loss import (LossWeights, align_scale_shift, gradient_matching, mono_loss, normalised_l1,
                              scale_shift_invariant)
from models.mono.metrics import ground_plane_prior, relative_depth_metrics

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "blender_scenes" / "samples" / "mono"


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_shapes_and_range(name: str) -> None:
    model = MonoDepthNet(MonoDepthConfig.named(name)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert out["inverse_depth"].shape == (2, 1, 64, 96) and out["segmentation"].shape == (2, 1, 64, 96)
    assert float(out["inverse_depth"].min()) >= 0.0 and float(out["inverse_depth"].max()) <= 1.0
    assert torch.isfinite(out["segmentation"]).all()


def test_sides_must_be_multiples_of_32() -> None:
    model = MonoDepthNet(MonoDepthConfig.named("tiny")).eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 64, 80))
    assert padded_size(500, 741) == (512, 768) and padded_size(64, 96) == (64, 96) and MULTIPLE == 32


def test_config_and_weights_round_trip(tmp_path: Path) -> None:
    config = MonoDepthConfig.named("tiny")
    assert MonoDepthConfig.from_dict(config.to_dict()) == config
    model = MonoDepthNet(config).eval()
    path = tmp_path / "mono.pt"
    save_model(path, model, {"note": "round trip"})
    loaded = load_model(path)
    assert loaded.config == config and loaded.meta == {"note": "round trip"} and not loaded.training
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)["inverse_depth"], loaded(x)["inverse_depth"])
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="unknown Mono Depth configuration"):
        MonoDepthConfig.named("huge")


def test_losses_analytic() -> None:
    target = torch.rand(2, 1, 32, 32)
    # A constant error e: Eq. 5 gives sum e^2.5 / sum e^1.5 = e.
    assert float(normalised_l1(target + 0.2, target)) == pytest.approx(0.2, rel=1e-4)
    # Eq. 5 weights large errors: one pixel off by 1 scores far above its plain L1 (1/1024).
    spike = target.clone()
    spike[:, :, 5, 5] += 1.0
    assert float(normalised_l1(spike, target)) > 0.9
    # An affine map of the truth is free for the scale-and-shift-invariant and gradient terms.
    affine = 0.3 * target + 0.5
    assert torch.allclose(align_scale_shift(affine, target), target, atol=1e-5)
    assert float(scale_shift_invariant(affine, target)) < 1e-5 and float(gradient_matching(affine, target)) < 1e-5
    assert float(gradient_matching(torch.rand_like(target), target)) > 0.1


def test_metrics_analytic() -> None:
    depth = torch.rand(40, 50) * 9 + 1
    perfect = relative_depth_metrics(2.0 / depth + 0.7, depth)
    assert perfect["absrel"] < 1e-5 and perfect["delta1"] == 1.0 and perfect["mae"] < 1e-5
    # A scene that is a ground plane (inverse depth linear in the row) is the prior's best case.
    rows = torch.linspace(0.1, 1.0, 40).view(40, 1).expand(40, 50)
    plane = relative_depth_metrics(ground_plane_prior(40, 50), 1.0 / rows)
    assert plane["absrel"] < 1e-5 and plane["delta1"] == 1.0
    assert relative_depth_metrics(ground_plane_prior(40, 50), depth)["absrel"] > 0.2


def test_tiny_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = MonoDepthNet(MonoDepthConfig.named("tiny")).train()
    # A ground plane with a box in front: inverse depth from the image's rows and a bright square.
    image = torch.rand(4, 3, 64, 64) * 0.3
    depth = 1.0 / torch.linspace(0.1, 1.0, 64).view(1, 1, 64, 1).expand(4, 1, 64, 64).clone()
    image[:, :, 20:40, 20:40] += 0.6
    depth[:, :, 20:40, 20:40] = 1.0
    mask = torch.zeros_like(depth)
    mask[:, :, 20:40, 20:40] = 1.0
    target = normalise_inverse_depth(depth)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-2)
    weights = LossWeights(ssi=0.5, gradient=0.5, segmentation=0.1)
    losses = []
    for _ in range(50):
        loss, _ = mono_loss(model(image), target, mask, weights)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_shipped_weights_beat_the_ground_plane_prior() -> None:
    path = default_weights()
    assert path.name in WEIGHT_FILES and path.parent == WEIGHTS_DIR
    assert path.stat().st_size <= 25 * 2**20
    model = load_model(path)
    data = MonoDepthDataset(SAMPLES, "test")
    assert len(data) == 2
    model_rel, prior_rel = [], []
    with torch.no_grad():
        for i in range(len(data)):
            item = data[i]
            pred = model(item["image"][None])["inverse_depth"][0, 0]
            model_rel.append(relative_depth_metrics(pred, item["depth"][0])["absrel"])
            prior_rel.append(relative_depth_metrics(ground_plane_prior(*pred.shape), item["depth"][0])["absrel"])
    assert sum(model_rel) < sum(prior_rel)
