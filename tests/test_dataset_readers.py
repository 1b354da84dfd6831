"""Each dataset kind produces what its torch reader loads, and what it loads is right.

Small datasets of every kind are rendered once per module (in-process, a few seconds in all) and
read through a DataLoader with workers. Beyond shapes, each kind's own physics is checked: CoC
signs against the focus plane, stereo views registered by their disparity, DeepLens layers
compositing into the all-in-focus image, sweep focus ramps and moving objects. Held-out splits
are checked to hold only what training never shows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from blender_scenes import dataset_io as io
from blender_scenes.dataset_render import Quality
from blender_scenes.dataset_samples import Options
from blender_scenes.dataset_scenes import HELD_OUT_SHAPES, HELD_OUT_TEXTURES, defocusnet_scene
from blender_scenes.generate import generate
from blender_scenes.validate import validate
from core.errors import InputError
from core.metrics import psnr
from models.data import (Augment, ColourJitter, DeepLensDataset, FocalStackDataset, StereoDataset, SweepDataset,
                         corrupt_depth)

pytestmark = pytest.mark.blender

SAMPLES = Path(__file__).resolve().parents[1] / "blender_scenes" / "samples"
READERS = {"defocusnet": FocalStackDataset, "deeplens": DeepLensDataset, "stereo": StereoDataset,
           "sweep": SweepDataset}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two samples of each kind (one sweep video of 6 frames), 64x48, 8 samples + denoiser."""
    base = tmp_path_factory.mktemp("kinds")
    options = Options(width=64, height=48, quality=Quality(samples=8), frames=6, ramps=2)
    out = {}
    for kind in READERS:
        out[kind] = base / kind
        generate(kind, 1 if kind == "sweep" else 2, out[kind], seed=3, options=options, progress=False)
    out["breathing"] = base / "breathing"
    generate("defocusnet", 1, out["breathing"], seed=3, progress=False, preview=False,
             options=Options(width=64, height=48, quality=Quality(samples=2), breathing=True, shake_mm=1.0,
                             shake_deg=0.2, focus="even", slices=3))
    return out


def first_batch(dataset: torch.utils.data.Dataset) -> dict[str, torch.Tensor]:
    return next(iter(DataLoader(dataset, batch_size=len(dataset), num_workers=2)))


def test_every_kind_validates_and_has_a_preview(datasets: dict[str, Path]) -> None:
    for kind in READERS:
        assert validate(datasets[kind]).ok, kind
        assert (datasets[kind] / io.PREVIEW_FILE).stat().st_size > 1000


def test_focal_stack_reader(datasets: dict[str, Path]) -> None:
    batch = first_batch(FocalStackDataset(datasets["defocusnet"], split="train"))
    assert batch["stack"].shape == (2, 5, 3, 48, 64) and batch["stack"].dtype == torch.float32
    assert batch["depth"].shape == (2, 1, 48, 64) and bool((batch["depth"] > 0.05).all())
    torch.testing.assert_close(batch["focus_distances"][0], torch.tensor([0.1, 0.15, 0.3, 0.7, 1.5]))
    # Signed CoC: positive behind each slice's focus plane, negative in front of it.
    behind = batch["depth"][:, None] > batch["focus_distances"][:, :, None, None, None]
    assert bool(((batch["coc"] > 0) == behind).all())
    # The nearest-focused slice differs most from the all-in-focus image where depth is far.
    record = io.read_json(datasets["defocusnet"] / "000000" / io.SAMPLE_FILE)
    assert record["slices"][0]["coc_px_per_dioptre"] == pytest.approx(
        2.9e-3 / 1.0 * record["camera"]["focal_length_px"])


