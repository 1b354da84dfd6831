"""Focal stacks (``defocusnet`` folders) for the Focal Stack Depth network (DefocusNet, seed 002).

One item is a dict of tensors:

* ``stack`` (S, 3, H, W): the slices, scene-linear, nearest focus first (unless permuted).
* ``focus_distances`` (S,): metres. ``f_stops`` (S,). ``coc_px_per_dioptre`` (S,): the CoC
  diameter in pixels per dioptre of defocus of each slice, A f_px.
* ``aif`` (3, H, W): the all-in-focus image, scene-linear. ``depth`` (1, H, W): planar metres.
* ``coc`` (S, 1, H, W): each slice's signed circle of confusion in pixels at every pixel
  (core.optics, Cycles' camera: > 0 behind the focus plane), DefocusNet's defocus-map target.
* ``index`` (): the sample's index in the dataset.

With focus breathing the slices are zoomed relative to ``aif``/``depth`` by ``1 / relative_fov``
(in the record); the maps stay on the all-in-focus grid, and alignment is left to the network or
the caller, as DfF in the Wild (seed 004) does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from core.errors import check
from core.optics import circle_of_confusion

from .augment import Augment
from .folder import DatasetFolder, read_colour, read_plane, scalars


class FocalStackDataset(Dataset):
    """A ``defocusnet`` dataset folder.

    Args:
        root: folder written by ``generate --kind defocusnet``.
        split: expected split (``train``, ``test-shape``, ...), or ``None``.
        slices: return this many slices, drawn at random (in their order) from each stack, as
            DefocusNet trains on any number of inputs; ``None`` for all of them.
        augment: crops, flips, colour jitter, permutation (``Augment(permute=True)``), or ``None``.
        allow_incomplete: read a folder whose rendering stopped short of its count (its complete
            samples; see :class:`models.data.folder.DatasetFolder`).
        verify: check each sample's files against the manifest's checksums on its first read.
    """

    def __init__(self, root: str | Path | list[str | Path], split: str | None = None, slices: int | None = None,
                 augment: Augment | None = None, allow_incomplete: bool = False, verify: bool = False) -> None:
        self.folder = DatasetFolder(root, "defocusnet", split, allow_incomplete=allow_incomplete, verify=verify)
        self.slices, self.augment = slices, augment
        total = len(self.folder.record(0)["slices"])
        check(slices is None or 1 <= slices <= total, f"slices must be 1..{total}, got {slices}")

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        folder, record = self.folder.folder(i), self.folder.record(i)
        views = record["slices"]
        if self.slices is not None:
            keep = torch.randperm(len(views))[: self.slices].sort().values.tolist()
            views = [views[k] for k in keep]
        depth = read_plane(folder / "depth.exr")
        focus = scalars([v["focus_distance"] for v in views])
        f_stops = scalars([v["f_stop"] for v in views])
        f_px = scalars([v["focal_length_px"] for v in views])
        f_mm = float(record["camera"]["focal_length_mm"])
        coc = torch.stack([circle_of_confusion(depth, float(F), float(N), f_mm, float(px))
                           for F, N, px in zip(focus, f_stops, f_px)])
        sample = {
            "stack": torch.stack([read_colour(folder / v["file"])[:3] for v in views]),
            "focus_distances": focus,
            "f_stops": f_stops,
            "coc_px_per_dioptre": scalars([v["coc_px_per_dioptre"] for v in views]),
            "aif": read_colour(folder / "image.exr")[:3],
            "depth": depth,
            "coc": coc,
            "index": torch.tensor(self.folder.indices[i]),
        }
        if self.augment is not None:
            sample = self.augment(sample, colour=("stack", "aif"),
                                  slices=("stack", "focus_distances", "f_stops", "coc_px_per_dioptre", "coc"))
        return sample
