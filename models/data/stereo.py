"""Rectified stereo pairs (``stereo`` folders) for the Stereo Depth network (SteReFo, seed 000).

One item is a dict of tensors:

* ``left``, ``right`` (3, H, W): scene-linear, all in focus.
* ``disparity_left``, ``disparity_right`` (1, H, W): pixels, exact (B f_px / depth). A left
  pixel at x sees what the right view shows at x - d; a right pixel at x, the left at x + d.
* ``depth_left``, ``depth_right`` (1, H, W): planar metres.
* ``baseline_m`` (), ``focal_length_px`` (), ``index`` ().

Horizontal flips in augmentation mirror the pair and swap its views, which keeps these rules.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from .augment import Augment
from .folder import DatasetFolder, read_colour, read_plane


class StereoDataset(Dataset):
    """A ``stereo`` dataset folder (or its shards' folders); ``augment`` crops, flips (swapping views) and
    jitters both views alike; ``verify`` checks each sample's files against the manifest on first read."""

    def __init__(self, root: str | Path | list[str | Path], split: str | None = None,
                 augment: Augment | None = None, verify: bool = False) -> None:
        self.folder = DatasetFolder(root, "stereo", split, verify=verify)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        folder, record = self.folder.folder(i), self.folder.record(i)
        sample = {"baseline_m": torch.tensor(float(record["baseline_m"])),
                  "focal_length_px": torch.tensor(float(record["focal_length_px"])),
                  "index": torch.tensor(self.folder.indices[i])}
        for side in ("left", "right"):
            sample[side] = read_colour(folder / f"{side}.exr")[:3]
            sample[f"disparity_{side}"] = read_plane(folder / f"disparity_{side}.exr")
            sample[f"depth_{side}"] = read_plane(folder / f"depth_{side}.exr")
        if self.augment is not None:
            sample = self.augment(sample, colour=("left", "right"), stereo=True)
        return sample