def test_focal_stack_subsets_and_permutation(datasets: dict[str, Path]) -> None:
    data = FocalStackDataset(datasets["defocusnet"], slices=3, augment=Augment(crop=(32, 40), permute=True))
    torch.manual_seed(1)
    sample = data[0]
    assert sample["stack"].shape == (3, 3, 32, 40) and sample["coc"].shape == (3, 1, 32, 40)
    # Permuted or not, each slice's CoC map still belongs to its focus distance.
    sign_change = ((sample["coc"] > 0).float().mean(dim=(1, 2, 3)))
    order = torch.argsort(sample["focus_distances"])
    assert bool((sign_change[order].diff() <= 0).all())  # focusing farther leaves less behind the plane


def test_breathing_and_shake_are_recorded(datasets: dict[str, Path]) -> None:
    record = io.read_json(datasets["breathing"] / "000000" / io.SAMPLE_FILE)
    slices = record["slices"]
    focus = [s["focus_distance"] for s in slices]
    assert np.allclose(np.diff(1.0 / np.array(focus)), (1 / 1.5 - 1 / 0.1) / 2)  # even in inverse depth
    for s in slices:
        f = record["camera"]["focal_length_mm"] * 1e-3
        assert s["relative_fov"] == pytest.approx((s["focus_distance"] - f) / s["focus_distance"])
        assert s["relative_fov"] < 1.0 and 0 < max(map(abs, s["shake_location"])) <= 1e-3
    assert FocalStackDataset(datasets["breathing"])[0]["stack"].shape == (3, 3, 48, 64)


