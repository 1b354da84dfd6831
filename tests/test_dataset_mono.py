"""The ``mono`` dataset kind rendered with real Cycles (blender_scenes/kind_mono.py), read back by
models.data.mono, and the tiny training configuration run on it end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from blender_scenes import dataset_io as io
from blender_scenes import kind_mono
from blender_scenes.dataset_render import Quality
from blender_scenes.dataset_samples import Options
from blender_scenes.generate import generate
from blender_scenes.validate import validate
from core.imageio import read_image, read_map
from core.mono.network import load_model
from models.data.mono import MonoDepthDataset
from models.mono.train import main as train_main

pytestmark = pytest.mark.blender

TINY = Options(width=64, height=64, quality=Quality(samples=2, denoise=True, threads=1))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mono") / "train"
    assert generate("mono", 2, out, seed=3, split="train", options=TINY, progress=False, preview=False) == 2
    return out


def test_files_depth_and_mask(rendered: Path) -> None:
    assert validate(rendered).ok
    for index in (0, 1):
        folder = io.sample_dir(rendered, index)
        record = io.read_json(folder / io.SAMPLE_FILE)
        assert record["kind"] == "mono" and record["layout"] in kind_mono.LAYOUTS
        assert set(record["files"]) == {"image.exr", "depth.exr", "mask.exr"}
        image, depth, mask = read_image(folder / "image.exr"), read_map(folder / "depth.exr"), read_map(folder / "mask.exr")
        assert image.shape[:2] == depth.shape == mask.shape == (64, 64)
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() > 0.0
        assert np.isfinite(depth).all() and depth.min() > 0.0 and depth.max() <= kind_mono.SKY_M * 3 ** 0.5
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert record["depth_range"] == pytest.approx([float(depth.min()), float(depth.max())])
        assert record["mask"]["foreground"] == pytest.approx(float(mask.mean()))


def test_splits_hold_out_photographs() -> None:
    assert not set(kind_mono.TEST_PHOTOS) & set(kind_mono.TRAIN_PHOTOS)
    assert io.SPLITS["mono"] == ("train", "val", "test")
    photos = set()
    for seed in range(40):
        scene = kind_mono.mono_scene(np.random.default_rng(seed), "test")
        photos |= {s.surface.photo for s in scene.solids if s.surface.photo}
    assert photos and photos <= set(kind_mono.TEST_PHOTOS)


def test_reader_and_tiny_training(rendered: Path, tmp_path: Path) -> None:
    data = MonoDepthDataset(rendered, "train", augment=True, crop=(64, 64))
    item = data[0]
    assert item["image"].shape == (3, 64, 64) and 0.0 <= float(item["image"].min()) <= float(item["image"].max()) <= 1.0
    assert float(item["inverse_depth"].min()) == 0.0 and float(item["inverse_depth"].max()) == pytest.approx(1.0)
    with pytest.raises(Exception, match="not 'test'"):
        MonoDepthDataset(rendered, "test")
    out = tmp_path / "mono_tiny.pt"
    assert train_main(["--config", "tiny", "--data", str(rendered), "--out", str(out), "--steps", "30", "--batch", "2",
                       "--crop", "64", "64", "--lr", "0.02", "--log-every", "5", "--ssi", "0.5"]) == 0
    model = load_model(out)
    history = model.meta["history"]
    assert model.meta["config_name"] == "tiny" and history[-1]["step"] == 30
    assert history[-1]["loss"] < history[0]["loss"]
    with torch.no_grad():
        assert model(item["image"][None])["inverse_depth"].shape == (1, 1, 64, 64)
