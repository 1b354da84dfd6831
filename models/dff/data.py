"""Training data for FocalStackNet: the Cycles ``defocusnet`` folders or the synthetic stand-in.

Every source yields samples as dicts of tensors (the format :func:`models.dff.loss.dff_loss`
takes): ``stack`` (N, 3, H, W) scene-linear, ``focus_distances`` (N,) metres, ``depth``
(1, H, W) metres, ``aif`` (3, H, W), ``defocus_scale`` () px of CoC per dioptre.

``--data`` names the source: ``synthetic`` (or ``synthetic:COUNT``) for
:mod:`models.dff.synthetic`, or a folder written by ``python -m blender_scenes.generate --kind
defocusnet`` (one split per folder, read by :class:`models.data.FocalStackDataset`). Stacks
rendered with focus breathing are brought back onto the all-in-focus view with
core.focal_stack.alignment, from the recorded focus distances and focal length.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from torch.utils.data import Dataset

from core.focal_stack.alignment import scale_about_centre, warp_images
from models.data import FocalStackDataset

from .synthetic import SyntheticFocalStacks


class FolderFocalStacks(Dataset):
    """A ``defocusnet`` folder rendered by the Cycles generator, through models.data's reader.

    Adds what FocalStackNet's loss needs (``defocus_scale``: the mean of the slices' A f_px) and
    brings slices rendered with focus breathing back onto the all-in-focus grid.
    """

    def __init__(self, root: str | Path, split: str | None = None, allow_incomplete: bool = False) -> None:
        self.data = FocalStackDataset(root, split=split, allow_incomplete=allow_incomplete)
        self.breathing = bool(self.data.folder.description.get("options", {}).get("breathing"))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sample = self.data[i]
        stack, depth, aif = sample["stack"], sample["depth"], sample["aif"]
        if self.breathing:
            fov = [float(v.get("relative_fov", 1.0)) for v in self.data.folder.record(i)["slices"]]
            stack, depth, aif = _unbreathe(stack, depth, aif, fov)
        return {"stack": stack, "focus_distances": sample["focus_distances"], "depth": depth, "aif": aif,
                "defocus_scale": sample["coc_px_per_dioptre"].mean(),
                "coc_px_per_dioptre": sample["coc_px_per_dioptre"]}


def _unbreathe(stack: torch.Tensor, depth: torch.Tensor, aif: torch.Tensor,
               relative_fov: list[float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bring slices rendered with focus breathing onto the all-in-focus view, cropping the border.

    A breathing slice sees ``relative_fov`` (f / s <= 1) of the all-in-focus view: a point at offset
    r from the centre lies at r / relative_fov in the slice. The all-in-focus view is wider, so its
    border is cropped away wherever some slice has no pixels for it.
    """
    h, w = stack.shape[-2:]
    warps = torch.stack([torch.from_numpy(scale_about_centre(r, w, h)) for r in relative_fov])
    stack = warp_images(stack, warps)
    narrowest = min(relative_fov)
    mx = int(math.ceil((1.0 - narrowest) * w / 2)) + 1
    my = int(math.ceil((1.0 - narrowest) * h / 2)) + 1
    crop = (..., slice(my, h - my), slice(mx, w - mx))
    return stack[crop], depth[crop], aif[crop]


def open_source(data: str, size: int = 128, seed: int = 0, allow_incomplete: bool = False) -> Dataset:
    """The dataset ``--data`` names: ``synthetic[:COUNT]`` or a ``defocusnet`` folder.

    ``allow_incomplete`` reads a folder whose rendering stopped short of its ``--count`` (its
    manifest rebuilt by ``python -m blender_scenes.validate DIR --reindex``): the complete samples.
    """
    if data.startswith("synthetic"):
        count = int(data.split(":", 1)[1]) if ":" in data else 256
        return SyntheticFocalStacks(count, seed=seed, size=size)
    return FolderFocalStacks(data, allow_incomplete=allow_incomplete)


def random_view(sample: dict[str, torch.Tensor], crop: int, rng: random.Random, slices: int) -> dict[str, torch.Tensor]:
    """A training view: random crop, flip, quarter turn, and a random subset and order of slices.

    Training on random subsets of 2..N slices in random order is what lets one model serve any
    stack (the 'Random' strategy of seed 004, Fig. 12).
    """
    h, w = sample["depth"].shape[-2:]
    c = min(crop, h, w)
    y, x = rng.randint(0, h - c), rng.randint(0, w - c)
    flip, turns = rng.random() < 0.5, rng.randint(0, 3)
    chosen = rng.sample(range(sample["stack"].shape[0]), slices)

    def view(t: torch.Tensor) -> torch.Tensor:
        t = t[..., y:y + c, x:x + c]
        t = t.flip(-1) if flip else t
        return torch.rot90(t, turns, dims=(-2, -1))

    return {
        "stack": view(sample["stack"][chosen]),
        "focus_distances": sample["focus_distances"][chosen],
        "depth": view(sample["depth"]),
        "aif": view(sample["aif"]),
        "defocus_scale": sample["defocus_scale"],
    }


def collate(views: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([v[k] for v in views]) for k in views[0]}
