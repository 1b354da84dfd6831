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

* Metric depth (optional, ``depth_l1``): L1 of depth in metres divided by the stack's focus span in
  metres, the MAE the field reports. Dioptre and relative errors are small for far pixels whose
  slices barely differ in blur, while the MAE in metres is largest there; this term makes the
  network hedge those pixels towards the metric median.
* Slice choice (optional, ``slice_ce``): cross-entropy of the slice weights against the two
  slices bracketing the true inverse depth, split linearly between them (the target whose
  expectation is the truth), so the weights learn to pick the in-focus slice, not to hedge.

* Occlusion halo (optional, ``halo``): the depth terms count ``1 + halo`` times on the backdrop side
  of an occlusion, pixels with a truth much nearer (a quarter of the focus span in dioptres) within
  ``halo_radius`` px. A near object's sharp edge lies inside those pixels' focus windows in the near
  slices, so they read near; on the validation folders they are 9-16% of the scored pixels and
  40-50% of the MAE (models/weights/dff_guided.md).

Valid pixels: finite, positive ground-truth depth. With ``in_range_only`` the depth terms count only
pixels whose ground truth lies within the stack's focus range, the pixels the field scores (seed 004's
FoD500 protocol). Beyond the farthest focus distance a backdrop looks the same at 1.6 m and at 3 m, so
its clamped target teaches the network to push everything that looks far to the far end; without
those pixels the far targets are the in-range ones the metric counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.colour import linear_to_srgb


@dataclass(frozen=True)
class LossWeights:
    inverse_depth: float = 1.0
    relative_depth: float = 1.0
    aif: float = 1.0
    defocus: float = 0.1
    slice_ce: float = 0.0
    depth_l1: float = 0.0
    in_range_only: bool = False
    halo: float = 0.0
    halo_radius: int = 16


def slice_targets(inv_focus: torch.Tensor, gt_inv: torch.Tensor) -> torch.Tensor:
    """(B, N) slice dioptres, (B, 1, H, W) target dioptres within their range -> (B, N, 1, H, W)
    weights on the two slices bracketing each target, linear in dioptres (any slice order)."""
    b, n = inv_focus.shape
    h, w = gt_inv.shape[-2:]
    sorted_inv, order = inv_focus.sort(dim=1)
    values = gt_inv.reshape(b, h * w).contiguous()
    k = torch.searchsorted(sorted_inv.contiguous(), values).clamp(1, n - 1)
    lower, upper = sorted_inv.gather(1, k - 1), sorted_inv.gather(1, k)
    frac = ((values - lower) / (upper - lower).clamp_min(1e-9)).clamp(0.0, 1.0)
    target_sorted = torch.zeros(b, n, h * w, dtype=gt_inv.dtype, device=gt_inv.device)
    target_sorted.scatter_add_(1, (k - 1).unsqueeze(1), (1 - frac).unsqueeze(1))
    target_sorted.scatter_add_(1, k.unsqueeze(1), frac.unsqueeze(1))
    target = torch.empty_like(target_sorted)
    target.scatter_(1, order.unsqueeze(-1).expand(b, n, h * w), target_sorted)
    return target.view(b, n, 1, h, w)


def occlusion_halo(gt_inv: torch.Tensor, span: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, 1, H, W) pixels with a truth nearer by more than a quarter of ``span`` (both dioptres)
    within ``radius`` px: the backdrop side of an occlusion."""
    nearest = F.max_pool2d(gt_inv, 2 * radius + 1, stride=1, padding=radius)
    return (nearest - gt_inv) > 0.25 * span


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
    gt_inv_raw = torch.where(valid, 1.0 / gt.clamp_min(1e-6), lo)
    gt_inv = gt_inv_raw.clamp(lo, hi)
    scored = valid & (gt_inv_raw >= lo) & (gt_inv_raw <= hi) if weights.in_range_only else valid
    count = scored.sum().clamp_min(1)
    span = (hi - lo).clamp_min(1e-3)
    emphasis = torch.ones_like(gt)
    if weights.halo > 0:
        emphasis = emphasis + weights.halo * occlusion_halo(gt_inv, span, weights.halo_radius).to(gt.dtype)

    def masked_mean(x: torch.Tensor) -> torch.Tensor:
        return torch.where(scored, x * emphasis, torch.zeros_like(x)).sum() / count

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
        # every valid pixel: blur is defined beyond the focus range too
        parts["defocus"] = torch.where(valid.unsqueeze(1), error, torch.zeros_like(error)).sum() / (
            valid.sum().clamp_min(1) * out["defocus"].shape[1])
    if weights.depth_l1 > 0:
        fd = batch["focus_distances"].to(gt.dtype)
        near, far = fd.amin(dim=1).view(-1, 1, 1, 1), fd.amax(dim=1).view(-1, 1, 1, 1)
        target = torch.where(valid, gt, near).clamp(near, far)
        parts["depth_l1"] = masked_mean((out["depth"] - target).abs() / (far - near).clamp_min(1e-3))
    if weights.slice_ce > 0:
        target = slice_targets(inv_focus, gt_inv)
        ce = -(target * out["weights"].clamp_min(1e-8).log()).sum(dim=1)
        parts["slice_ce"] = masked_mean(ce)
    total = sum(getattr(weights, name) * value for name, value in parts.items())
    return total, {name: float(value.detach()) for name, value in parts.items()}
