"""Training loss of FocalStackNet: depth, all-in-focus and per-slice defocus.

* Depth, twice: L1 of inverse depth divided by the stack's focus span in dioptres (every stack
  counts alike, whatever its range), plus the relative error |d - g| / g, the AbsRel the model is
  judged by. The target is clamped to the stack's focus range: the network's output is a convex
  combination of the focus distances and cannot leave it, and depth outside the stack's range
  has no focus evidence to learn from (the papers exclude it from their scores too).
* All-in-focus: L1 on sRGB-encoded values (DefocusNet's AiF L1 term; its VGG perceptual term is
  left out, as no pretrained network can be fetched here).
* Defocus (DefocusNet's defocus map): L1 of the estimated |CoC| of each slice against
  ``defocus_scale`` |1/F_n - 1/g|, divided by ``defocus_scale`` (so in dioptres), when the batch
  knows the lens.

Valid pixels: finite, positive ground-truth depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.colour import linear_to_srgb


@dataclass(frozen=True)
class LossWeights:
    inverse_depth: float = 1.0
    relative_depth: float = 1.0
    aif: float = 1.0
    defocus: float = 0.1


def dff_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
             weights: LossWeights = LossWeights()) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (floats, for logging).

    Args:
        out: FocalStackNet's outputs.
        batch: ``depth`` (B, 1, H, W) metres, ``focus_distances`` (B, N) metres, ``aif``
            (B, 3, H, W) scene-linear (optional), ``defocus_scale`` (B,) px per dioptre (optional).
    """
    gt = batch["depth"]
    valid = torch.isfinite(gt) & (gt > 0)
    inv_focus = 1.0 / batch["focus_distances"].to(gt.dtype)
    lo = inv_focus.amin(dim=1).view(-1, 1, 1, 1)
    hi = inv_focus.amax(dim=1).view(-1, 1, 1, 1)
    gt_inv = torch.where(valid, 1.0 / gt.clamp_min(1e-6), lo).clamp(lo, hi)
    count = valid.sum().clamp_min(1)

    def masked_mean(x: torch.Tensor) -> torch.Tensor:
        return torch.where(valid, x, torch.zeros_like(x)).sum() / count

    span = (hi - lo).clamp_min(1e-3)
    parts = {
        "inverse_depth": masked_mean((out["inverse_depth"] - gt_inv).abs() / span),
        "relative_depth": masked_mean((out["depth"] * gt_inv - 1.0).abs()),
    }
    if "aif" in batch:
        parts["aif"] = (out["aif_srgb"] - linear_to_srgb(batch["aif"])).abs().mean()
    if "defocus_scale" in batch:
        scale = batch["defocus_scale"].to(gt.dtype).view(-1, 1, 1, 1, 1)
        target = (inv_focus.view(*inv_focus.shape, 1, 1, 1) - gt_inv.unsqueeze(1)).abs()
        error = (out["defocus"] / scale - target).abs()
        parts["defocus"] = torch.where(valid.unsqueeze(1), error, torch.zeros_like(error)).sum() / (
            count * out["defocus"].shape[1])
    total = sum(getattr(weights, name) * value for name, value in parts.items())
    return total, {name: float(value.detach()) for name, value in parts.items()}
