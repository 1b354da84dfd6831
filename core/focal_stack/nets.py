"""FocalStackNet: a permutation-invariant network from a focal stack to depth and all-in-focus.

In the spirit of DefocusNet (seed 002) and DfF in the Wild (seed 004):

* Every slice runs through one *shared* encoder-decoder (a U-Net), so any number of slices fits.
* After every block, each slice's features are concatenated with the maximum and the mean of all
  slices' features (global pooling across the stack, DefocusNet's "communication between
  branches") and mixed by a 1x1 convolution: each slice sees how sharp the others are, and the
  whole network stays equivariant to the order of the slices.
* Downsampling is max pooling: a strided convolution or an average would blur a sharp response
  away (the argument of seed 004's effective downsampling).
* Each slice ends in one logit per pixel, "this slice is in focus here"; a softmax across slices
  gives weights p_n. Depth is their expectation in dioptres, 1 / sum_n p_n / F_n (seed 004's
  normalised focus-probability regression, done in inverse depth where blur is linear), so it
  always lies within the stack's focus range and is invariant to the slices' order.
* A second per-slice output estimates the slice's defocus, |CoC| in pixels (DefocusNet's defocus
  map), supervised when the lens is known; it shapes the features towards blur, not appearance.
* The all-in-focus head (AiFNet's refining design) starts from sum_n p_n I_n and adds a residual
  from a few same-resolution convolutions over that image and the pooled slice features.

The ``guided`` configuration (``NetConfig.focus_prior``) also feeds every slice the classical
focus evidence of core.focal_stack (log modified Laplacian, raw and guided-filtered, normalised
across the stack) and adds ``prior_scale * log(filtered measure)`` to its focus logit. The
network's own logit starts at zero, so untrained it is a soft argmax of the classical cost volume.

The ``context`` configuration (``NetConfig.context``) adds a scene-context block at the coarsest
level: dilated convolutions over the stack-pooled features and a global average over the image,
added back to every slice. Far from the camera the slices of a short lens differ by a fraction of a
pixel of blur, so focus alone cannot tell a backdrop at 1.3 m from an object at 0.8 m; context (a
plane behind everything, occluded by the objects) can. The block's output starts at zero, so a
``context`` network initialised from ``guided`` weights computes exactly what they did.

Inputs are scene-linear; the network sees sRGB-encoded values (what its convolutions compare is
then about perceptually even) and each slice's normalised focus position within the stack. Only
Only torch and core are imported here: the training code lives in models.dff.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..colour import linear_to_srgb, srgb_to_linear

# Capped inverse depth: a slice focused at infinity has 0 dioptres; depth stays finite.
MIN_DIOPTRES = 1e-4


@dataclass(frozen=True)
class NetConfig:
    """Architecture hyper-parameters (stored with the weights)."""

    width: int = 16          # channels of the first level; doubled per level
    levels: int = 4          # resolution levels (input size should divide by 2 ** (levels - 1))
    aif_blocks: int = 2      # residual blocks of the all-in-focus head
    # "guided": feed each slice's classical focus evidence (modified Laplacian, guided-filtered,
    # normalised across the stack) to the encoder, and add prior_scale * log(focus measure) to
    # each slice's logit, so the untrained network is a soft argmax of the classical cost volume
    # and training learns a residual on top of it.
    focus_prior: bool = False
    # scene context at the coarsest level (see the module docstring)
    context: bool = False

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


CONFIGS = {
    "tiny": NetConfig(width=8, levels=3, aif_blocks=1),
    # between the two: four levels (an 8x wider view for texture-less surfaces) at a CPU step
    # cost close to tiny's; the one trained on the CPU-rendered Cycles data
    "small": NetConfig(width=12, levels=4, aif_blocks=2),
    "full": NetConfig(width=24, levels=4, aif_blocks=3),
    # small's architecture starting from the classical focus volume (see NetConfig.focus_prior)
    "guided": NetConfig(width=12, levels=4, aif_blocks=2, focus_prior=True),
    # guided plus the scene-context block (NetConfig.context); fine-tunes from guided weights
    "context": NetConfig(width=12, levels=4, aif_blocks=2, focus_prior=True, context=True),
}

# Floor of the focus measure (sRGB units per pixel) before its logarithm.
FOCUS_FLOOR = 1e-4
# Initial slope of the prior logit in log focus measure: the classical all-in-focus sharpness.
PRIOR_SCALE = 4.0
FOCUS_CHANNELS = 3


def focus_evidence(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classical focus evidence of a (B, N, 3, H, W) scene-linear stack.

    Returns ((B, N, 3, H, W) input channels, (B, N, 1, H, W) log of the guided-filtered modified
    Laplacian). The channels are normalised across the stack per pixel, so they are invariant to
    the slices' order and to the texture's contrast: raw and filtered log measure minus its stack
    maximum (divided by 4), and the softmax of the filtered one over the slices.
    """
    from core.focal_stack.depth_from_focus import filtered_focus_volume

    with torch.no_grad():
        raw, filtered = filtered_focus_volume(rgb)  # what depth_from_focus computes
        log_raw = raw.clamp_min(FOCUS_FLOOR).log()
        log_filtered = filtered.clamp_min(FOCUS_FLOOR).log()
        channels = torch.cat([(log_raw - log_raw.amax(dim=1, keepdim=True)) / 4,
                              (log_filtered - log_filtered.amax(dim=1, keepdim=True)) / 4,
                              torch.softmax(PRIOR_SCALE * log_filtered, dim=1)], dim=2)
    return channels, log_filtered


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


