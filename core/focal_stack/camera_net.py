"""CameraNet: a network that reads the physical cost volume, so one set of weights serves any camera.

FocalStackNet (core.focal_stack.nets) looks at the slices themselves and learns what blur means
for the camera it was trained on. CameraNet never sees a slice. Its input is the evidence of
core.focal_stack.defocus_volume, which is already expressed in the stack's own blur: for every
depth hypothesis, how well each slice matches the all-in-focus estimate blurred by the thin-lens
CoC that this camera (focal length, f-number, sensor, focus distances) predicts there. That is
the approach of Fujimura et al. (IJCV 2023): make the network's input camera-invariant by building
the defocus model into it, then learn only what the model misses. Here that is the read-out: where
the scores are flat (texture-less surfaces, far backdrops whose slices differ by under a pixel),
which neighbours to follow; where they are bimodal (occlusion halos), which mode is the surface.

Input features (at the cost volume's half resolution, h = ceil(H / 2)):

* the log-scores resampled onto :data:`BINS` positions evenly spaced over the focus range in
  dioptres (position t in [0, 1]: 0 the farthest focus, 1 the nearest), as log-probabilities
  and as probabilities: 2 x BINS channels;
* the physical read-out (its depth as t, its spread as a fraction of the range);
* the guide (sRGB luminance of the all-in-focus estimate) and its gradient magnitude;
* two constants per stack: the blur in pixels that separates the nearest and farthest focus
  (log-scaled: how decisive the evidence can be) and the slice count;
* optionally (``CameraNetConfig.focus_evidence``) the depth-from-focus part of the scores on its
  own, resampled onto the bins.

Output: BINS logits, the input log-probabilities plus a correction from a small U-Net whose last
layer starts at zero, and a gate g per pixel. Depth is g times the physical read-out (its parabola
peak: precise where the evidence is sharp) plus 1 - g times the softmax expectation of t (what the
network makes of it where it is not), so it always lies within the focus range; its uncertainty is
the softmax's spread. Untrained, g is one half. Only torch is imported here; training lives in
models.dff.train_camera.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import check
from .defocus_volume import DefocusVolume, blur_span_px, interpolate_slices, peak_and_spread

BINS = 16
_LOG_FLOOR = -20.0  # log-probabilities below this carry no information, only round-off
_SPAN_SCALE = math.log(64.0)  # log blur span of 64 px reads as 1


@dataclass(frozen=True)
class CameraNetConfig:
    """Hyper-parameters: ``width`` channels at full (half-resolution) scale, doubling per level up
    to ``4 * width``; ``levels`` downsamplings."""

    width: int = 12
    levels: int = 3
    bins: int = BINS
    focus_evidence: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def feature_count(bins: int = BINS, focus_evidence: bool = False) -> int:
    """Input channels: 2 bins + 6, plus ``bins`` with the focus evidence on its own."""
    return (3 if focus_evidence else 2) * bins + 6


def bin_positions(volume: DefocusVolume, bins: int = BINS) -> torch.Tensor:
    """(bins,) inverse depths in dioptres, evenly spaced over the focus range, ascending."""
    lo, span = volume.focus_range
    return torch.linspace(lo, lo + span, bins, dtype=torch.float64)


def volume_features(volume: DefocusVolume, bins: int = BINS, focus_evidence: bool = False) -> torch.Tensor:
    """The network's input for one stack: (1, :func:`feature_count`, h, w) float32 (see the module
    doc). ``focus_evidence`` adds the depth-from-focus part of the scores on its own (resampled to
    the bins, log focus measure relative to the best), so the network can weigh it against the
    blur matching."""
    scores = volume.scores.to(torch.float32)
    device = scores.device
    hyp = volume.hypotheses.to(device)
    at = bin_positions(volume, bins).to(device)
    resampled = interpolate_slices(scores, hyp, at)  # (bins, 1, h, w)
    log_p = torch.log_softmax(resampled, dim=0).clamp_min(_LOG_FLOOR)
    lo, span = volume.focus_range
    peak, spread = peak_and_spread(scores, volume.hypotheses)
    guide = volume.guide.to(torch.float32)
    gy = F.pad(guide[..., 1:, :] - guide[..., :-1, :], (0, 0, 0, 1))
    gx = F.pad(guide[..., :, 1:] - guide[..., :, :-1], (0, 1, 0, 0))
    blur_span = blur_span_px(volume.coc_per_dioptre, volume.inverse_focus)
    h, w = scores.shape[-2:]
    constants = torch.tensor([math.log(max(blur_span, 1.0)) / _SPAN_SCALE, volume.slices.shape[0] / 10.0],
                             dtype=torch.float32, device=device).view(1, 2, 1, 1).expand(1, 2, h, w)
    parts = [
        log_p[:, 0][None] / -_LOG_FLOOR,
        torch.softmax(resampled, dim=0)[:, 0][None],
        (peak - lo) / span, spread / span,
        guide, (gx * gx + gy * gy).sqrt() * 4.0,
        constants,
    ]
    if focus_evidence:
        check(volume.focus_scores is not None, "this CameraNet reads the focus measures: keep focus_weight > 0")
        focus = interpolate_slices(volume.focus_scores.to(torch.float32), hyp, at)
        parts.append(focus[:, 0][None].clamp_min(-10.0) / 10.0)
    return torch.cat(parts, dim=1)


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


class CameraNet(nn.Module):
    """(B, :func:`feature_count`, h, w) features to (B, bins, h, w) logits over the focus range's bins."""

    def __init__(self, config: CameraNetConfig = CameraNetConfig()) -> None:
        super().__init__()
        self.config = config
        widths = [min(config.width * 2 ** i, 4 * config.width) for i in range(config.levels + 1)]
        self.stem = _block(feature_count(config.bins, config.focus_evidence), widths[0])
        self.down = nn.ModuleList(_block(widths[i], widths[i + 1], dilation=2 if i == config.levels - 1 else 1)
                                  for i in range(config.levels))
        # Scene context at the coarsest level: the image-wide mean of its features, mixed back in.
        self.context = nn.Conv2d(2 * widths[-1], widths[-1], 1)
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(config.levels)))
        self.head = nn.Conv2d(widths[0], config.bins + 1, 3, padding=1)  # logits' correction, and the gate
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The bins' logits (B, bins, h, w) and the gate (B, 1, h, w) in [0, 1]."""
        bins = self.config.bins
        skips = [self.stem(features)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2, ceil_mode=True)))
        x = skips.pop()
        pooled = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
        x = x + F.leaky_relu(self.context(torch.cat([x, pooled], dim=1)), 0.1)
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        out = self.head(x)
        return features[:, :bins] * -_LOG_FLOOR + out[:, :bins], torch.sigmoid(out[:, bins:])

    def position(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The depth as a position t in [0, 1] over the focus range (0: the farthest focus, linear
        in dioptres) and its spread in t, both (B, 1, h, w), from the features (see the module doc)."""
        return read_position(features, *self(features))


def read_position(features: torch.Tensor, logits: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`CameraNet.position` from the network's outputs: the gate's blend of the physical
    peak (a feature channel) and the softmax expectation, and the softmax's spread, (B, 1, h, w)."""
    bins = logits.shape[1]
    soft, spread = expected_position(logits)
    peak = features[:, 2 * bins:2 * bins + 1].clamp(0.0, 1.0)
    return gate * peak + (1.0 - gate) * soft, spread


def expected_position(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, bins, h, w) logits to the softmax's expected position t in [0, 1] and its spread in t,
    both (B, 1, h, w)."""
    bins = logits.shape[1]
    t = torch.linspace(0.0, 1.0, bins, device=logits.device, dtype=logits.dtype).view(1, bins, 1, 1)
    p = torch.softmax(logits, dim=1)
    mean = (p * t).sum(dim=1, keepdim=True)
    spread = (p * (t - mean) ** 2).sum(dim=1, keepdim=True).clamp_min(0.0).sqrt()
    return mean, spread
