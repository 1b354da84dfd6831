"""Losses of the built-in Mono Depth network, all on normalised inverse depth (1 = nearest).

* :func:`normalised_l1` is DeepLens' normalised loss (seed 003, Eq. 5): per image,
  sum |e|^(alpha+1) / sum |e|^alpha with alpha = 1.5, which weights each pixel by its own error so
  that hard pixels (depth edges, far backgrounds) dominate and easy ones are ignored.
* :func:`scale_shift_invariant` aligns the prediction to the truth by least squares (scale and
  shift, per image) before an L1, so it does not punish a prediction that is right up to an affine
  map (MiDaS' trimmed-free variant).
* :func:`gradient_matching` penalises the image gradient of the aligned residual at four scales
  (MiDaS): it is large only where the prediction's depth edges miss the truth's.
* :func:`segmentation_bce` the auxiliary foreground head (DeepLens Eq. 1's second term; BCE here).

:func:`mono_loss` adds the terms with weights (:class:`LossWeights`). Every input is (B, 1, H, W).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms of :func:`mono_loss` (0 leaves a term out)."""

    l1: float = 0.0
    normalised: float = 1.0
    ssi: float = 0.0
    gradient: float = 0.0
    segmentation: float = 0.1  # DeepLens' gamma
    alpha: float = 1.5

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def normalised_l1(prediction: torch.Tensor, target: torch.Tensor, alpha: float = 1.5, eps: float = 1e-6) -> torch.Tensor:
    """DeepLens Eq. 5, per image then averaged over the batch."""
    error = (prediction - target).abs().flatten(1) + eps
    return ((error ** (alpha + 1.0)).sum(1) / (error ** alpha).sum(1)).mean()


def align_scale_shift(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``prediction`` mapped by the per-image least-squares scale and shift that best fits ``target``."""
    p, t = prediction.flatten(1), target.flatten(1)
    pm, tm = p.mean(1, keepdim=True), t.mean(1, keepdim=True)
    scale = ((p - pm) * (t - tm)).sum(1, keepdim=True) / ((p - pm) ** 2).sum(1, keepdim=True).clamp_min(eps)
    return ((p - pm) * scale + tm).view_as(prediction)


def scale_shift_invariant(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (align_scale_shift(prediction, target) - target).abs().mean()


def gradient_matching(prediction: torch.Tensor, target: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Mean |grad (aligned prediction - target)| over ``scales`` dyadic scales."""
    residual = align_scale_shift(prediction, target) - target
    total = prediction.new_zeros(())
    for s in range(scales):
        if s:
            residual = F.avg_pool2d(residual, 2)
        if min(residual.shape[-2:]) < 2:
            break
        gx = (residual[..., :, 1:] - residual[..., :, :-1]).abs().mean()
        gy = (residual[..., 1:, :] - residual[..., :-1, :]).abs().mean()
        total = total + gx + gy
    return total


def segmentation_bce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, mask)


def mono_loss(output: dict[str, torch.Tensor], target: torch.Tensor, mask: torch.Tensor,
              weights: LossWeights = LossWeights()) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the terms and each term's value (for logs)."""
    pred = output["inverse_depth"]
    terms = {}
    if weights.l1:
        terms["l1"] = (weights.l1, (pred - target).abs().mean())
    if weights.normalised:
        terms["normalised"] = (weights.normalised, normalised_l1(pred, target, weights.alpha))
    if weights.ssi:
        terms["ssi"] = (weights.ssi, scale_shift_invariant(pred, target))
    if weights.gradient:
        terms["gradient"] = (weights.gradient, gradient_matching(pred, target))
    if weights.segmentation:
        terms["segmentation"] = (weights.segmentation, segmentation_bce(output["segmentation"], mask))
    total = sum(w * v for w, v in terms.values())
    return total, {k: float(v.detach()) for k, (_, v) in terms.items()}
