"""Relative-depth metrics after a scale-and-shift fit in inverse depth (the MiDaS protocol).

A relative prediction p (any affine map of inverse depth) is first fitted to the true inverse
depth g = 1 / Z by least squares over the valid pixels, g ~ s p + t; the fitted inverse depth is
floored at 1 / Z_max (the farthest true depth: a prediction never lies beyond the scene) and
inverted. Then:

* AbsRel: mean |Z_hat - Z| / Z.
* delta1: fraction of pixels with max(Z_hat / Z, Z / Z_hat) < 1.25.
* MAE: DeepLens' mean absolute error of min-max normalised inverse depth (prediction and truth each
  normalised over the valid pixels), no fit.

The baseline is a ground-plane prior: inverse depth growing linearly from the top row to the bottom
one, scored with the same fit.
"""

from __future__ import annotations

import torch


def fit_scale_shift(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> tuple[float, float]:
    """Least-squares (s, t) with s * prediction + t ~ target over ``valid`` (all (H, W))."""
    p = prediction[valid].double()
    g = target[valid].double()
    a = torch.stack([p, torch.ones_like(p)], 1)
    solution = torch.linalg.lstsq(a, g[:, None]).solution[:, 0]
    return float(solution[0]), float(solution[1])


def relative_depth_metrics(prediction: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor | None = None
                           ) -> dict[str, float]:
    """AbsRel, delta1 and MAE of a relative inverse-depth ``prediction`` (H, W) against planar ``depth``
    (H, W, metres or any unit) over ``valid`` (H, W bool; default: finite positive depth)."""
    prediction, depth = prediction.squeeze().float(), depth.squeeze().float()
    if valid is None:
        valid = torch.isfinite(depth) & (depth > 0)
    valid = valid.squeeze() & torch.isfinite(prediction)
    inverse = torch.where(valid, 1.0 / depth.clamp_min(1e-12), torch.zeros_like(depth))
    s, t = fit_scale_shift(prediction, inverse, valid)
    floor = float(inverse[valid].min())
    fitted = (s * prediction[valid] + t).clamp_min(floor)
    z_hat, z = 1.0 / fitted, depth[valid]
    ratio = torch.maximum(z_hat / z, z / z_hat)

    def normalised(v: torch.Tensor) -> torch.Tensor:
        return (v - v.min()) / (v.max() - v.min()).clamp_min(1e-12)

    mae = (normalised(prediction[valid]) - normalised(inverse[valid])).abs().mean()
    return {"absrel": float(((z_hat - z).abs() / z).mean()), "delta1": float((ratio < 1.25).float().mean()),
            "mae": float(mae)}


def ground_plane_prior(height: int, width: int) -> torch.Tensor:
    """(H, W) inverse depth rising linearly from 0 at the top row to 1 at the bottom row."""
    return torch.linspace(0.0, 1.0, height).view(height, 1).expand(height, width).clone()


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} if rows else {}
