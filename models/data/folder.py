"""A dataset folder written by ``blender_scenes.generate``, read as torch tensors.

The layout is :mod:`blender_scenes.dataset_io`'s: ``dataset.json``, ``manifest.json`` and one
folder per sample with ``sample.json`` and EXR files. Only samples the manifest lists are read,
so a folder still being rendered (or resumed) never hands out a half-written sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from blender_scenes import dataset_io as io
from core.errors import check
from core.imageio import read_image, read_map


class DatasetFolder:
    """The samples of one dataset folder of a given kind.

    Args:
        root: the folder ``generate --out`` wrote.
        kind: the kind the caller reads (``defocusnet``, ``deeplens``, ``stereo``, ``sweep``).
        split: the split expected (e.g. ``train``), or ``None`` for whichever the folder holds:
            a training script passing ``"train"`` can never read a held-out test folder.
        allow_incomplete: read a folder whose manifest lists fewer samples than were asked for.
    """

    def __init__(self, root: str | Path, kind: str, split: str | None = None, allow_incomplete: bool = False) -> None:
        self.root = Path(root)
        check(self.root.is_dir(), f"dataset folder not found: {self.root}")
        check((self.root / io.DATASET_FILE).is_file(), f"{self.root} holds no {io.DATASET_FILE}; is it a dataset folder?")
        self.description = io.read_json(self.root / io.DATASET_FILE)
        check(self.description.get("kind") == kind,
              f"{self.root} holds a {self.description.get('kind')!r} dataset, not {kind!r}")
        self.split = self.description.get("split")
        check(split is None or self.split == split, f"{self.root} holds split {self.split!r}, not {split!r}")
        check((self.root / io.MANIFEST_FILE).is_file(),
              f"{self.root} has no manifest; run: python -m blender_scenes.validate {self.root} --reindex")
        manifest = io.read_json(self.root / io.MANIFEST_FILE)
        self.indices = [int(s["index"]) for s in manifest["samples"]]
        check(len(self.indices) > 0, f"{self.root} has no complete sample")
        check(allow_incomplete or len(self.indices) >= int(self.description["count"]),
              f"{self.root} lists {len(self.indices)} of {self.description['count']} samples; finish rendering "
              f"(rerun generate), or after shards ran apart run python -m blender_scenes.validate {self.root} "
              f"--reindex, or pass allow_incomplete=True")

    def __len__(self) -> int:
        return len(self.indices)

    def folder(self, i: int) -> Path:
        return io.sample_dir(self.root, self.indices[i])

    def record(self, i: int) -> dict[str, Any]:
        return io.read_json(self.folder(i) / io.SAMPLE_FILE)


def read_colour(path: Path) -> torch.Tensor:
    """An EXR colour file as a (C, H, W) float32 tensor, scene-linear (C = 3, or 4 with alpha)."""
    return torch.from_numpy(np.ascontiguousarray(read_image(path).transpose(2, 0, 1)))


def read_plane(path: Path) -> torch.Tensor:
    """A one-channel EXR (depth in metres, disparity in pixels) as a (1, H, W) float32 tensor."""
    return torch.from_numpy(read_map(path))[None]


def scalars(values: list[float]) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32)