def warp(image: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Sample (B, C, H, W) ``image`` at x + shift (pixels, (B, 1, H, W)), bilinear."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    x = (xs + shift[:, 0]) / (w - 1) * 2 - 1
    y = (ys / (h - 1) * 2 - 1).expand(b, h, w)
    return F.grid_sample(image, torch.stack([x, y], dim=-1), align_corners=True)


def registration(batch: dict[str, torch.Tensor]) -> float:
    """PSNR of the left view against the right one warped by the left disparity, on pixels both
    views see (left-right consistent disparity) away from the borders. At 64x48 with textures near
    the pixel scale, bilinear warping and view-dependent gloss hold it near 28 dB; disparity of the
    wrong sign gives 19 dB, none at all 15 dB."""
    d = batch["disparity_left"]
    right_as_left = warp(batch["right"], -d)
    consistent = (warp(batch["disparity_right"], -d) - d).abs() < 0.5
    consistent &= (torch.arange(d.shape[-1]) - d >= 1) & (torch.arange(d.shape[-1]) < d.shape[-1] - 1)
    mask = consistent.expand_as(right_as_left)
    left, warped = batch["left"].clamp(0, 1)[mask], right_as_left.clamp(0, 1)[mask]
    assert mask.float().mean() > 0.5
    return float(psnr(left[None, None, None], warped[None, None, None]))


def test_stereo_disparity_registers_the_views(datasets: dict[str, Path]) -> None:
    batch = first_batch(StereoDataset(datasets["stereo"], split="train"))
    assert batch["left"].shape == (2, 3, 48, 64)
    depth_from_disparity = batch["baseline_m"].view(-1, 1, 1, 1) * batch["focal_length_px"].view(-1, 1, 1, 1) / \
        batch["disparity_left"]
    torch.testing.assert_close(depth_from_disparity, batch["depth_left"], rtol=1e-5, atol=0)
    assert registration(batch) > 25.0
    # With the sign of the disparity flipped the views do not register: the test can fail.
    flipped = dict(batch, disparity_left=-batch["disparity_left"], disparity_right=-batch["disparity_right"])
    with pytest.raises(AssertionError):
        assert registration(flipped) > 25.0
    # A mirrored pair (augmentation) swaps views and stays registered.
    torch.manual_seed(0)
    mirrored = StereoDataset(datasets["stereo"], augment=Augment(flip=True, jitter=None))
    samples = [mirrored[0] for _ in range(6)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    assert registration(batch) > 25.0


def test_deeplens_layers_composite_into_the_image(datasets: dict[str, Path]) -> None:
    batch = first_batch(DeepLensDataset(datasets["deeplens"], split="train", corrupt=2))
    assert batch["layers"].shape == (2, 3, 4, 48, 64) and batch["dof"].shape == (2, 2, 3, 48, 64)
    composite = batch["layers"][:, 0, :3]
    for k in (1, 2):  # premultiplied "over", back to front
        composite = batch["layers"][:, k, :3] + (1 - batch["layers"][:, k, 3:]) * composite
    assert float(psnr(composite.clamp(0, 1), batch["image"].clamp(0, 1)).min()) > 30.0
    inverse = batch["inverse_depth"]
    assert float(inverse.min()) == pytest.approx(0.0, abs=1e-6) and float(inverse.max()) == pytest.approx(1.0, abs=1e-6)
    front = batch["layers"][:, 2, 3:] > 0.999
    torch.testing.assert_close(batch["layer_depth"][:, 2][front], batch["depth"][front], rtol=1e-3, atol=0)
    assert bool(((batch["focus_inverse_depth"] >= 0) & (batch["focus_inverse_depth"] <= 1)).all())


def test_sweep_reader(datasets: dict[str, Path]) -> None:
    batch = first_batch(SweepDataset(datasets["sweep"], split="train", clip=6))
    assert batch["frames"].shape == (1, 6, 3, 48, 64) and batch["depth"].shape == (1, 6, 1, 48, 64)
    focus = batch["focus_distances"][0]
    assert float(focus[0]) == pytest.approx(1.0) and float(focus[2]) > 3.0 and float(focus[5]) == pytest.approx(1.0)
    moved = (batch["depth"][0, 0] - batch["depth"][0, -1]).abs() > 1e-3
    assert 0.0 < float(moved.float().mean()) < 0.5  # objects drift; the backdrop stays
    clip = SweepDataset(datasets["sweep"], clip=3)[0]
    assert clip["frames"].shape[0] == 3 and 0 <= int(clip["start"]) <= 3


def test_held_out_splits_hold_only_what_training_never_shows() -> None:
    def kinds_in(split: str, seeds: range) -> tuple[set[str], set[str], set[float]]:
        shapes, textures, stops = set(), set(), set()
        for seed in seeds:
            scene = defocusnet_scene(np.random.default_rng(seed), split)
            stops.add(scene.lens.f_stop)
            for entry in scene.describe():
                if "kind" in entry:
                    shapes.add(entry["kind"])
                if "material" in entry:
                    textures.add(entry["material"]["texture"]["kind"])
        return shapes, textures, stops

    train_shapes, train_textures, train_stops = kinds_in("train", range(30))
    test_shapes, _, _ = kinds_in("test-shape", range(10))
    _, test_textures, _ = kinds_in("test-appearance", range(10))
    assert not train_shapes & set(HELD_OUT_SHAPES) and not train_textures & set(HELD_OUT_TEXTURES)
    assert test_shapes - {"cube"} == set(HELD_OUT_SHAPES)  # the backdrop is a thin cube
    assert test_textures == set(HELD_OUT_TEXTURES)
    assert train_stops == {1.0} and kinds_in("test-wide-dof", range(3))[2] == {4.0}
    assert io.sample_seed(0, "defocusnet", "train", 5) != io.sample_seed(0, "defocusnet", "test-shape", 5)


def test_shards_in_separate_folders_read_as_one_dataset(tmp_path: Path) -> None:
    tiny = Options(width=32, height=32, quality=Quality(samples=1, denoise=False, threads=1), slices=2)
    for name, shard in (("whole", (0, 1)), ("a", (0, 2)), ("b", (1, 2))):
        generate("defocusnet", 3, tmp_path / name, seed=4, shard=shard, options=tiny, progress=False, preview=False)
    with pytest.raises(InputError, match="lists 2 of 3"):
        FocalStackDataset(tmp_path / "a")
    shards = FocalStackDataset([tmp_path / "b", tmp_path / "a"])
    assert shards.folder.indices == [0, 1, 2] and shards.folder.folder(1).parent == tmp_path / "b"
    whole, parts = first_batch(FocalStackDataset(tmp_path / "whole")), first_batch(shards)
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], rtol=0, atol=0)
    with pytest.raises(InputError, match="in both"):
        FocalStackDataset([tmp_path / "a", tmp_path / "a"])
    generate("defocusnet", 3, tmp_path / "other", seed=5, shard=(1, 2), options=tiny, progress=False, preview=False)
    with pytest.raises(InputError, match="another dataset"):
        FocalStackDataset([tmp_path / "a", tmp_path / "other"])


