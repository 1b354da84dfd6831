"""Three-plane scenes (``deeplens`` folders) for the Mono Depth and learned lens blur (DeepLens, seed 003).

One item is a dict of tensors:

* ``image`` (3, H, W): all in focus, scene-linear. ``depth`` (1, H, W): planar metres.
* ``inverse_depth`` (1, H, W): normalised inverse depth, 1 at the nearest pixel, 0 at the farthest.
* ``inverse_depth_input`` (1, H, W): the same, corrupted by a random dilation or erosion when
  ``corrupt`` > 0 (DeepLens' augmentation), else equal to ``inverse_depth``.
* ``layers`` (3, 4, H, W): premultiplied RGBA of the background, middle and foreground layers,
  each rendered alone; ``layer_depth`` (3, 1, H, W): their depth, 0 where a layer is empty.
* ``dof`` (K, 3, H, W): Cycles depth-of-field renders, the ground truth of the lens blur.
  ``focus_distances`` (K,) metres, ``f_stops`` (K,), ``focus_inverse_depth`` (K,) the focus on
  the normalised inverse depth scale, ``coc`` (K, 1, H, W) signed CoC in pixels (core.optics).
* ``index`` ().
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from core.optics import circle_of_confusion

from .augment import Augment, corrupt_depth
from .folder import DatasetFolder, read_colour, read_plane, scalars


class DeepLensDataset(Dataset):
    """A ``deeplens`` dataset folder.

    Args:
        corrupt: largest radius in pixels of the depth corruption (0: none).
        augment: crops, flips and colour jitter (image, layers and renders alike), or ``None``.
        verify: check each sample's files against the manifest's checksums on its first read.
    """

    def __init__(self, root: str | Path | list[str | Path], split: str | None = None,
                 augment: Augment | None = None, corrupt: int = 0, verify: bool = False) -> None:
        self.folder = DatasetFolder(root, "deeplens", split, verify=verify)
        self.augment, self.corrupt = augment, corrupt

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        folder, record = self.folder.folder(i), self.folder.record(i)
        depth = read_plane(folder / "depth.exr")
        near, far = record["inverse_depth"]["near"], record["inverse_depth"]["far"]
        views = record["dof"]
        focus = scalars([v["focus_distance"] for v in views])
        f_stops = scalars([v["f_stop"] for v in views])
        f_mm = float(record["camera"]["focal_length_mm"])
        inverse = read_plane(folder / record["inverse_depth"]["file"])
        sample = {
            "image": read_colour(folder / "image.exr")[:3],
            "depth": depth,
            "inverse_depth": inverse,
            "layers": torch.stack([read_colour(folder / layer["file"]) for layer in record["layers"]]),
            "layer_depth": torch.stack([read_plane(folder / layer["depth_file"]) for layer in record["layers"]]),
            "dof": torch.stack([read_colour(folder / v["file"])[:3] for v in views]),
            "focus_distances": focus,
            "f_stops": f_stops,
            "focus_inverse_depth": (1.0 / focus - 1.0 / far) / (1.0 / near - 1.0 / far),
            "coc": torch.stack([circle_of_confusion(depth, float(F), float(N), f_mm, float(v["focal_length_px"]))
                                for F, N, v in zip(focus, f_stops, views)]),
            "index": torch.tensor(self.folder.indices[i]),
        }
        if self.augment is not None:
            sample = self.augment(sample, colour=("image", "layers", "dof"))
        radius = int(torch.randint(0, self.corrupt + 1, ())) if self.corrupt > 0 else 0
        dilate = bool(torch.rand(()) < 0.5)
        sample["inverse_depth_input"] = corrupt_depth(sample["inverse_depth"], radius, dilate)
        return sample
