"""models.stereonet: odd image sizes, soft-argmin, the loss, learning on a fixed batch, weights round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.cli import main
from core.imageio import read_map, write_image
from core.stereo.learned import learned_disparity, load_model, save_model
from models.stereonet.loss import barron_loss, disparity_loss
from models.stereonet.network import CONFIGS, StereoNet, concat_cost_volume, parameter_count, soft_argmin
from models.stereonet.synthetic import SyntheticStereo
from models.stereonet.train import SETTINGS, train

TINY = CONFIGS["tiny"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Small convolutions gain nothing from a second thread, and on a shared CPU two OpenMP threads
    spin-wait for each other (a training step took 14x longer with two than with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("size", [(37, 53), (9, 17)])
def test_any_image_size_gives_a_full_size_disparity(device, size):
    model = StereoNet(TINY).to(device).eval()
    left, right = torch.rand(2, 3, *size, device=device), torch.rand(2, 3, *size, device=device)
    with torch.no_grad():
        out = model(left, right)
    assert out["disparity"].shape == (2, 1, *size)
    assert all(level.shape == (2, 1, *size) for level in out["levels"])
    assert torch.isfinite(out["disparity"]).all() and (out["disparity"] >= 0).all()


def test_weights_stay_well_under_25_mb():
    assert parameter_count(StereoNet(CONFIGS["full"])) * 4 < 5e6


def test_cost_volume_pairs_left_x_with_right_x_minus_d():
    left = torch.arange(6.0).view(1, 1, 1, 6)
    right = 10 + torch.arange(6.0).view(1, 1, 1, 6)
    volume = concat_cost_volume(left, right, 3)
    assert torch.equal(volume[0, 0, 2, 0], left[0, 0, 0])
    assert torch.equal(volume[0, 1, 2, 0], torch.tensor([0.0, 0.0, 10.0, 11.0, 12.0, 13.0]))


def test_soft_argmin_is_the_expected_bin():
    cost = torch.full((1, 5, 1, 1), 50.0)
    cost[0, 3] = 0.0
    expected, p = soft_argmin(cost)
    assert float(expected) == pytest.approx(3.0, abs=1e-6) and float(p.sum()) == pytest.approx(1.0)
    cost[0, 2] = 0.0  # two equal minima: half way
    assert float(soft_argmin(cost)[0]) == pytest.approx(2.5, abs=1e-6)


def test_barron_loss_special_cases():
    x = torch.tensor([0.0, 1.0, 4.0])
    assert torch.allclose(barron_loss(x, 1.0, 2.0), torch.sqrt((x / 2) ** 2 + 1) - 1)
    assert torch.allclose(barron_loss(x, 2.0, 2.0), 0.5 * (x / 2) ** 2)
    assert torch.allclose(barron_loss(x, 1.999, 2.0), 0.5 * (x / 2) ** 2, atol=1e-2)  # the alpha -> 2 limit
    truth = torch.tensor([[[[1.0, float("nan"), 500.0]]]])
    estimate = torch.tensor([[[[3.0, 0.0, 0.0]]]])
    # Only the first pixel counts: NaN and out-of-range truths are skipped.
    assert float(disparity_loss([estimate], truth, 128)) == pytest.approx(float(np.sqrt(2) - 1))


def test_a_few_training_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    data = SyntheticStereo(2, (32, 64), 24.0, seed=3)
    batch = torch.utils.data.default_collate([data[i] for i in range(2)])
    model = StereoNet(TINY).train()
    optimiser = torch.optim.RMSprop(model.parameters(), lr=SETTINGS["tiny"].lr)
    losses = []
    for _ in range(12):
        loss = disparity_loss(model(batch["left"], batch["right"])["levels"], batch["disparity_left"],
                              TINY.max_disparity)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_training_writes_loadable_weights_and_the_cli_uses_them(tmp_path, capsys):
    from dataclasses import replace

    out = tmp_path / "stereonet_test.pt"
    settings = replace(SETTINGS["tiny"], steps=2, batch=2, crop=(32, 48))
    model, meta = train(TINY, settings, SyntheticStereo(4, (32, 48), 16.0), out, torch.device("cpu"),
                        val=SyntheticStereo(1, (32, 48), 16.0, seed=9), save_every=2, quiet=True)
    assert meta["trained_steps"] == 2 and "epe" in meta["validation"]
    loaded = load_model(out)
    left, right = torch.rand(1, 3, 27, 45), torch.rand(1, 3, 27, 45)
    with torch.no_grad():
        assert torch.equal(loaded(left, right)["disparity"], model(left, right)["disparity"])
    result = learned_disparity(left, right, loaded)
    assert result.disparity.shape == result.confidence.shape == (1, 1, 27, 45)
    assert 0 <= float(result.confidence.min()) and float(result.confidence.max()) <= 1

    write_image(tmp_path / "l.exr", left[0].permute(1, 2, 0).numpy())
    write_image(tmp_path / "r.exr", right[0].permute(1, 2, 0).numpy())
    code = main(["stereo-depth", "--left", str(tmp_path / "l.exr"), "--right", str(tmp_path / "r.exr"),
                 "--output", str(tmp_path / "d.npy"), "--method", "learned", "--weights", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert np.allclose(read_map(tmp_path / "d.npy"), result.disparity[0, 0].numpy(), atol=1e-4)


def test_foreign_weight_files_are_refused(tmp_path):
    from core.errors import InputError

    bad = tmp_path / "x.pt"
    torch.save({"something": 1}, bad)
    with pytest.raises(InputError, match="not a Stereo Depth weights file"):
        load_model(bad)
    save_model(tmp_path / "ok.pt", StereoNet(TINY), {})
    assert isinstance(load_model(tmp_path / "ok.pt"), StereoNet)
