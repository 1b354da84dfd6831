"""Focus-sweep videos (``sweep`` folders) for the video depth-from-defocus work (seed 001).

One item is a clip of T consecutive frames, a dict of tensors:

* ``frames`` (T, 3, H, W): the video, focus ramping, scene-linear.
* ``aif`` (T, 3, H, W): each frame all in focus. ``depth`` (T, 1, H, W): planar metres.
* ``focus_distances`` (T,): metres. ``f_stop`` (), ``coc_px_per_dioptre`` () (constant over the video).
* ``start`` (): the clip's first frame in its video. ``index`` ().
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from core.errors import check

from .augment import Augment
from .folder import DatasetFolder, read_colour, read_plane, scalars


class SweepDataset(Dataset):
    """A ``sweep`` dataset folder.

    Args:
        clip: frames per item, taken from a random start (``None``: the whole video).
        augment: crops, flips and colour jitter, the same on every frame; or ``None``.
        verify: check each sample's files against the manifest's checksums on its first read.
    """

    def __init__(self, root: str | Path | list[str | Path], split: str | None = None, clip: int | None = None,
                 augment: Augment | None = None, verify: bool = False) -> None:
        self.folder = DatasetFolder(root, "sweep", split, verify=verify)
        self.clip, self.augment = clip, augment
        frames = len(self.folder.record(0)["frames"])
        check(clip is None or 1 <= clip <= frames, f"clip must be 1..{frames} frames, got {clip}")

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        folder, record = self.folder.folder(i), self.folder.record(i)
        frames = record["frames"]
        length = len(frames) if self.clip is None else self.clip
        start = int(torch.randint(0, len(frames) - length + 1, ()))
        chosen = frames[start:start + length]
        sample = {
            "frames": torch.stack([read_colour(folder / f["file"])[:3] for f in chosen]),
            "aif": torch.stack([read_colour(folder / f["aif_file"])[:3] for f in chosen]),
            "depth": torch.stack([read_plane(folder / f["depth_file"]) for f in chosen]),
            "focus_distances": scalars([f["focus_distance"] for f in chosen]),
            "f_stop": torch.tensor(float(chosen[0]["f_stop"])),
            "coc_px_per_dioptre": torch.tensor(float(chosen[0]["coc_px_per_dioptre"])),
            "start": torch.tensor(start),
            "index": torch.tensor(self.folder.indices[i]),
        }
        if self.augment is not None:
            sample = self.augment(sample, colour=("frames", "aif"))
        return sample