class StackMix(nn.Module):
    """Concatenate each slice's features with the stack's max and mean, mix by a 1x1 conv.

    Works on (B, N, C, H, W); equivariant to permutations of N, defined for any N >= 1.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c, h, w = x.shape
        pooled = torch.cat([x.amax(dim=1), x.mean(dim=1)], dim=1)  # (B, 2C, H, W)
        joint = torch.cat([x, pooled.unsqueeze(1).expand(b, n, 2 * c, h, w)], dim=2)
        return F.leaky_relu(self.mix(joint.flatten(0, 1)), 0.1).view(b, n, c, h, w) + x


class SceneContext(nn.Module):
    """Scene context for (B, N, C, h, w) coarse features: a residual shared by all slices.

    Pools the stack (maximum over N, so order-invariant), widens the view with 3x3 convolutions
    dilated 2, 4 and 8 (a receptive field of about 30 coarse pixels), adds a global average over
    the image, and mixes both by a 1x1 convolution that starts at zero.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.local = nn.Sequential(*[m for d in (2, 4, 8) for m in (
            nn.Conv2d(channels, channels, 3, padding=d, dilation=d), nn.LeakyReLU(0.1, inplace=True))])
        self.glob = nn.Linear(channels, channels)
        self.out = nn.Conv2d(2 * channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.amax(dim=1)  # (B, C, h, w)
        local = self.local(pooled)
        glob = F.leaky_relu(self.glob(pooled.mean(dim=(2, 3))), 0.1)[..., None, None].expand_as(local)
        return x + self.out(torch.cat([local, glob], dim=1)).unsqueeze(1)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FocalStackNet(nn.Module):
    """Focal stack (B, N, 3, H, W) + focus distances (B, N) -> depth, all-in-focus, defocus.

    ``forward`` returns a dict:

    * ``depth``: (B, 1, H, W) planar depth, metres, within the stack's focus range.
    * ``inverse_depth``: (B, 1, H, W) dioptres (what depth is the reciprocal of).
    * ``weights``: (B, N, 1, H, W) per-slice in-focus probabilities (sum to 1 over N).
    * ``defocus``: (B, N, 1, H, W) estimated |CoC| per slice, pixels.
    * ``aif``: (B, 3, H, W) all-in-focus image, scene-linear (``aif_srgb``: sRGB-encoded).

    H and W need not divide by anything: inputs are padded internally.
    """

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.config = config
        widths = [config.width * 2 ** i for i in range(config.levels)]
        self.widths = widths
        self.enc = nn.ModuleList()
        self.enc_mix = nn.ModuleList()
        cin = 4  # sRGB - 0.5, and the slice's focus position in [0, 1]
        if config.focus_prior:
            cin += FOCUS_CHANNELS
            self.prior_scale = nn.Parameter(torch.tensor(PRIOR_SCALE))
        for w in widths:
            self.enc.append(_conv(cin, w))
            self.enc_mix.append(StackMix(w))
            cin = w
        self.context = SceneContext(widths[-1]) if config.context else None
        self.dec = nn.ModuleList()
        self.dec_mix = nn.ModuleList()
        for i in range(config.levels - 2, -1, -1):
            self.dec.append(_conv(widths[i + 1] + widths[i], widths[i]))
            self.dec_mix.append(StackMix(widths[i]))
        self.head = nn.Conv2d(widths[0], 2, 3, padding=1)  # focus logit, defocus
        aif_width = max(16, widths[0] * 2)
        self.aif_in = nn.Conv2d(3 + 2 * widths[0], aif_width, 3, padding=1)
        self.aif_body = nn.Sequential(*[ResBlock(aif_width) for _ in range(config.aif_blocks)])
        self.aif_out = nn.Conv2d(aif_width, 3, 3, padding=1)
        nn.init.zeros_(self.aif_out.weight)
        nn.init.zeros_(self.aif_out.bias)
        if config.focus_prior:  # the focus logit starts as the prior alone
            with torch.no_grad():
                self.head.weight[0].zero_()
                self.head.bias[0].zero_()

    def forward(self, stack: torch.Tensor, focus_distances: torch.Tensor) -> dict[str, torch.Tensor]:
        b, n, _, h, w = stack.shape
        inv = 1.0 / focus_distances.to(stack.dtype)  # (B, N) dioptres, 0 at infinity
        lo = inv.amin(dim=1, keepdim=True)
        hi = inv.amax(dim=1, keepdim=True)
        position = (inv - lo) / (hi - lo).clamp_min(1e-6)

        multiple = 2 ** (self.config.levels - 1)
        ph, pw = (-h) % multiple, (-w) % multiple
        rgb = stack[:, :, :3]
        srgb = linear_to_srgb(rgb)  # the input carries no gradient, so the pow at 0 is harmless
        parts = [srgb - 0.5, position.view(b, n, 1, 1, 1).expand(b, n, 1, h, w)]
        prior = None
        if self.config.focus_prior:
            evidence, log_focus = focus_evidence(rgb)
            parts.append(evidence)
            prior = self.prior_scale * log_focus
        x = torch.cat(parts, dim=2)
        if ph or pw:
            c = x.shape[2]
            x = F.pad(x.flatten(0, 1), (0, pw, 0, ph), mode="replicate").view(b, n, c, h + ph, w + pw)

        skips = []
        for level, (conv, mix) in enumerate(zip(self.enc, self.enc_mix)):
            if level > 0:
                x = F.max_pool2d(x.flatten(0, 1), 2).view(b, n, x.shape[2], x.shape[3] // 2, x.shape[4] // 2)
            x = self._per_slice(conv, x)
            x = mix(x)
            skips.append(x)
        if self.context is not None:
            x = self.context(x)
        for i, (conv, mix) in enumerate(zip(self.dec, self.dec_mix)):
            skip = skips[-2 - i]
            up = F.interpolate(x.flatten(0, 1), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([up.view(b, n, -1, *skip.shape[-2:]), skip], dim=2)
            x = mix(self._per_slice(conv, x))
        features = x[..., :h, :w]

        out = self.head(features.flatten(0, 1)).view(b, n, 2, h, w)
        logits = out[:, :, :1] if prior is None else out[:, :, :1] + prior
        weights = torch.softmax(logits, dim=1)
        defocus = F.softplus(out[:, :, 1:])
        inverse_depth = (weights * inv.view(b, n, 1, 1, 1)).sum(dim=1).clamp_min(MIN_DIOPTRES)

        blend = (weights * srgb).sum(dim=1)
        pooled = torch.cat([features.amax(dim=1), (weights * features).sum(dim=1)], dim=1)
        residual = self.aif_out(self.aif_body(F.leaky_relu(self.aif_in(torch.cat([blend, pooled], dim=1)), 0.1)))
        aif_srgb = (blend + residual).clamp(0.0, 1.0)
        return {"depth": 1.0 / inverse_depth, "inverse_depth": inverse_depth, "weights": weights,
                "defocus": defocus, "aif": srgb_to_linear(aif_srgb), "aif_srgb": aif_srgb}

    @staticmethod
    def _per_slice(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[:2]
        y = module(x.flatten(0, 1))
        return y.view(b, n, *y.shape[1:])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
