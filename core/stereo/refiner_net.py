"""SGBM-guided StereoNet refinement ("StereoNet-R"): StereoNet's hierarchical, image-guided residual
refinement applied to a classical disparity instead of to StereoNet's own 1/8 soft-argmin.

What it is, plainly: **SGBM + learned refinement.** The coarse estimate comes from
:func:`core.stereo.sgbm.stereo_sgbm` (semi-global matching, left-right check, background-side
guided fill, confidence); the network only corrects it. It does not search the full disparity range
itself; it looks a few pixels either side of the current estimate at every scale.

* A shared (Siamese) two-layer feature extractor runs on both views at full resolution; its
  features are area-pooled to 1/8, 1/4, 1/2 and 1.
* At each scale, from coarse to fine, the current estimate is SGBM's disparity (area-pooled to that
  scale) plus the correction accumulated so far. A **local cost volume** compares the left
  features with the right features warped by that estimate plus each offset in ``-r .. r`` pixels
  of that scale (±16 px at 1/8 for r = 2), so the network sees where the photometric evidence
  disagrees with SGBM.
* The refinement stage (StereoNet's: convolution then dilated residual blocks) takes the left
  image, the estimate and the correction coming from the coarser scale (as fractions of the
  search range), SGBM's confidence, its valid (left-right-consistent) and occluded masks, the
  matching cost at SGBM's own disparity and the local costs around the estimate. It predicts a
  gate in (0, 1) for the incoming correction (so a fine scale can drop a coarse correction that
  bleeds across an edge or that its evidence contradicts) and a residual in pixels of that scale.
  Its last convolution starts at zero, so an untrained network returns SGBM's disparity exactly
  and training moves away from it only where that pays.

Any H, W works: inputs are padded (replicate) to a multiple of 8 and the outputs cropped back.
Disparity is ``x_left - x_right`` in pixels of the input, non-negative.

Only torch is imported here: core.stereo.learned loads this module without the training code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..box_filter import box_mean

from .nets import conv, to_network_input

KIND = "sgbm_refine"


@dataclass(frozen=True)
class GuidedConfig:
    """Hyper-parameters of :class:`GuidedStereoNet` (stored with the weights).

    Attributes:
        kind: always ``sgbm_refine``; tells the loader which network a weight file holds.
        features: channels of the shared feature extractor.
        downsample: K, the coarsest scale is 1/2^K.
        radius: the local cost volume looks ``-radius .. radius`` pixels of each scale around the
            current estimate.
        coarse_channels, fine_channels: channels of the refinement stages at 1/8 and 1/4, and at
            1/2 and 1.
        coarse_dilations, fine_dilations: dilations of their residual blocks.
        max_disparity: SGBM's search range when none is asked for and the image width gives none
            (the loader uses SGBM's default of an eighth of the width).
        normalize: feed the network locally contrast-normalised views (:func:`local_normalize`)
            instead of sRGB colours, so that it sees edges and texture but not the absolute
            colours and brightness of the rendered training scenes.
    """

    kind: str = KIND
    features: int = 16
    downsample: int = 3
    radius: int = 2
    coarse_channels: int = 32
    fine_channels: int = 16
    coarse_dilations: tuple[int, ...] = (1, 2, 4, 8, 1)
    fine_dilations: tuple[int, ...] = (1, 2, 1)
    max_disparity: int = 128
    normalize: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> "GuidedConfig":
        values = dict(values)
        for key in ("coarse_dilations", "fine_dilations"):
            if key in values:
                values[key] = tuple(values[key])
        return GuidedConfig(**values)

    @property
    def factor(self) -> int:
        return 2 ** self.downsample


class PlainResBlock(nn.Module):
    """Two 3x3 convolutions with leaky ReLU around an identity shortcut (no batch norm: the
    statistics of rendered and real pairs differ, and the batches here are small)."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.a = conv(channels, channels, dilation=dilation)
        self.b = conv(channels, channels, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.b(F.leaky_relu(self.a(x), 0.2)), 0.2)


class Features(nn.Module):
    """(B, 3, H, W) network input to (B, C, H, W) matching features, unit length per pixel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(conv(3, channels), nn.LeakyReLU(0.2, inplace=True), conv(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)


def local_normalize(x: torch.Tensor, window: int = 9, eps: float = 0.02) -> torch.Tensor:
    """Each channel minus its local mean over by its local deviation (``window`` box), squashed to
    (-1, 1) with tanh: brightness, contrast and colour cast drop out, edges and texture stay."""
    mean = box_mean(x, window)
    var = box_mean(x * x, window) - mean * mean
    return torch.tanh((x - mean) / (var.clamp_min(0.0).sqrt() + eps) / 2.0)


def warp_right(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """The right-view map sampled where each left pixel lands, ``x - disparity`` (bilinear, border)."""
    b, _, h, w = right.shape
    xs = torch.arange(w, device=right.device, dtype=right.dtype).view(1, 1, w)
    ys = torch.arange(h, device=right.device, dtype=right.dtype).view(1, h, 1)
    gx = (xs - disparity[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys * (2.0 / max(h - 1, 1)) - 1.0).expand(b, h, w)
    return F.grid_sample(right, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def local_costs(left: torch.Tensor, right: torch.Tensor, disparity: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, 2r+1, H, W): mean absolute feature difference at ``disparity + k`` for k in -r .. r."""
    return torch.cat([(left - warp_right(right, disparity + k)).abs().mean(dim=1, keepdim=True)
                      for k in range(-radius, radius + 1)], dim=1)


class RefineStage(nn.Module):
    """One scale: a gate on the correction coming from the coarser scale and a residual correction
    of its own (pixels of this scale), from the image and the matching evidence."""

    INPUTS = 3 + 6  # image; estimate / range, incoming correction / range, confidence, valid, occluded,
    #                 cost at SGBM's own disparity (+ 2r+1 costs around the estimate)

    def __init__(self, channels: int, dilations: tuple[int, ...], radius: int) -> None:
        super().__init__()
        self.head = nn.Sequential(conv(self.INPUTS + 2 * radius + 1, channels), nn.LeakyReLU(0.2, inplace=True))
        self.body = nn.Sequential(*[PlainResBlock(channels, d) for d in dilations])
        self.out = conv(channels, 2)  # residual, gate logit
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual in pixels of this scale, gate in (0, 1) for the incoming correction)."""
        out = self.out(self.body(self.head(inputs)))
        return out[:, :1], torch.sigmoid(out[:, 1:] + 2.0)


def _pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    return x if factor == 1 else F.avg_pool2d(x, factor)


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode="bilinear",
                                                                      align_corners=False)


class GuidedStereoNet(nn.Module):
    """Refined disparity of the left view from a rectified pair and SGBM's result for it (module doc).

    ``forward(left, right, sgbm, confidence, valid, occluded, search_range)``: images (B, 3, H, W)
    scene-linear; SGBM's dense disparity (pixels), confidence in [0, 1], and its valid and occluded
    masks, all (B, 1, H, W); ``search_range`` the disparity range SGBM searched (pixels). Returns a
    dict: ``disparity`` (B, 1, H, W), ``levels`` (the estimate after each scale, upsampled to full
    size, coarse to fine) and ``padded_size``.
    """

    def __init__(self, config: GuidedConfig = GuidedConfig()) -> None:
        super().__init__()
        self.config = config
        self.features = Features(config.features)
        stages = []
        for i in range(config.downsample + 1):  # scale 1/2^(K - i)
            coarse = config.downsample - i >= 2
            stages.append(RefineStage(config.coarse_channels if coarse else config.fine_channels,
                                      config.coarse_dilations if coarse else config.fine_dilations, config.radius))
        self.stages = nn.ModuleList(stages)

    def forward(self, left: torch.Tensor, right: torch.Tensor, sgbm: torch.Tensor, confidence: torch.Tensor,
                valid: torch.Tensor, occluded: torch.Tensor, search_range: float) -> dict[str, Any]:
        h, w = left.shape[-2:]
        k = self.config.factor
        pad_h, pad_w = (-h) % k, (-w) % k
        images = torch.cat([to_network_input(left), to_network_input(right)])
        if self.config.normalize:
            images = local_normalize(images)
        guide = torch.cat([sgbm.float(), confidence.float(), valid.float(), occluded.float()], dim=1)
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
            guide = F.pad(guide, (0, pad_w, 0, pad_h), mode="replicate")
        full = images.shape[-2:]
        features = self.features(images)
        b = left.shape[0]
        image_l = images[:b]
        search = max(float(search_range), 1.0)

        correction = None
        levels = []
        for i, stage in enumerate(self.stages):
            factor = 2 ** (self.config.downsample - i)
            g = _pool(guide, factor)
            base = g[:, :1] / factor  # SGBM's disparity in pixels of this scale
            size = base.shape[-2:]
            incoming = base.new_zeros(base.shape) if correction is None else _upsample(correction, size) * 2.0
            estimate = (base + incoming).clamp_min(0.0)
            f = _pool(features, factor)
            costs = local_costs(f[:b], f[b:], estimate, self.config.radius)
            own = local_costs(f[:b], f[b:], base, 0)
            scale = factor / search
            inputs = torch.cat([_pool(image_l, factor), estimate * scale, incoming * scale, g[:, 1:], own, costs],
                               dim=1)
            residual, gate = stage(inputs)
            correction = gate * incoming + residual
            disparity = base + correction
            if not self.training:
                # Clamp only at inference: a clamp in training (StereoNet's ReLU) has no gradient
                # below zero, and pixels pushed there could never come back.
                disparity = disparity.clamp_min(0.0)
            levels.append(_upsample(disparity, full) * factor)
        crop = [lvl[..., :h, :w] for lvl in levels]
        return {"disparity": crop[-1], "levels": crop, "padded_size": tuple(full)}
