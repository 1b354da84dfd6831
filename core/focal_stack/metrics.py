"""Depth and all-in-focus metrics as the depth-from-focus literature reports them.

Definitions follow AiFDepthNet's and DfF in the Wild's evaluation (seed 004, Sec. 4): every metric
is computed *per image* over its valid pixels, then averaged over the images (so RMSE is the mean of
per-image RMSEs, not the RMSE of all pixels pooled):

* MAE = mean |d - g|, MSE = mean (d - g)^2, RMSE = sqrt(MSE), RMSE log = sqrt(mean (ln d - ln g)^2)
* AbsRel = mean |d - g| / g, SqRel = mean (d - g)^2 / g
* delta_k = fraction of pixels with max(d / g, g / d) < 1.25^k, k = 1, 2, 3
* Bump (bumpiness, from the 4D light-field benchmark): the Frobenius norm of the Hessian of d - g
  by Scharr derivatives (scikit-image's normalisation: [3, 10, 3] / 16 smoothing, [1, 0, -1]
  difference, edges replicated), clipped at 0.05, averaged over the valid pixels, times 100.

d is the estimate, g the ground truth, both planar depth in metres; pixels are valid where g > 0
and finite, and optionally inside a caller's mask (the papers also report the range between the
nearest and farthest focus distance). All-in-focus images are compared with PSNR and SSIM on
display-referred sRGB (core.metrics).
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

from ..errors import check
from ..metrics import display, psnr, ssim

DEPTH_METRICS = ("MAE", "MSE", "RMSE", "RMSE log", "AbsRel", "SqRel", "Bump", "delta1", "delta2", "delta3")
AIF_METRICS = ("PSNR", "SSIM")


def _scharr(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d/dx and d/dy of (B, 1, H, W) by Scharr kernels, edges replicated."""
    smooth = x.new_tensor([3.0, 10.0, 3.0]) / 16.0
    diff = x.new_tensor([1.0, 0.0, -1.0])
    kx = (smooth.view(3, 1) * diff.view(1, 3)).view(1, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(p, kx), F.conv2d(p, ky)


def bumpiness_map(pred: torch.Tensor, gt: torch.Tensor, clip: float = 0.05) -> torch.Tensor:
    """(B, 1, H, W) clipped Frobenius norm of the Hessian of ``pred - gt``."""
    diff = pred.to(torch.float64) - gt.to(torch.float64)
    dx, dy = _scharr(diff)
    dxx, dxy = _scharr(dx)
    dyx, dyy = _scharr(dy)
    return (dxx * dxx + dxy * dxy + dyx * dyx + dyy * dyy).sqrt().clamp(max=clip)


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image depth metrics.

    Args:
        pred, gt: (B, 1, H, W) planar depth in metres (estimate and ground truth).
        mask: optional (B, 1, H, W) bool, pixels to score (intersected with g > 0, finite).

    Returns:
        {name: (B,) float64 tensor} for each of :data:`DEPTH_METRICS`; an image with no valid
        pixel gets NaN, which :class:`MetricTable` leaves out of the average.
    """
    check(pred.shape == gt.shape, f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ")
    check(pred.dim() == 4 and pred.shape[1] == 1, f"expected (B, 1, H, W) depth, got {tuple(pred.shape)}")
    d, g = pred.to(torch.float64), gt.to(torch.float64)
    valid = torch.isfinite(g) & (g > 0) & torch.isfinite(d) & (d > 0)
    if mask is not None:
        valid = valid & mask.to(torch.bool)
    g_safe = torch.where(valid, g, torch.ones_like(g))
    d_safe = torch.where(valid, d, torch.ones_like(d))
    count = valid.flatten(1).sum(dim=1).to(torch.float64)

    def mean(x: torch.Tensor) -> torch.Tensor:
        total = torch.where(valid, x, torch.zeros_like(x)).flatten(1).sum(dim=1)
        return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(count, float("nan")))

    err = d_safe - g_safe
    ratio = torch.maximum(d_safe / g_safe, g_safe / d_safe)
    mse = mean(err * err)
    out = {
        "MAE": mean(err.abs()),
        "MSE": mse,
        "RMSE": mse.sqrt(),
        "RMSE log": mean((d_safe.log() - g_safe.log()) ** 2).sqrt(),
        "AbsRel": mean(err.abs() / g_safe),
        "SqRel": mean(err * err / g_safe),
        "Bump": 100.0 * mean(bumpiness_map(d_safe, g_safe)),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = mean((ratio < 1.25 ** k).to(torch.float64))
    return out


def aif_metrics(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR (dB) and SSIM of (B, C, H, W) scene-linear all-in-focus images, on sRGB."""
    check(pred.shape == gt.shape, f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ")
    a, b = display(pred[:, :3].to(torch.float64)), display(gt[:, :3].to(torch.float64))
    return {"PSNR": psnr(a, b), "SSIM": ssim(a, b)}


class MetricTable:
    """Averages per-image metrics over a data set, one row per method (and split).

    ``add(row, metrics)`` takes the dicts of (B,) tensors above; ``mean(row)`` gives the averages
    over all images added to the row; :meth:`markdown` formats a table.
    """

    def __init__(self) -> None:
        self._values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def add(self, row: str, metrics: dict[str, torch.Tensor]) -> None:
        for name, values in metrics.items():
            self._values[row][name].extend(float(v) for v in values.flatten())

    def mean(self, row: str) -> dict[str, float]:
        out = {}
        for name, values in self._values[row].items():
            finite = [v for v in values if v == v]
            out[name] = sum(finite) / len(finite) if finite else float("nan")
        return out

    def count(self, row: str) -> int:
        lists = list(self._values[row].values())
        return max((len(v) for v in lists), default=0)

    def rows(self) -> list[str]:
        return list(self._values)

    def markdown(self, columns: tuple[str, ...] = DEPTH_METRICS + AIF_METRICS) -> str:
        present = [c for c in columns if any(c in self._values[r] for r in self._values)]
        lines = ["| method | images | " + " | ".join(present) + " |",
                 "| --- | ---: | " + " | ".join("---:" for _ in present) + " |"]
        for row in self._values:
            means = self.mean(row)
            cells = [_format(means.get(c, float("nan"))) for c in present]
            lines.append(f"| {row} | {self.count(row)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _format(value: float) -> str:
    if value != value:
        return "-"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
