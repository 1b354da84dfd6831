"""models.stereonet: odd image sizes, soft-argmin, the loss, learning on a fixed batch, weights round trip;
the SGBM-guided refiner (identity when untrained, local costs, loading, the shipped one on bundled pairs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.cli import main
from core.imageio import read_map, write_image
from core.stereo.learned import learned_disparity, load_model, save_model
from core.stereo.metrics import stereo_metrics
from core.stereo.refiner_net import GuidedConfig, GuidedStereoNet, local_costs, warp_right
from models.stereonet.loss import barron_loss, disparity_loss
from core.stereo.nets import CONFIGS, StereoNet, concat_cost_volume, parameter_count, soft_argmin
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


# ------------------------------------------------------------------ SGBM + learned refinement (guided)


@pytest.mark.parametrize("size", [(37, 53), (9, 17)])
def test_untrained_refiner_returns_sgbm_exactly_at_any_size(size):
    model = GuidedStereoNet(GuidedConfig()).eval()
    left, right = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    sgbm = torch.rand(2, 1, *size) * 12
    with torch.no_grad():
        out = model(left, right, sgbm, torch.rand(2, 1, *size), sgbm > 4, sgbm > 9, 32.0)
    assert out["disparity"].shape == (2, 1, *size)
    assert all(level.shape == (2, 1, *size) for level in out["levels"])
    # The last convolution of every stage starts at zero: no correction until trained.
    assert torch.allclose(out["disparity"], sgbm, atol=1e-5)


def test_local_costs_are_lowest_at_the_true_shift():
    from tests.stereo_fixtures import shifted_pair

    left, right = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in shifted_pair(24, 64, 5.0))
    assert torch.allclose(warp_right(right, torch.full((1, 1, 24, 64), 5.0))[..., 8:], left[..., 8:], atol=0.05)
    costs = local_costs(left, right, torch.full((1, 1, 24, 64), 4.0), 2)  # offsets -2 .. 2 around 4
    assert int(costs[..., 8:].mean(dim=(0, 2, 3)).argmin()) == 3  # 4 + 1 = 5


def test_refiner_weights_load_through_the_learned_method_and_the_cli(tmp_path, capsys):
    from core.stereo import estimate_disparity
    from core.stereo.learned import is_refiner, refined_disparity
    from core.stereo.sgbm import SGBMParams, stereo_sgbm
    from tests.stereo_fixtures import square_pair

    model = GuidedStereoNet(GuidedConfig())
    save_model(tmp_path / "stereonet_refined.pt", model, {"note": "test"})
    loaded = load_model(tmp_path / "stereonet_refined.pt")
    assert is_refiner(loaded) and not is_refiner(StereoNet(TINY))
    left_np, right_np, _ = square_pair(48, 72)
    left, right = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (left_np, right_np))
    result = estimate_disparity(left, right, "learned", 32, model=loaded)
    sgbm = stereo_sgbm(left, right, SGBMParams(num_disparities=32))
    assert torch.allclose(result.disparity, sgbm.disparity, atol=1e-4)  # untrained: SGBM itself
    assert torch.equal(refined_disparity(left, right, loaded, 32).disparity, result.disparity)
    assert 0 <= float(result.confidence.min()) and float(result.confidence.max()) <= 1

    write_image(tmp_path / "l.exr", left_np)
    write_image(tmp_path / "r.exr", right_np)
    code = main(["stereo-depth", "--left", str(tmp_path / "l.exr"), "--right", str(tmp_path / "r.exr"),
                 "--output", str(tmp_path / "d.npy"), "--method", "learned", "--max-disparity", "32",
                 "--weights", str(tmp_path / "stereonet_refined.pt"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert read_map(tmp_path / "d.npy").shape == (48, 72)
    # --method refined without --weights takes the shipped refiner.
    code = main(["stereo-depth", "--left", str(tmp_path / "l.exr"), "--right", str(tmp_path / "r.exr"),
                 "--output", str(tmp_path / "shipped.npy"), "--method", "refined", "--max-disparity", "32", "--quiet"])
    assert code == 0, capsys.readouterr().err
    shipped = estimate_disparity(left, right, "refined", 32).disparity[0, 0].numpy()
    np.testing.assert_allclose(read_map(tmp_path / "shipped.npy"), shipped, atol=1e-4)  # px; float32 rounding


def test_shipped_refiner_beats_sgbm_on_the_bundled_cycles_pairs():
    """The first three pairs of the held-out Cycles stereo test split (``generate --kind stereo
    --split test --seed 1``), bundled beside the weights: SGBM + the shipped refiner must beat
    SGBM alone on EPE and bad-2 over all pixels (as in stereonet_refined.md)."""
    from core.stereo import estimate_disparity
    from core.stereo.learned import is_refiner
    from core.weights import WEIGHTS_DIR
    from models.stereonet.evaluate import search_range

    weights, case = WEIGHTS_DIR / "stereonet_refined.pt", WEIGHTS_DIR / "stereonet_refined_case.npz"
    model = load_model(weights)
    assert is_refiner(model)
    data = np.load(case)
    scores = {"sgbm": [], "refined": []}
    for i in range(3):
        left, right = (torch.from_numpy(data[f"{side}_{i}"].astype(np.float32))[None] for side in ("left", "right"))
        truth = torch.from_numpy(data[f"disparity_{i}"].astype(np.float32))
        max_disparity = search_range(truth)
        for method in scores:
            estimate = estimate_disparity(left, right, method, max_disparity, model=model).disparity[0, 0]
            m = stereo_metrics(estimate, truth)
            scores[method].append((m.epe, m.bad2))
    sgbm, refined = np.mean(scores["sgbm"], axis=0), np.mean(scores["refined"], axis=0)
    assert refined[0] < sgbm[0] and refined[1] < sgbm[1], f"EPE, bad-2: refined {refined}, sgbm {sgbm}"


def test_synthetic_training_pairs_cache_both_view_orders_with_their_own_sgbm(tmp_path):
    """The refiner's synthetic training pairs (train_guided --synthetic): the mirrored view is the
    mirrored right image over the mirrored right disparity, each with SGBM run on that order, and
    the file is reused, not re-rendered, on a second call."""
    from models.stereonet.train_guided import build_synthetic_cache, synthetic_pair

    path = build_synthetic_cache(3, 5, tmp_path)
    views = torch.load(path, weights_only=True)
    assert len(views) == 2
    pair = synthetic_pair(3, 5)
    direct, mirrored = views
    torch.testing.assert_close(direct["left"].float(), pair["left"], atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(mirrored["left"].float(), pair["right"].flip(-1), atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(mirrored["truth"].float(), pair["disparity_right"].flip(-1), atol=0.05, rtol=1e-3)
    for view in views:
        truth, sgbm = view["truth"].float()[0], view["sgbm"].float()[0]
        assert int(view["range"]) % 16 == 0 and int(view["range"]) >= 1.1 * float(truth.max())
        assert stereo_metrics(sgbm, truth).bad2 < 40.0  # SGBM on that view order, not on the other one
    stamp = path.stat().st_mtime_ns
    assert build_synthetic_cache(3, 5, tmp_path) == path and path.stat().st_mtime_ns == stamp


def test_shipped_refiner_beats_sgbm_on_middlebury_motorcycle():
    """Issue 7's real pair: on Middlebury's Motorcycle (scikit-image's copy) SGBM + the shipped
    refiner beats SGBM alone on EPE and bad-2 over all pixels, searching the range
    models.stereonet.evaluate uses. Measured: EPE 1.17 vs 1.21 px, bad-2 7.07 vs 7.11 %; a small
    margin, so a retrain that loses it fails here."""
    from core.stereo import benchmark, estimate_disparity
    from core.weights import WEIGHTS_DIR
    from models.stereonet.evaluate import pairs, search_range

    model = load_model(WEIGHTS_DIR / "stereonet_refined.pt")
    (_, left, right, truth), = pairs("motorcycle", 1)
    max_disparity = search_range(truth)
    scores = {method: benchmark(estimate_disparity(left, right, method, max_disparity, model=model).disparity[0, 0],
                                truth)["all"] for method in ("sgbm", "refined")}
    assert scores["refined"].epe < scores["sgbm"].epe, scores
    assert scores["refined"].bad2 < scores["sgbm"].bad2, scores


@pytest.mark.parametrize("refined, name", [(False, "stereonet_tiny.pt"), (True, "stereonet_refined.pt")])
def test_worker_names_the_missing_weights_file(tmp_path, monkeypatch, refined, name):
    """With no weights where the add-on's worker looks, the learned and the refined stereo methods
    both stop with an input error that names the file the artist must provide."""
    import re

    import core.stereo.learned as learned
    import core.weights
    from core.errors import InputError
    from core.pipelines.networks import weights_path

    monkeypatch.setattr(core.weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(InputError, match=f"needs {re.escape(str(tmp_path / name))}.*which is missing"):
        weights_path(learned, refined=refined)