def test_verify_checks_checksums_on_first_read_in_every_worker(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(datasets["stereo"], root)
    data = StereoDataset(root, verify=True)
    assert first_batch(data)["left"].shape == (2, 3, 48, 64)  # two workers, each verifies what it reads
    data[1]
    assert data.folder._verified == {1}  # the main process verified only what it read itself
    path = root / "000001" / "right.exr"
    path.write_bytes(path.read_bytes()[:-10])  # truncated
    with pytest.raises(InputError, match="right.exr has .* bytes"):
        first_batch(StereoDataset(root, verify=True))
    blob = bytearray((root / "000000" / "depth_left.exr").read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (root / "000000" / "depth_left.exr").write_bytes(bytes(blob))
    fresh = StereoDataset(root, verify=True)
    with pytest.raises(InputError, match="depth_left.exr fails its checksum"):
        fresh[0]
    assert data.folder.record(1)["index"] == 1  # verified once in this process: not hashed again


def test_readers_refuse_the_wrong_kind_or_split(datasets: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="not 'stereo'"):
        StereoDataset(datasets["defocusnet"])
    with pytest.raises(InputError, match="split"):
        FocalStackDataset(datasets["defocusnet"], split="test-shape")


def test_augment_keeps_maps_registered_and_jitters_alike() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 3, 20, 30, generator=g)
    sample = {"stack": torch.cat([base, base * 0.5]), "aif": base[0], "depth": base[0, :1] + 1.0,
              "focus_distances": torch.tensor([0.1, 0.2])}
    out = Augment(crop=(10, 12), jitter=ColourJitter(0.3, 0.3, 0.2))(sample, colour=("stack", "aif"), generator=g)
    assert out["stack"].shape == (2, 3, 10, 12) and out["depth"].shape == (1, 10, 12)
    torch.testing.assert_close(out["stack"][0], out["aif"])  # same crop, flips and jitter everywhere
    assert not torch.allclose(out["aif"], sample["aif"][:, :10, :12])
    permuted = Augment(flip=False, jitter=None, permute=True)
    seen = set()
    for _ in range(20):
        out = permuted(sample, (), slices=("stack", "focus_distances"), generator=g)
        seen.add(tuple(round(v, 3) for v in out["focus_distances"].tolist()))
        first = 0 if out["focus_distances"][0] < 0.15 else 1  # the slices moved with their distances
        torch.testing.assert_close(out["stack"][0], sample["stack"][first])
    assert seen == {(0.1, 0.2), (0.2, 0.1)}


def test_depth_corruption_grows_or_shrinks_the_near_region() -> None:
    inverse = torch.zeros(1, 1, 16, 16)
    inverse[..., 6:10, 6:10] = 1.0
    grown, shrunk = corrupt_depth(inverse, 2, dilate=True), corrupt_depth(inverse, 1, dilate=False)
    assert float(grown.sum()) == 64.0 and float(shrunk.sum()) == 4.0


@pytest.mark.parametrize("kind", list(READERS))
def test_shipped_samples_validate_and_load(kind: str) -> None:
    root = SAMPLES / kind
    assert validate(root).ok
    sample = READERS[kind](root)[0]
    assert all(torch.isfinite(v).all() for v in sample.values())
    assert (root / io.PREVIEW_FILE).is_file()
