"""FocalStackNet: any number of slices in any order, training lowers the loss, weights round-trip."""

from __future__ import annotations

import random

import pytest
import torch

from core.errors import InputError
from core.focal_stack.learned import learned_depth, load_model, save_model
from models.dff.data import collate, random_view
from models.dff.loss import LossWeights, dff_loss
from core.focal_stack.nets import CONFIGS, FocalStackNet
from models.dff.synthetic import make_sample


@pytest.fixture(scope="module")
def tiny() -> FocalStackNet:
    torch.manual_seed(0)
    return FocalStackNet(CONFIGS["tiny"]).eval()


@pytest.mark.parametrize("n", [2, 3, 5, 7, 10])
def test_any_number_of_slices_in_any_order(tiny, n, device):
    net = tiny.to(device)
    stack = torch.rand(2, n, 3, 37, 45, device=device)  # odd sizes: padded inside
    focus = (torch.rand(2, n, device=device) * 3 + 0.2).sort(dim=1).values
    with torch.no_grad():
        out = net(stack, focus)
        perm = torch.randperm(n, device=device)
        shuffled = net(stack[:, perm], focus[:, perm])
    assert out["depth"].shape == (2, 1, 37, 45) and out["aif"].shape == (2, 3, 37, 45)
    assert out["weights"].shape == (2, n, 1, 37, 45) and out["defocus"].shape == (2, n, 1, 37, 45)
    assert torch.allclose(out["weights"].sum(dim=1), torch.ones(2, 1, 37, 45, device=device), atol=1e-5)
    assert torch.allclose(out["depth"], shuffled["depth"], rtol=1e-4)
    assert torch.allclose(out["aif"], shuffled["aif"], atol=1e-5)
    near, far = focus.amin(dim=1).view(2, 1, 1, 1), focus.amax(dim=1).view(2, 1, 1, 1)
    assert bool(((out["depth"] >= near * (1 - 1e-5)) & (out["depth"] <= far * (1 + 1e-5))).all())


