"""Training augmentations from the papers, applied alike to every tensor of a sample.

* Random crops and flips (all papers; DfF in the Wild also rotates): the same window and flips for
  images, depth, disparity and CoC maps, so that they stay registered.
* Colour jitter (DfF in the Wild, seed 004: brightness, contrast, gamma): one draw for all colour
  images of a sample, so that a focal stack and its all-in-focus target still agree.
* Slice order permutation (DefocusNet, seed 002): its networks pool over slices and must not
  depend on their order.
* Depth corruption (DeepLens, seed 003): dilate or erode the input's inverse depth, so that the
  lens-blur network learns not to trust depth edges blindly.
* Stereo flips: mirroring a rectified pair swaps its views (the mirrored right view is the new
  left), and the disparity maps swap with them.

Randomness comes from ``torch``'s generator (pass one, or use the global one, which a DataLoader
seeds per worker), so augmentations differ across workers and epochs yet repeat under a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F

from core.errors import check

Sample = dict[str, torch.Tensor]


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


@dataclass(frozen=True)
class ColourJitter:
    """Ranges of a photometric jitter on scene-linear colour.

    Attributes:
        brightness: exposure gain drawn from [1 - b, 1 + b].
        contrast: scale of deviations from the mean luminance, drawn from [1 - c, 1 + c].
        gamma: exponent drawn from [1 - g, 1 + g] (on values, which stay non-negative).
    """

    brightness: float = 0.2
    contrast: float = 0.2
    gamma: float = 0.1

    def draw(self, generator: torch.Generator | None = None) -> tuple[float, float, float]:
        return (_uniform(1 - self.brightness, 1 + self.brightness, generator),
                _uniform(1 - self.contrast, 1 + self.contrast, generator),
                _uniform(1 - self.gamma, 1 + self.gamma, generator))


def jitter_colour(images: list[torch.Tensor], gain: float, contrast: float, gamma: float) -> list[torch.Tensor]:
    """Apply one jitter to several (..., 3, H, W) scene-linear images (the mean is the first one's)."""
    mean = images[0][..., :3, :, :].mean()
    out = []
    for image in images:
        rgb = image[..., :3, :, :]
        alpha = image[..., 3:4, :, :] if image.shape[-3] > 3 else None
        if alpha is not None:  # premultiplied RGBA: jitter the colour, not the coverage
            rgb = torch.where(alpha > 0, rgb / alpha.clamp_min(1e-6), torch.zeros_like(rgb))
        rgb = ((rgb * gain - mean * gain) * contrast + mean * gain).clamp_min(0.0) ** gamma
        out.append(rgb if alpha is None else torch.cat([rgb * alpha, image[..., 3:, :, :]], dim=-3))
    return out


def crop_window(height: int, width: int, size: tuple[int, int],
                generator: torch.Generator | None = None) -> tuple[int, int]:
    """Top-left corner of a random ``size`` = (h, w) window inside a height x width image."""
    h, w = size
    check(h <= height and w <= width, f"crop {w}x{h} is larger than the {width}x{height} samples")
    top = int(torch.randint(0, height - h + 1, (), generator=generator))
    left = int(torch.randint(0, width - w + 1, (), generator=generator))
    return top, left


def permute_slices(sample: Sample, keys: Iterable[str], generator: torch.Generator | None = None) -> Sample:
    """Shuffle the slice order (dim 0) of ``keys`` with one permutation."""
    keys = [k for k in keys if k in sample]
    n = sample[keys[0]].shape[0]
    order = torch.randperm(n, generator=generator)
    return {**sample, **{k: sample[k][order] for k in keys}}


def corrupt_depth(inverse_depth: torch.Tensor, radius: int, dilate: bool) -> torch.Tensor:
    """DeepLens' depth corruption: grow (``dilate``) or shrink near regions of a (..., 1, H, W)
    inverse depth map (near is large) by ``radius`` pixels, with a max (or min) filter."""
    if radius <= 0:
        return inverse_depth
    x = inverse_depth.reshape(-1, 1, *inverse_depth.shape[-2:])
    k = 2 * radius + 1
    out = F.max_pool2d(x, k, 1, radius) if dilate else -F.max_pool2d(-x, k, 1, radius)
    return out.reshape(inverse_depth.shape)


@dataclass(frozen=True)
class Augment:
    """A sample's augmentation: crop, flips, colour jitter, slice permutation.

    Attributes:
        crop: (h, w) of a random window, or ``None`` to keep the full frame.
        flip: random horizontal and vertical flips (each with probability 1/2).
        jitter: colour jitter, or ``None``.
        permute: shuffle slice order (focal stacks).
    """

    crop: tuple[int, int] | None = None
    flip: bool = True
    jitter: ColourJitter | None = field(default_factory=ColourJitter)
    permute: bool = False

    def __call__(self, sample: Sample, colour: Iterable[str], slices: Iterable[str] = (),
                 stereo: bool = False, generator: torch.Generator | None = None) -> Sample:
        """Augment ``sample``: spatial ops on every tensor whose last two dims are the frame;
        jitter on the ``colour`` keys; permutation on the ``slices`` keys (dim 0).
        With ``stereo``, a horizontal flip swaps ``left``/``right`` and the ``*_left``/``*_right`` maps."""
        out = dict(sample)
        spatial = [k for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() >= 3]
        height, width = out[spatial[0]].shape[-2:]
        if self.crop is not None:
            top, left = crop_window(height, width, self.crop, generator)
            for k in spatial:
                out[k] = out[k][..., top:top + self.crop[0], left:left + self.crop[1]]
        if self.flip:
            if torch.rand((), generator=generator) < 0.5:
                out = {k: (v.flip(-1) if k in spatial else v) for k, v in out.items()}
                if stereo:
                    out = _swap_views(out)
            if torch.rand((), generator=generator) < 0.5:
                out = {k: (v.flip(-2) if k in spatial else v) for k, v in out.items()}
        if self.jitter is not None:
            keys = [k for k in colour if k in out]
            for k, v in zip(keys, jitter_colour([out[k] for k in keys], *self.jitter.draw(generator))):
                out[k] = v
        slice_keys = list(slices)
        if self.permute and slice_keys:
            out = permute_slices(out, slice_keys, generator)
        return {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in out.items()}


def _swap_views(sample: Sample) -> Sample:
    """After mirroring a rectified pair, the mirrored right view is the left one and vice versa."""
    out = dict(sample)
    for a, b in (("left", "right"),) + tuple((k, k[: -len("_left")] + "_right") for k in sample if k.endswith("_left")):
        if a in sample and b in sample:
            out[a], out[b] = sample[b], sample[a]
    return out
