"""``mono`` dataset folders (blender_scenes/kind_mono.py) for the built-in Mono Depth network.

One item is a dict of float32 tensors:

* ``image`` (3, H, W): **sRGB-encoded** in [0, 1], what :class:`core.mono.network.MonoDepthNet`
  takes. The scene-linear render is first exposed so that its 97th luminance percentile sits at
  0.8 (Cycles' lamps give exposures over two decades; a camera's auto-exposure does the same).
* ``inverse_depth`` (1, H, W): normalised inverse depth of the (cropped) view, 1 at its nearest
  pixel, 0 at its farthest (DeepLens' target).
* ``depth`` (1, H, W): planar metres. ``mask`` (1, H, W): 1 on foreground objects, else 0.

The whole folder is read into memory once (a 160 x 128 sample is 0.2 MB), so training never waits
on EXR decoding. Only complete sample folders are read (each is renamed into place when done), so a
folder still being rendered can be read. Augmentation (``augment=True``): a random crop to ``crop``
(H, W) after a random zoom of up to ``zoom``, horizontal flips (never vertical: floors are below),
exposure, contrast, saturation and gamma jitter, an occasional grey image, and sensor noise.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from blender_scenes import dataset_io as io
from core.colour import linear_to_srgb
from core.errors import check

from .folder import read_colour, read_plane

_LUMA = (0.2126, 0.7152, 0.0722)


def expose(linear: torch.Tensor, level: float = 0.8, percentile: float = 0.97) -> torch.Tensor:
    """Scale (3, H, W) scene-linear colour so that its ``percentile`` luminance is ``level``."""
    luma = (linear * torch.tensor(_LUMA).view(3, 1, 1)).sum(0)
    reference = torch.quantile(luma.flatten(), percentile).clamp_min(1e-6)
    return linear * (level / reference)


def normalise_inverse_depth(depth: torch.Tensor) -> torch.Tensor:
    """Planar depth (..., H, W) metres to min-max normalised inverse depth over the last two dims."""
    inv = 1.0 / depth
    low = inv.amin(dim=(-2, -1), keepdim=True)
    high = inv.amax(dim=(-2, -1), keepdim=True)
    return (inv - low) / (high - low).clamp_min(1e-12)


class MonoDepthDataset(Dataset):
    """The samples of a ``mono`` folder (see the module docstring).

    Args:
        root: the folder ``generate --kind mono --out`` wrote.
        split: the split expected (``train``, ``val``, ``test``); a mismatch is an error, so
            training cannot read the test folder by mistake.
        augment: random crop, zoom, flip and photometric jitter (training); else whole images.
        crop: (H, W) of augmented crops, multiples of 32.
        zoom: largest zoom factor of a crop (1: crops at the rendered scale only).
        limit: read only the first ``limit`` samples (tiny runs).
    """

    def __init__(self, root: str | Path, split: str, augment: bool = False, crop: tuple[int, int] = (128, 128),
                 zoom: float = 1.4, limit: int | None = None) -> None:
        self.root = Path(root)
        check((self.root / io.DATASET_FILE).is_file(), f"{self.root} holds no {io.DATASET_FILE}; is it a dataset folder?")
        description = io.read_json(self.root / io.DATASET_FILE)
        check(description.get("kind") == "mono", f"{self.root} holds a {description.get('kind')!r} dataset, not 'mono'")
        check(description.get("split") == split, f"{self.root} holds split {description.get('split')!r}, not {split!r}")
        indices = io.complete_indices(self.root)[:limit]
        check(len(indices) > 0, f"{self.root} has no complete sample")
        self.augment, self.crop, self.zoom = augment, tuple(crop), float(zoom)
        images, depths, masks = [], [], []
        for index in indices:
            folder = io.sample_dir(self.root, index)
            images.append(expose(read_colour(folder / "image.exr")[:3]).half())
            depths.append(read_plane(folder / "depth.exr"))
            masks.append(read_plane(folder / "mask.exr") > 0.5)
        self.images, self.depths, self.masks = torch.stack(images), torch.stack(depths), torch.stack(masks)
        self.indices = indices
        if augment:
            h, w = self.images.shape[-2:]
            check(self.crop[0] <= h and self.crop[1] <= w, f"crop {self.crop} is larger than the images ({h}, {w})")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        linear, depth, mask = self.images[i].float(), self.depths[i], self.masks[i].float()
        if self.augment:
            linear, depth, mask = self._geometric(linear, depth, mask)
            linear = self._photometric(linear)
        image = linear_to_srgb(linear)
        if self.augment:
            image = (image + torch.randn_like(image) * float(torch.rand(())) * 0.02).clamp(0.0, 1.0)
        return {"image": image, "inverse_depth": normalise_inverse_depth(depth), "depth": depth, "mask": mask,
                "index": torch.tensor(self.indices[i])}

    def _geometric(self, linear: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor):
        ch, cw = self.crop
        h, w = linear.shape[-2:]
        # A window of the crop's aspect, 1..zoom times smaller than the largest that fits, resized to
        # crop: zooming in is a longer lens, which a single image cannot tell apart.
        scale = min(h / ch, w / cw) / float(1.0 + torch.rand(()) * (self.zoom - 1.0))
        wh, ww = min(h, max(8, round(ch * scale))), min(w, max(8, round(cw * scale)))
        top = int(torch.randint(0, h - wh + 1, ()))
        left = int(torch.randint(0, w - ww + 1, ()))
        linear = linear[:, top:top + wh, left:left + ww]
        depth = depth[:, top:top + wh, left:left + ww]
        mask = mask[:, top:top + wh, left:left + ww]
        if (wh, ww) != (ch, cw):
            linear = F.interpolate(linear[None], size=(ch, cw), mode="bilinear", align_corners=False, antialias=True)[0]
            # Depth resampled as inverse depth (what the loss sees), nearest so that no edge mixes two surfaces.
            depth = F.interpolate(depth[None], size=(ch, cw), mode="nearest")[0]
            mask = F.interpolate(mask[None], size=(ch, cw), mode="nearest")[0]
        if bool(torch.rand(()) < 0.5):
            linear, depth, mask = linear.flip(-1), depth.flip(-1), mask.flip(-1)
        return linear, depth, mask

    @staticmethod
    def _photometric(linear: torch.Tensor) -> torch.Tensor:
        def uniform(low: float, high: float) -> float:
            return float(low + (high - low) * torch.rand(()))

        linear = linear * uniform(0.5, 1.6)  # exposure
        grey = (linear * torch.tensor(_LUMA).view(3, 1, 1)).sum(0, keepdim=True)
        saturation = 0.0 if bool(torch.rand(()) < 0.1) else uniform(0.6, 1.4)
        linear = (grey + saturation * (linear - grey)).clamp_min(0.0)
        linear = linear * torch.empty(3, 1, 1).uniform_(0.85, 1.15)  # white balance
        mean = linear.mean()
        linear = (mean + uniform(0.75, 1.25) * (linear - mean)).clamp_min(0.0)  # contrast
        return linear ** uniform(0.85, 1.15)
