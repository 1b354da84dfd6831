"""StereoNet-style disparity network (SteReFo section 3.1, seed 000, after Khamis et al.'s StereoNet).

* A Siamese feature tower (shared weights) brings each view to 1/2^K resolution (K = 3: 1/8) with
  K strided 5x5 convolutions, then residual blocks.
* A cost volume concatenates the left features with the right features moved by each disparity
  bin along the rows; four 3D convolutions filter it to one cost per bin.
* Soft-argmin: the disparity is the expectation of the bins under ``softmax(-cost)``, so it is
  sub-pixel and differentiable.
* Hierarchical refinement (1/8 -> 1/4 -> 1/2 -> 1): at each scale the disparity is upsampled
  bilinearly, the image and the disparity each pass one convolution and three residual blocks,
  and dilated residual blocks over their concatenation predict a residual correction; the image
  steers the edges.

Input images are scene-linear (B, 3, H, W); the network sees them sRGB-encoded in [-1, 1]. Any
H, W works: inputs are padded to a multiple of 2^K and the output is cropped back.
Disparity is in pixels of the input, ``x_left - x_right``, non-negative.

Only torch is imported here: core.stereo.learned loads this module without the training code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class NetConfig:
    """Hyper-parameters of :class:`StereoNet` (stored with the weights).

    Attributes:
        features: channels of the feature tower.
        tower_blocks: residual blocks after the downsampling convolutions.
        downsample: K, the tower works at 1/2^K resolution.
        cost_channels: channels of the 3D cost filter.
        cost_layers: 3D convolutions before the last one that outputs the cost.
        max_disparity: default search range in full-resolution pixels (a multiple of 2^K);
            inference can ask for another.
        refine_channels: channels of each refinement stage.
        refine_dilations: dilations of the residual blocks over image + disparity.
        branch_blocks: residual blocks of the separate image and disparity branches.
    """

    features: int = 32
    tower_blocks: int = 6
    downsample: int = 3
    cost_channels: int = 32
    cost_layers: int = 4
    max_disparity: int = 192
    refine_channels: int = 32
    refine_dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 1)
    branch_blocks: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> "NetConfig":
        values = dict(values)
        if "refine_dilations" in values:
            values["refine_dilations"] = tuple(values["refine_dilations"])
        return NetConfig(**values)

    @property
    def factor(self) -> int:
        return 2 ** self.downsample


CONFIGS: dict[str, NetConfig] = {
    # Trains on a CPU in minutes; the shipped fallback.
    "tiny": NetConfig(features=16, tower_blocks=3, cost_channels=16, cost_layers=3, max_disparity=128,
                      refine_channels=16, refine_dilations=(1, 4), branch_blocks=1),
    # The full SteReFo/StereoNet layout (about 0.8 M parameters, 3 MB).
    "full": NetConfig(),
}


def conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """A k x k convolution padded to keep the size (at stride 1), any dilation."""
    return nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and leaky ReLU around an identity shortcut."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, dilation=dilation), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True),
            conv(channels, channels, dilation=dilation), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.2)


class FeatureTower(nn.Module):
    """(B, 3, H, W) -> (B, C, H / 2^K, W / 2^K) features."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        c = config.features
        layers: list[nn.Module] = []
        cin = 3
        for _ in range(config.downsample):
            layers += [conv(cin, c, 5, stride=2), nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)]
            cin = c
        layers += [ResBlock(c) for _ in range(config.tower_blocks)]
        layers += [conv(c, c)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def concat_cost_volume(left: torch.Tensor, right: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, 2C, D, h, w): left features beside the right features moved right by each bin d.

    Bin d pairs left column x with right column x - d; columns with x < d see zeros.
    """
    b, c, h, w = left.shape
    volume = left.new_zeros(b, 2 * c, bins, h, w)
    for d in range(bins):
        volume[:, :c, d] = left
        if d == 0:
            volume[:, c:, d] = right
        elif d < w:
            volume[:, c:, d, :, d:] = right[..., :-d]
    return volume


class CostFilter(nn.Module):
    """3D convolutions over (B, 2C, D, h, w) to one matching cost per bin, (B, D, h, w)."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        cin = 2 * config.features
        layers: list[nn.Module] = []
        for _ in range(config.cost_layers):
            layers += [nn.Conv3d(cin, config.cost_channels, 3, padding=1), nn.BatchNorm3d(config.cost_channels),
                       nn.LeakyReLU(0.2, inplace=True)]
            cin = config.cost_channels
        layers.append(nn.Conv3d(cin, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        return self.net(volume)[:, 0]


def soft_argmin(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected bin under ``softmax(-cost)`` over dim 1: ((B, 1, h, w) bins, (B, D, h, w) probabilities)."""
    p = torch.softmax(-cost, dim=1)
    bins = torch.arange(cost.shape[1], device=cost.device, dtype=cost.dtype).view(1, -1, 1, 1)
    return (p * bins).sum(dim=1, keepdim=True), p


class Refinement(nn.Module):
    """One edge-aware refinement stage: residual correction of an upsampled disparity from the image."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        c, half = config.refine_channels, config.refine_channels // 2
        self.image = nn.Sequential(conv(3, half), nn.LeakyReLU(0.2, inplace=True),
                                   *[ResBlock(half) for _ in range(config.branch_blocks)])
        self.disparity = nn.Sequential(conv(1, half), nn.LeakyReLU(0.2, inplace=True),
                                       *[ResBlock(half) for _ in range(config.branch_blocks)])
        self.joint = nn.Sequential(*[ResBlock(c, d) for d in config.refine_dilations], conv(c, 1))

    def forward(self, disparity: torch.Tensor, image: torch.Tensor, search_range: float) -> torch.Tensor:
        """Refined (B, 1, h, w) disparity in pixels of this scale.

        The disparity branch sees disparity as a fraction of the search range (in pixels of this
        scale), so its input stays in [0, 1] whatever the scale; the correction is in pixels.
        """
        x = torch.cat([self.image(image), self.disparity(disparity / search_range)], dim=1)
        return F.relu(disparity + self.joint(x))


def to_network_input(image: torch.Tensor) -> torch.Tensor:
    """Scene-linear (B, 3+, H, W) to sRGB-encoded [-1, 1] RGB, the network's input."""
    v = image[:, :3].clamp(0.0, 1.0)
    srgb = torch.where(v <= 0.0031308, v * 12.92, 1.055 * v.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055)
    return srgb * 2.0 - 1.0


class StereoNet(nn.Module):
    """Disparity of the left view from a rectified pair (module doc).

    ``forward(left, right, max_disparity=None)`` returns a dict:

    * ``disparity`` (B, 1, H, W): the final estimate, pixels.
    * ``levels``: list of (B, 1, H, W) estimates from coarse to fine (the coarse soft-argmin and each
      refinement, upsampled to full size), for a loss at every scale.
    * ``probabilities`` (B, D, h, w) and ``expected_bin`` (B, 1, h, w) at 1/2^K (for confidence).
    """

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.config = config
        self.tower = FeatureTower(config)
        self.cost = CostFilter(config)
        self.refine = nn.ModuleList([Refinement(config) for _ in range(config.downsample)])

    def bins_for(self, max_disparity: int | None) -> int:
        """Cost-volume bins covering ``max_disparity`` full-resolution pixels."""
        limit = self.config.max_disparity if max_disparity is None else max_disparity
        return max(2, -(-int(limit) // self.config.factor))

    def forward(self, left: torch.Tensor, right: torch.Tensor, max_disparity: int | None = None
                ) -> dict[str, Any]:
        h, w = left.shape[-2:]
        k = self.config.factor
        pad_h, pad_w = (-h) % k, (-w) % k
        x = torch.cat([to_network_input(left), to_network_input(right)])
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        features = self.tower(x)
        fl, fr = features.chunk(2)
        bins = self.bins_for(max_disparity)
        cost = self.cost(concat_cost_volume(fl, fr, bins))
        expected, probabilities = soft_argmin(cost)

        image = x[: left.shape[0]]
        disparity = expected  # pixels at 1/2^K: one bin is one pixel there
        full = (h + pad_h, w + pad_w)
        levels = [_upsample(disparity, full)]
        for i, stage in enumerate(self.refine):
            size = (disparity.shape[-2] * 2, disparity.shape[-1] * 2)
            disparity = _upsample(disparity, size)
            search_range = bins * k / 2 ** (self.config.downsample - 1 - i)
            disparity = stage(disparity, F.interpolate(image, size=size, mode="area"), search_range)
            levels.append(_upsample(disparity, full))
        crop = [lvl[..., :h, :w] for lvl in levels]
        return {"disparity": crop[-1], "levels": crop, "probabilities": probabilities, "expected_bin": expected,
                "padded_size": full}


def _upsample(disparity: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a disparity map, its values scaled with the width."""
    if tuple(disparity.shape[-2:]) == tuple(size):
        return disparity
    scale = size[1] / disparity.shape[-1]
    return F.interpolate(disparity, size=size, mode="bilinear", align_corners=False) * scale


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


