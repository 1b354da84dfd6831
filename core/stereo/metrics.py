"""Stereo metrics as benchmarks report them (KITTI, Middlebury, SceneFlow).

* EPE: mean absolute disparity error, pixels ("end-point error").
* D1: percentage of pixels whose error exceeds 3 px *and* 5 % of the true disparity (KITTI 2015).
* bad-1, bad-2: percentage of pixels whose error exceeds 1 px, 2 px (Middlebury).
* density: percentage of the evaluated pixels for which the method gave a (finite) disparity.

Each is computed on *all* pixels with ground truth and on the *non-occluded* ones, those the
right view also sees. A pixel without an estimate counts as wrong by its whole true disparity for
the error metrics (an estimate of 0), as Middlebury scores sparse methods; the dense methods of
this project give every pixel an estimate, so there it changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..errors import check


def occlusion_mask(disparity: torch.Tensor, tolerance: float = 0.5) -> torch.Tensor:
    """Pixels of the left view that the right view cannot see, from the left view's true disparity.

    A left pixel at x lands on ``x - d(x)`` in the right view. It is hidden there when a pixel to
    its right lands at or left of that spot with a larger disparity (a nearer surface in front of
    it), or when it lands outside the right image.

    Args:
        disparity: (..., H, W) true disparity in pixels; NaN/inf where unknown.
        tolerance: pixels of slack in the landing position.

    Returns:
        Bool tensor like ``disparity``, True where occluded.
    """
    d = torch.nan_to_num(disparity, nan=0.0, posinf=0.0, neginf=0.0)
    w = d.shape[-1]
    x = torch.arange(w, dtype=d.dtype, device=d.device)
    landing = x - d
    # Smallest landing position among the pixels strictly to the right (a reverse cumulative min).
    suffix_min = torch.flip(torch.cummin(torch.flip(landing, [-1]), dim=-1).values, [-1])
    right_of = torch.cat([suffix_min[..., 1:], torch.full_like(suffix_min[..., :1], float("inf"))], dim=-1)
    return (right_of < landing - tolerance) | (landing < -tolerance)


@dataclass(frozen=True)
class StereoMetrics:
    """One row of a stereo benchmark table (percentages in [0, 100], EPE in pixels)."""

    epe: float
    d1: float
    bad1: float
    bad2: float
    density: float
    pixels: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def stereo_metrics(estimate: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor | None = None) -> StereoMetrics:
    """EPE, D1, bad-1, bad-2 and density of ``estimate`` against ``truth`` over ``mask``.

    Args:
        estimate: (..., H, W) disparity in pixels; NaN or inf where the method gave none.
        truth: same shape; NaN, inf or <= 0 where there is no ground truth.
        mask: optional bool, same shape: the pixels to evaluate (ANDed with valid ground truth).
    """
    check(estimate.shape == truth.shape, f"estimate {tuple(estimate.shape)} and ground truth "
                                         f"{tuple(truth.shape)} differ in shape")
    est, gt = estimate.double(), truth.double()
    evaluated = torch.isfinite(gt) & (gt > 0)
    if mask is not None:
        evaluated = evaluated & mask
    n = int(evaluated.sum())
    check(n > 0, "no pixel has ground truth to evaluate")
    given = torch.isfinite(est) & evaluated
    err = torch.where(given, (est - gt).abs(), gt.abs())[evaluated]
    true = gt[evaluated]
    pct = 100.0 / n
    return StereoMetrics(
        epe=float(err.mean()),
        d1=float(((err > 3.0) & (err > 0.05 * true)).sum()) * pct,
        bad1=float((err > 1.0).sum()) * pct,
        bad2=float((err > 2.0).sum()) * pct,
        density=float(given.sum()) * pct,
        pixels=n,
    )


def benchmark(estimate: torch.Tensor, truth: torch.Tensor) -> dict[str, StereoMetrics]:
    """Metrics on all pixels with ground truth and on the non-occluded ones: ``{"all", "noc"}``."""
    return {"all": stereo_metrics(estimate, truth), "noc": stereo_metrics(estimate, truth, ~occlusion_mask(truth))}


def format_table(rows: dict[str, dict[str, StereoMetrics]]) -> str:
    """A Markdown table: one row per method and region, ``rows[method][region]``."""
    lines = ["| method | pixels | EPE (px) | D1 (%) | bad-1 (%) | bad-2 (%) | density (%) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for method, regions in rows.items():
        for region, m in regions.items():
            lines.append(f"| {method} | {region} | {m.epe:.2f} | {m.d1:.2f} | {m.bad1:.2f} | {m.bad2:.2f} | "
                         f"{m.density:.1f} |")
    return "\n".join(lines)
