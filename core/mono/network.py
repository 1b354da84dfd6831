"""The built-in Mono Depth network (DeepLens, seed 003, section 3.1), torch only.

An encoder of MobileNet-style inverted-residual blocks (depthwise 3x3 convolutions, so that 512 px
runs in well under half a second on two CPU cores) reduces the image to 1/32 of its size; a
four-level pyramid pooling layer (bins 1x1, 2x2, 4x4, 8x8, as PSPNet) adds global context; a
decoder upsamples by 2 five times with a skip connection from the encoder at each level; two small
heads of three convolutions give normalised inverse depth and foreground segmentation.

Input: ``image`` (B, 3, H, W), **sRGB-encoded** (display-referred, not scene-linear) in [0, 1].
H and W must each be a multiple of 32 (:data:`MULTIPLE`), so that every skip connection lines up
with the upsampled decoder features; resize or pad other sizes before calling (see
:func:`padded_size`).

Output: a dict with ``inverse_depth`` (B, 1, H, W) in [0, 1] (a sigmoid; 1 = nearest, 0 =
farthest, relative: min-max normalised per image in training) and ``segmentation`` (B, 1, H, W)
foreground logits (the auxiliary head; apply a sigmoid for a probability).

Weight files follow core.weights (``format``, ``config``, ``state_dict``, ``meta``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import check
from ..weights import WEIGHTS_DIR, read_weights, save_weights
from ..weights import default_weights as _default_weights

MULTIPLE = 32  # the encoder's total stride: image sides must be a multiple of it
WEIGHT_FILES = ("mono_deeplens.pt", "mono_tiny.pt")  # preference order
WHAT = "Mono Depth"
RETRAIN = "make retrain-mono"
# Per-channel normalisation of the sRGB input (ImageNet statistics; the encoder is trained from scratch
# but centred inputs train faster).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MonoDepthConfig:
    """Hyper-parameters of :class:`MonoDepthNet`.

    ``widths``: channels at strides 2, 4, 8, 16 and 32. ``blocks``: inverted-residual blocks per
    stage (strides 4..32). ``expand``: the blocks' expansion ratio. ``pool_channels``: channels of
    each pyramid-pooling branch. ``decoder``: channels of the decoder at strides 16, 8, 4, 2 and 1.
    ``head``: channels of the two heads' hidden layers.
    """

    widths: tuple[int, ...] = (16, 24, 48, 96, 144)
    blocks: tuple[int, ...] = (1, 2, 2, 2)
    expand: int = 4
    pool_channels: int = 32
    decoder: tuple[int, ...] = (96, 64, 40, 24, 16)
    head: int = 16

    def __post_init__(self) -> None:
        check(len(self.widths) == 5, f"MonoDepthConfig.widths needs 5 entries, got {len(self.widths)}")
        check(len(self.blocks) == 4, f"MonoDepthConfig.blocks needs 4 entries, got {len(self.blocks)}")
        check(len(self.decoder) == 5, f"MonoDepthConfig.decoder needs 5 entries, got {len(self.decoder)}")
        check(all(w > 0 for w in (*self.widths, *self.decoder, self.head, self.pool_channels, self.expand))
              and all(b > 0 for b in self.blocks), "MonoDepthConfig sizes must be positive")

    @classmethod
    def named(cls, name: str) -> "MonoDepthConfig":
        """``default`` (about 0.5 M parameters, 2 MB) or ``tiny`` (for CI: trains in a minute on a CPU)."""
        check(name in CONFIGS, f"unknown Mono Depth configuration '{name}' (choose from {', '.join(CONFIGS)})")
        return CONFIGS[name]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "MonoDepthConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})


CONFIGS = {
    "default": MonoDepthConfig(),
    "tiny": MonoDepthConfig(widths=(8, 12, 16, 24, 32), blocks=(1, 1, 1, 1), expand=2, pool_channels=8,
                            decoder=(24, 16, 12, 8, 8), head=8),
}


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The smallest (H, W) at least ``(height, width)`` whose sides are multiples of :data:`MULTIPLE`."""
    return (-(-height // MULTIPLE) * MULTIPLE, -(-width // MULTIPLE) * MULTIPLE)


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class _InvertedResidual(nn.Module):
    """1x1 expand, depthwise 3x3 (stride 1 or 2), 1x1 project; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.body = nn.Sequential(_conv_bn(cin, hidden, 1), _conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                  _conv_bn(hidden, cout, 1, act=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class _SeparableConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1: the decoder's cheap 3x3 convolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_conv_bn(cin, cin, 3, groups=cin), _conv_bn(cin, cout, 1))


class _PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling: average-pool to bins x bins, 1x1 conv, upsample, concatenate."""

    BINS = (1, 2, 4, 8)

    def __init__(self, cin: int, branch: int, cout: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(_conv_bn(cin, branch, 1) for _ in self.BINS)
        self.fuse = _conv_bn(cin + branch * len(self.BINS), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(conv(F.adaptive_avg_pool2d(x, bins)), size=size, mode="bilinear", align_corners=False)
                  for bins, conv in zip(self.BINS, self.branches)]
        return self.fuse(torch.cat([x, *pooled], dim=1))


class _Head(nn.Sequential):
    """Three convolutions to one channel (DeepLens' multi-task heads); separable, as they run at half size."""

    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__(_SeparableConv(cin, hidden), _SeparableConv(hidden, hidden), nn.Conv2d(hidden, 1, 1))


class MonoDepthNet(nn.Module):
    """Normalised inverse depth and foreground segmentation from one sRGB image (see the module docstring)."""

    def __init__(self, config: MonoDepthConfig | None = None) -> None:
        super().__init__()
        self.config = config or MonoDepthConfig()
        c = self.config
        w = c.widths
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Sequential(_conv_bn(3, w[0], 3, 2), _SeparableConv(w[0], w[0]))
        stages = []
        for i, n in enumerate(c.blocks):
            blocks = [_InvertedResidual(w[i], w[i + 1], 2, c.expand)]
            blocks += [_InvertedResidual(w[i + 1], w[i + 1], 1, c.expand) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.pool = _PyramidPooling(w[4], c.pool_channels, c.decoder[0])
        # Decoder step k upsamples to the stride of encoder level 3-k (16, 8, 4, 2) and fuses its skip.
        skips = (w[3], w[2], w[1], w[0])
        ups = []
        cin = c.decoder[0]
        for k, skip in enumerate(skips):
            ups.append(_SeparableConv(cin + skip, c.decoder[k + 1]))
            cin = c.decoder[k + 1]
        self.decoder = nn.ModuleList(ups)
        self.depth_head = _Head(cin, c.head)
        self.segmentation_head = _Head(cin, c.head)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image`` (B, 3, H, W) sRGB in [0, 1], H and W multiples of 32 -> dict of (B, 1, H, W) maps."""
        h, w = image.shape[-2:]
        if h % MULTIPLE or w % MULTIPLE:
            raise ValueError(f"MonoDepthNet needs sides that are multiples of {MULTIPLE}, got {w}x{h}")
        x = self.stem((image - self.mean) / self.std)
        features = [x]
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        x = self.pool(x)
        for conv, skip in zip(self.decoder, reversed(features[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = conv(torch.cat([x, skip], dim=1))
        # The heads run at half resolution; bilinear x2 to full size is free and loses little.
        depth = F.interpolate(self.depth_head(x), size=(h, w), mode="bilinear", align_corners=False)
        seg = F.interpolate(self.segmentation_head(x), size=(h, w), mode="bilinear", align_corners=False)
        return {"inverse_depth": torch.sigmoid(depth), "segmentation": seg}


def default_weights() -> Path:
    """The shipped weights, in :data:`WEIGHT_FILES` order (``mono_deeplens.pt`` ships)."""
    return _default_weights(WEIGHT_FILES, WHAT, RETRAIN)


def save_model(path: str | Path, model: MonoDepthNet, meta: dict[str, Any]) -> None:
    """Write a MonoDepthNet's weights and description atomically (format: core.weights)."""
    save_weights(path, model, meta)


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> MonoDepthNet:
    """A MonoDepthNet in eval mode with the weights at ``path`` (default :func:`default_weights`)."""
    payload = read_weights(path if path is not None else default_weights(), WHAT)
    try:
        model = MonoDepthNet(MonoDepthConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        check(False, f"{path} is not a {WHAT} weights file: {exc}")
    model.meta = payload.get("meta", {})
    return model.to(device).eval()