@pytest.fixture
def one_thread():
    """Small convolutions run several times faster on one thread when the CPU is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_few_training_steps_reduce_the_loss(one_thread):
    torch.manual_seed(0)
    rng = random.Random(0)
    samples = [make_sample(seed, size=64, slices=4) for seed in (1, 2)]
    batch = collate([random_view(s, 48, rng, 4) for s in samples])
    net = FocalStackNet(CONFIGS["tiny"])
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    # 80 steps: the first ~40 only find the scale of the output; the drop after that is steady
    # (0.41-0.45 of the first losses on 1 or 2 threads), far from the 0.7 asked for.
    for _ in range(80):
        loss, parts = dff_loss(net(batch["stack"], batch["focus_distances"]), batch)
        assert set(parts) == {"inverse_depth", "relative_depth", "aif", "defocus"}
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_weights_round_trip_and_inference_wrapper(tmp_path, tiny):
    path = tmp_path / "dff_tiny.pt"
    save_model(path, tiny, {"data": "none"})
    model = load_model(path)
    assert model.meta == {"data": "none"}
    stack = torch.rand(4, 3, 40, 52)
    focus = [2.0, 0.5, 1.0, float("inf")]
    full = learned_depth(stack, focus, model)
    with torch.no_grad():
        direct = tiny(stack[None], torch.tensor([[2.0, 0.5, 1.0, 1e9]]))
    assert torch.allclose(full.depth, direct["depth"], rtol=1e-5)
    reduced = learned_depth(stack, focus, model, max_side=26)  # run at half size, applied at full
    assert reduced.depth.shape == (1, 1, 40, 52) and reduced.all_in_focus.shape == (1, 3, 40, 52)
    for result in (full, reduced):
        assert float(result.confidence.min()) >= 0 and float(result.confidence.max()) <= 1
        assert float(result.depth.min()) >= 0.5 * (1 - 1e-5)
        # the uncertainty is the slice weights' spread in dioptres: at most half the focus range
        assert result.inverse_uncertainty.shape == result.depth.shape
        assert float(result.inverse_uncertainty.min()) >= 0 and float(result.inverse_uncertainty.max()) <= 1.0 + 1e-5
    weights = direct["weights"][0]
    inverse = 1.0 / torch.tensor([2.0, 0.5, 1.0, 1e9]).view(4, 1, 1, 1)
    expected = (weights * (inverse - direct["inverse_depth"]) ** 2).sum(dim=0, keepdim=True).sqrt()
    assert torch.allclose(full.inverse_uncertainty, expected, atol=1e-5)


def test_bad_weights_and_inputs(tmp_path, tiny):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot read weights"):
        load_model(junk)
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="appears more than once"):
        learned_depth(torch.rand(3, 3, 16, 16), [1.0, 1.0, 2.0], tiny)
    with pytest.raises(InputError, match="RGB"):
        learned_depth(torch.rand(3, 1, 16, 16), [1.0, 1.5, 2.0], tiny)


@pytest.mark.parametrize("name", ["small", "guided"])
def test_shipped_weights_load_and_run(one_thread, name):
    """The shipped dff_small.pt and dff_guided.pt (trained on the Cycles defocusnet data) load and
    keep depth in range; dff_guided.pt is what --method learned takes by default.

    Not a quality check: see models/weights/dff_*.md for their held-out scores.
    """
    from core.focal_stack.learned import default_weights
    from core.weights import WEIGHTS_DIR

    path = WEIGHTS_DIR / f"dff_{name}.pt"
    model = load_model(path)
    assert model.config == CONFIGS[name] and model.meta["config_name"] == name
    assert default_weights().name == "dff_guided.pt"
    stack = torch.rand(5, 3, 48, 64)
    focus = [0.1, 0.15, 0.3, 0.7, 1.5]
    result = learned_depth(stack, focus, model)
    assert result.depth.shape == (1, 1, 48, 64) and bool(torch.isfinite(result.depth).all())
    assert 0.1 * (1 - 1e-5) <= float(result.depth.min()) and float(result.depth.max()) <= 1.5 * (1 + 1e-5)


def test_shipped_model_beats_classical_on_the_bundled_cycles_stacks(one_thread):
    """The two focal stacks that ship under blender_scenes/samples/defocusnet (f/1): the default
    learned weights give a much lower depth MAE than classical depth from focus. Measured: 0.162 m
    vs 0.420 m. These are training scenes 0 and 1 (same seed) rendered at 128x128 instead of 192,
    so this guards the shipped file and the inference path, not generalisation: the held-out
    scores are in models/weights/dff_guided.md."""
    from pathlib import Path

    from core.focal_stack.learned import default_weights
    from models.dff.data import open_source
    from models.dff.evaluate import evaluate

    folder = Path(__file__).resolve().parents[1] / "blender_scenes" / "samples" / "defocusnet"
    table = evaluate(load_model(default_weights()), open_source(str(folder)))
    learned, classical = table.mean("learned")["MAE"], table.mean("classical")["MAE"]
    assert learned < 0.6 * classical, (learned, classical)


def test_guided_config_starts_as_the_focus_prior_and_round_trips(tmp_path, one_thread):
    """The `guided` network's untrained output is the soft argmax of the classical focus volume
    (its own logits start at zero), it stays order-invariant, and its config survives the file."""
    from core.focal_stack.nets import PRIOR_SCALE, focus_evidence

    torch.manual_seed(0)
    net = FocalStackNet(CONFIGS["guided"]).eval()
    stack = torch.rand(1, 4, 3, 40, 36)
    focus = torch.tensor([[0.3, 0.1, 1.5, 0.7]])
    with torch.no_grad():
        out = net(stack, focus)
        perm = torch.tensor([2, 0, 3, 1])
        shuffled = net(stack[:, perm], focus[:, perm])
        _, log_focus = focus_evidence(stack)
    assert torch.allclose(out["weights"], torch.softmax(PRIOR_SCALE * log_focus, dim=1), atol=1e-5)
    assert torch.allclose(out["depth"], shuffled["depth"], rtol=1e-4)
    path = tmp_path / "guided.pt"
    save_model(path, net, {"config_name": "guided"})
    loaded = load_model(path)
    assert loaded.config == CONFIGS["guided"] and loaded.config.focus_prior
    with torch.no_grad():
        assert torch.allclose(loaded(stack, focus)["depth"], out["depth"])


def test_slice_targets_bracket_the_true_depth():
    from models.dff.loss import slice_targets

    inv = torch.tensor([[10.0, 1.0, 5.0]])  # any order
    gt = torch.tensor([1.0, 3.0, 5.0, 7.5, 10.0]).view(1, 1, 1, 5)
    t = slice_targets(inv, gt)
    assert torch.allclose(t.sum(dim=1), torch.ones(1, 1, 1, 5))
    assert torch.allclose((t * inv.view(1, 3, 1, 1, 1)).sum(dim=1), gt)
    assert torch.allclose(t[0, :, 0, 0, 1], torch.tensor([0.0, 0.5, 0.5]))


def test_training_draws_from_every_data_folder_and_refuses_synthetic_mixed_with_folders():
    """`models.dff.train --data A --data B` trains on both folders (say, two f-numbers); the
    synthetic source cannot be mixed in, and a folder alone needs a held-out --val."""
    from pathlib import Path

    from models.dff.train import split_sources

    folder = str(Path(__file__).resolve().parents[1] / "blender_scenes" / "samples" / "defocusnet")
    one, _ = split_sources([folder], folder, size=64, seed=0)
    both, val = split_sources([folder, folder], folder, size=64, seed=0)
    assert len(one) == 2 and len(both) == 4 and len(val) == 2
    torch.testing.assert_close(both[2]["stack"], one[0]["stack"])
    with pytest.raises(InputError, match="cannot be mixed"):
        split_sources(["synthetic:4", folder], None, size=32, seed=0)
    with pytest.raises(InputError, match="--val"):
        split_sources([folder], None, size=32, seed=0)


def test_metric_depth_loss_is_the_mae_over_the_focus_span():
    """LossWeights.depth_l1: |depth - truth| in metres over the stack's focus span, truth clamped
    to the focus range (no evidence beyond it); zero for a perfect estimate, absent when off."""
    focus = torch.tensor([[0.1, 0.3, 1.5]])
    truth = torch.tensor([0.2, 1.0, 3.0]).view(1, 1, 1, 3)  # the last lies beyond the far slice
    perfect = {"depth": truth.clamp(0.1, 1.5), "inverse_depth": 1 / truth.clamp(0.1, 1.5)}
    batch = {"depth": truth, "focus_distances": focus}
    _, parts = dff_loss(perfect, batch, LossWeights(aif=0.0, depth_l1=1.0))
    assert parts["depth_l1"] == pytest.approx(0.0, abs=1e-7)
    off = {"depth": perfect["depth"] + 0.14, "inverse_depth": perfect["inverse_depth"]}
    _, parts = dff_loss(off, batch, LossWeights(aif=0.0, depth_l1=1.0))
    assert parts["depth_l1"] == pytest.approx(0.14 / 1.4, rel=1e-5)
    assert "depth_l1" not in dff_loss(off, batch, LossWeights())[1]


def test_in_range_loss_ignores_pixels_beyond_the_focus_range():
    """LossWeights.in_range_only: the depth terms count only the pixels the metrics score (truth
    within the focus range), so an estimate that differs only beyond the range costs the same."""
    focus = torch.tensor([[0.1, 0.3, 1.5]])
    truth = torch.tensor([0.2, 1.0, 3.0]).view(1, 1, 1, 3)  # the last lies beyond the far slice
    batch = {"depth": truth, "focus_distances": focus}
    weights = LossWeights(aif=0.0, depth_l1=1.0, slice_ce=0.2, in_range_only=True)

    def estimate(last: float) -> dict[str, torch.Tensor]:
        depth = torch.tensor([0.25, 0.9, last]).view(1, 1, 1, 3)
        w = torch.full((1, 3, 1, 1, 3), 1 / 3)
        return {"depth": depth, "inverse_depth": 1 / depth, "weights": w}

    near_end, far_end = dff_loss(estimate(0.1), batch, weights)[1], dff_loss(estimate(1.5), batch, weights)[1]
    for name in ("inverse_depth", "relative_depth", "depth_l1", "slice_ce"):
        assert near_end[name] == pytest.approx(far_end[name], rel=1e-6)
    assert far_end["depth_l1"] == pytest.approx((0.05 + 0.1) / 2 / 1.4, rel=1e-5)
    # without the option the pixel beyond the range counts, with its truth clamped to 1.5 m
    plain = LossWeights(aif=0.0, depth_l1=1.0)
    assert dff_loss(estimate(0.1), batch, plain)[1]["depth_l1"] > dff_loss(estimate(1.5), batch, plain)[1]["depth_l1"]


def test_halo_weight_counts_the_backdrop_beside_a_near_object_more():
    """LossWeights.halo: backdrop pixels within halo_radius of a much nearer truth (the occlusion's far
    side) count 1 + halo times in the depth terms; the near object itself and backdrop farther away
    count once, so an error there costs what it cost before."""
    from models.dff.loss import occlusion_halo

    focus = torch.tensor([[0.1, 0.3, 1.5]])
    truth = torch.full((1, 1, 1, 40), 1.2)
    truth[..., :10] = 0.15  # a near object on the left
    batch = {"depth": truth, "focus_distances": focus}
    span = torch.tensor(1 / 0.1 - 1 / 1.5)
    halo = occlusion_halo(1 / truth, span, radius=4)
    assert halo[0, 0, 0].nonzero().flatten().tolist() == [10, 11, 12, 13]
    plain, weighted = LossWeights(aif=0.0, depth_l1=1.0), LossWeights(aif=0.0, depth_l1=1.0, halo=2.0, halo_radius=4)

    def estimate(where: slice) -> dict[str, torch.Tensor]:
        depth = truth.clamp(0.1, 1.5).clone()
        depth[..., where] = 0.15  # reads near, as the focus measure does beside a sharp edge
        return {"depth": depth, "inverse_depth": 1 / depth}

    beside, away = estimate(slice(10, 12)), estimate(slice(30, 32))
    assert dff_loss(beside, batch, plain)[1]["depth_l1"] == pytest.approx(dff_loss(away, batch, plain)[1]["depth_l1"])
    assert dff_loss(beside, batch, weighted)[1]["depth_l1"] == pytest.approx(
        3 * dff_loss(away, batch, weighted)[1]["depth_l1"], rel=1e-5)
    assert dff_loss(away, batch, weighted)[1]["depth_l1"] == pytest.approx(dff_loss(away, batch, plain)[1]["depth_l1"])


def test_context_network_starts_as_its_guided_weights_and_sees_the_whole_scene(tmp_path, one_thread):
    """`context` fine-tunes from `guided` weights: with its block at zero it computes the same depth;
    once the block is on, depth at one corner depends on pixels ~100 px away (the guided U-Net's view
    is narrower) and the network stays order-invariant. The reverse start is refused."""
    from models.dff.train import init_from

    torch.manual_seed(0)
    guided = FocalStackNet(CONFIGS["guided"]).eval()
    # trained weights: an untrained network's coarse features are too faint to carry a change
    guided.load_state_dict(load_model(_shipped_guided()).state_dict())
    path = tmp_path / "guided.pt"
    save_model(path, guided, {"config_name": "guided"})
    net = FocalStackNet(CONFIGS["context"]).eval()
    init_from(net, str(path))
    stack = torch.rand(1, 3, 3, 160, 160)
    focus = torch.tensor([[0.1, 0.7, 0.3]])
    with torch.no_grad():
        torch.testing.assert_close(net(stack, focus)["depth"], guided(stack, focus)["depth"])
        for p in net.context.out.parameters():
            p.normal_(0.0, 0.1)
        out = net(stack, focus)
        far_change = stack.clone()
        far_change[..., 100:, 100:] = 0.0  # a black patch: the global mean moves too
        corner = (slice(None), slice(None), slice(0, 24), slice(0, 24))
        assert (net(far_change, focus)["depth"] - out["depth"])[corner].abs().max() > 1e-4
        # the guided network does not reach that far (float rounding aside); the context block does
        assert (guided(far_change, focus)["depth"] - guided(stack, focus)["depth"])[corner].abs().max() < 1e-6
        perm = torch.tensor([2, 0, 1])
        torch.testing.assert_close(net(stack[:, perm], focus[:, perm])["depth"], out["depth"], rtol=1e-4, atol=1e-6)
    context_path = tmp_path / "context.pt"
    save_model(context_path, net, {"config_name": "context"})
    assert load_model(context_path).config.context
    with pytest.raises(InputError, match="does not hold"):
        init_from(FocalStackNet(CONFIGS["guided"]), str(context_path))


def _shipped_guided():
    from pathlib import Path

    from core.weights import WEIGHTS_DIR

    return Path(WEIGHTS_DIR) / "dff_guided.pt"


def test_training_reads_a_folder_whose_rendering_stopped_short(tmp_path):
    """A defocusnet folder whose manifest lists fewer stacks than its count is refused, unless asked
    for (models.dff.train asks: a long render stopped early still trains on what it made)."""
    import json
    import shutil
    from pathlib import Path

    from models.dff.data import open_source

    folder = tmp_path / "short"
    shutil.copytree(Path(__file__).resolve().parents[1] / "blender_scenes" / "samples" / "defocusnet", folder)
    description = json.loads((folder / "dataset.json").read_text())
    description["count"] = 5
    (folder / "dataset.json").write_text(json.dumps(description))
    with pytest.raises(InputError, match="lists 2 of 5"):
        open_source(str(folder))
    data = open_source(str(folder), allow_incomplete=True)
    assert len(data) == 2 and data[1]["stack"].shape[0] == 5


def test_training_command_takes_batch_and_crop_and_writes_them_to_the_card(tmp_path, one_thread, capsys):
    """`--batch` and `--crop` override the configuration's; the run says so, and the model card's retrain
    command repeats them and `--halo`, so the card reproduces the run."""
    from models.dff.train import main as train_main

    assert train_main(["--config", "tiny", "--data", "synthetic:10", "--steps", "2", "--batch", "1", "--crop", "32",
                       "--halo", "2", "--out", str(tmp_path)]) == 0
    assert "2 steps of 1 x 32px" in capsys.readouterr().out
    assert (tmp_path / "dff_tiny.pt").is_file()
    card = (tmp_path / "dff_tiny.md").read_text()
    assert "--steps 2 --batch 1 --crop 32" in card and "--halo 2.0" in card
    assert train_main(["--config", "tiny", "--data", "synthetic:10", "--crop", "8", "--out", str(tmp_path)]) == 2
