"""Classical depth from focus: a focus volume, filtered, its peak refined, and an all-in-focus image.

Given N aligned slices focused at distances F_n, each pixel is sharpest in the slice whose focus
plane is nearest its depth. The method:

1. **Focus volume.** A focus measure (core.focal_stack.focus_measures) of each slice's luminance,
   sRGB-encoded so that dark and bright texture count alike: an (N, 1, H, W) volume.
2. **Edge-aware filtering.** Each slice of the volume is smoothed by a guided filter steered by
   the mean of the slices (a blurred but complete view of the scene): weak texture takes the
   evidence of its neighbours of similar colour, not of the object beside it (cost-volume
   filtering; the joint-bilateral regularisation of seed 001).
3. **Peak and sub-slice refinement.** The best slice per pixel, then a Gaussian fit through it and
   its two neighbours: a parabola through the log focus measure, in dioptres (blur is linear in
   inverse depth) with uneven spacing allowed. Its vertex is the depth, clamped to the bracket.
4. **Confidence** in [0, 1]: how much the peak stands out of the pixel's focus curve, times how
   much texture there is to judge it by (relative to the image's strongest responses).
5. **All-in-focus**: per-pixel soft selection, weights proportional to the filtered focus measure
   raised to a power, so the sharpest slice dominates and seams between slices blend.

Depth comes out in metres when focus distances are known (capped at core.focal_stack.slices
.MAX_DEPTH_M for a focus at infinity), else as a fractional slice index (0 = first slice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..colour import linear_to_srgb
from ..errors import check, check_image
from .focus_measures import FocusMeasure, focus_measure, luminance
from .guided_filter import guided_filter
from .slices import MAX_DEPTH_M, check_focus_distances, depth_from_dioptres, dioptres

_TINY = 1e-12
# Expected sum-modified-Laplacian of iid noise of unit standard deviation: 2 sqrt(6) sqrt(2 / pi).
ML_NOISE = 2.0 * 6.0 ** 0.5 * (2.0 / 3.141592653589793) ** 0.5


@dataclass(frozen=True)
class FocusResult:
    """Outputs of depth from focus for one stack.

    Attributes:
        depth: (1, 1, H, W) planar depth in metres, or the fractional slice index when the focus
            distances are unknown.
        all_in_focus: (1, C, H, W) scene-linear all-in-focus image.
        confidence: (1, 1, H, W) in [0, 1].
        uncertainty: (1, 1, H, W) one standard deviation of the depth, in the depth's unit
            (metres, or slices without focus distances): the spread of the method's distribution
            over depth (slices or hypotheses), taken in dioptres and propagated to metres.
        inverse_uncertainty: (1, 1, H, W) that spread in dioptres (slices without distances).
    """

    depth: torch.Tensor
    all_in_focus: torch.Tensor
    confidence: torch.Tensor
    uncertainty: torch.Tensor | None = None
    inverse_uncertainty: torch.Tensor | None = None


def focus_volume(stack: torch.Tensor, measure: FocusMeasure = "modified-laplacian", window: int = 9) -> torch.Tensor:
    """(N, C, H, W) scene-linear slices -> (N, 1, H, W) focus measure of their sRGB luminance."""
    grey = linear_to_srgb(luminance(stack))
    return focus_measure(grey, measure, window)


def default_radius(height: int, width: int) -> int:
    """Guided-filter radius: 1/64 of the longer side, at least 4 pixels (8 at 512x512)."""
    return max(4, round(max(height, width) / 64))


def filtered_focus_volume(
    stack: torch.Tensor,
    measure: FocusMeasure = "modified-laplacian",
    window: int = 9,
    radius: int | None = None,
    eps: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The focus volume of aligned stacks, raw and edge-aware filtered (the classical cost volume).

    Each slice's focus measure is guided-filtered by the stack's mean luminance (sRGB-encoded),
    so the volume follows the image's edges (seed 001).

    Args:
        stack: (N, C, H, W) slices or (B, N, C, H, W) stacks, scene-linear.
        measure, window: the focus measure and its window, pixels.
        radius, eps: the guided filter (radius default :func:`default_radius`; 0: no filtering).

    Returns:
        (raw, filtered), each (N, 1, H, W) or (B, N, 1, H, W), focus measure per slice.
    """
    single = stack.dim() == 4
    stacks = stack[None] if single else stack
    b, n, _, h, w = stacks.shape
    flat = stacks.flatten(0, 1)
    raw = focus_volume(flat, measure, window).view(b, n, h, w)
    filtered = raw
    r = default_radius(h, w) if radius is None else radius
    if r > 0:  # the slices are the channels of one guided filter per stack
        guide = linear_to_srgb(luminance(flat)).view(b, n, h, w).mean(dim=1, keepdim=True)
        filtered = guided_filter(guide, raw, r, eps).clamp_min(0.0)
    raw, filtered = raw.view(b, n, 1, h, w), filtered.view(b, n, 1, h, w)
    return (raw[0], filtered[0]) if single else (raw, filtered)


def refine_peak(volume: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-slice peak of a focus volume by a Gaussian (log-parabola) fit through three samples.

    Args:
        volume: (N, 1, H, W) non-negative focus measure, slices in ascending ``positions``.
        positions: (N,) strictly increasing slice coordinates (dioptres or indices).

    Returns:
        ((1, 1, H, W) refined position, (1, 1, H, W) long index of the best slice).
    """
    n = volume.shape[0]
    best = volume.argmax(dim=0, keepdim=True)  # (1, 1, H, W)
    pos = positions.to(volume.dtype).view(n, 1, 1, 1).expand_as(volume)
    centre = best.clamp(1, n - 2) if n >= 3 else best.clamp(0, n - 1)
    x1 = pos.gather(0, centre)
    if n < 3:
        return x1, best
    x0, x2 = pos.gather(0, centre - 1), pos.gather(0, centre + 1)
    logv = volume.clamp_min(_TINY).log()
    y0, y1, y2 = logv.gather(0, centre - 1), logv.gather(0, centre), logv.gather(0, centre + 1)
    # Vertex of the parabola through (x0, y0), (x1, y1), (x2, y2), uneven spacing allowed.
    d01, d12, d02 = x0 - x1, x1 - x2, x0 - x2
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / (d01 * d02 * d12)
    b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / (d01 * d02 * d12)
    vertex = -b / (2 * a).where(a < 0, torch.full_like(a, -1.0))
    vertex = torch.minimum(torch.maximum(vertex, torch.minimum(x0, x2)), torch.maximum(x0, x2))
    interior = (best > 0) & (best < n - 1) & (a < 0)
    refined = torch.where(interior, vertex, pos.gather(0, best))
    return refined, best


def confidence_map(volume: torch.Tensor, texture_quantile: float = 0.9, texture_fraction: float = 0.05) -> torch.Tensor:
    """Confidence in [0, 1] of a (N, 1, H, W) focus volume's per-pixel peak.

    Peak prominence (max - mean) / max is 0 for a flat focus curve (no depth information) and
    tends to 1 for a sharp single peak. It is damped where the texture is too weak to trust:
    m / (m + tau) with tau ``texture_fraction`` of the ``texture_quantile`` of the peak responses.
    """
    peak = volume.max(dim=0, keepdim=True).values
    mean = volume.mean(dim=0, keepdim=True)
    prominence = (peak - mean) / peak.clamp_min(_TINY)
    flat = peak.flatten()
    sample = flat[:: max(1, flat.numel() // 65536)]  # quantile() is limited in size; a sample will do
    tau = texture_fraction * float(torch.quantile(sample.float(), texture_quantile)) + _TINY
    return (prominence * peak / (peak + tau)).clamp(0.0, 1.0)


def spread_over(weights: torch.Tensor, positions: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Standard deviation about ``estimate`` (1, 1, H, W) of a distribution ``weights`` (N, 1, H, W)
    (summing to 1 over N) placed at ``positions`` (N,): (1, 1, H, W)."""
    pos = positions.to(weights.dtype).view(-1, 1, 1, 1)
    return (weights * (pos - estimate) ** 2).sum(dim=0, keepdim=True).sqrt()


def inverse_to_metres(spread: torch.Tensor, inverse_depth: torch.Tensor) -> torch.Tensor:
    """A spread in dioptres about inverse depth d, in metres: spread / d^2 (first order), capped."""
    return (spread / inverse_depth.clamp_min(1.0 / MAX_DEPTH_M) ** 2).clamp(max=MAX_DEPTH_M)


def noise_floored(volume: torch.Tensor, slices: torch.Tensor, factor: float) -> torch.Tensor:
    """A modified-Laplacian focus volume with each slice's noise response removed: (v - t)_+ + t.

    t is ``factor`` times the expected response of the slices' sensor noise (measured from the
    slices, core.focal_stack.noise; the largest of them), so where the slices differ only by noise every slice scores the
    same t: no peak, low confidence, instead of a peak at the noisiest slice.
    """
    if factor <= 0:
        return volume
    from .noise import noise_sigma

    grey = linear_to_srgb(luminance(slices))
    # One floor for all slices (a camera's noise is the same in each): else the floors' own
    # differences would make a peak where there is nothing.
    floor = float((factor * ML_NOISE * noise_sigma(grey)).max().clamp_min(1e-4))
    return (volume - floor).clamp_min(0.0) + floor


def all_in_focus(stack: torch.Tensor, volume: torch.Tensor, sharpness: float = 4.0) -> torch.Tensor:
    """Per-pixel soft selection of the sharpest slice: (N, C, H, W), (N, 1, H, W) -> (1, C, H, W).

    Weights are softmax(sharpness * log m): m^sharpness normalised over the slices. Large
    ``sharpness`` approaches a hard argmax; small values average more slices (smoother, softer).
    """
    weights = torch.softmax(sharpness * volume.clamp_min(_TINY).log(), dim=0)
    return (weights * stack).sum(dim=0, keepdim=True)


def depth_from_focus(
    stack: torch.Tensor,
    focus_distances: Sequence[float] | torch.Tensor | None = None,
    *,
    measure: FocusMeasure = "modified-laplacian",
    window: int = 9,
    radius: int | None = None,
    eps: float = 1e-3,
    sharpness: float = 4.0,
    noise_floor: float = 0.0,
) -> FocusResult:
    """Depth, all-in-focus image, confidence and uncertainty from an aligned focal stack.

    Args:
        stack: (N, C, H, W) aligned slices, scene-linear, N >= 2.
        focus_distances: (N,) focus distance of each slice in metres (any order, distinct,
            positive; ``inf`` allowed). Without them the slices are taken as ordered and depth is
            returned as a fractional slice index.
        measure: focus measure (see :mod:`core.focal_stack.focus_measures`).
        window: focus-measure window, pixels.
        radius, eps: guided filter of the focus volume (radius default :func:`default_radius`;
            0 disables the filtering).
        sharpness: exponent of the all-in-focus soft selection (and of the slice distribution
            whose spread is the uncertainty).
        noise_floor: focus responses below this many times the slices' own noise response count
            as no focus evidence (:func:`noise_floored`; 0 disables it).

    Returns:
        :class:`FocusResult`.

    Example:
        >>> stack = torch.rand(3, 3, 32, 32)
        >>> out = depth_from_focus(stack, [0.5, 1.0, 2.0])
        >>> out.depth.shape, out.all_in_focus.shape
        (torch.Size([1, 1, 32, 32]), torch.Size([1, 3, 32, 32]))
    """
    check_image(stack, "focal stack")
    n = stack.shape[0]
    check(n >= 2, f"a focal stack needs at least 2 slices, got {n}")
    if focus_distances is not None:
        inv = dioptres(check_focus_distances(focus_distances, n))
        order = torch.argsort(inv)  # far (small dioptres) to near
        positions = inv[order]
    else:
        order = torch.arange(n)
        positions = torch.arange(n, dtype=torch.float64)
    slices = stack[order.to(stack.device)]

    _, volume = filtered_focus_volume(slices, measure, window, radius, eps)
    if measure == "modified-laplacian":
        volume = noise_floored(volume, slices, noise_floor)

    pos = positions.to(stack.device)
    refined, _ = refine_peak(volume, pos)
    weights = torch.softmax(sharpness * volume.clamp_min(_TINY).log(), dim=0)
    spread = spread_over(weights, pos, refined)
    if focus_distances is not None:
        depth, uncertainty = depth_from_dioptres(refined), inverse_to_metres(spread, refined)
    else:
        depth, uncertainty = refined, spread
    return FocusResult(
        depth=depth.to(stack.dtype),
        all_in_focus=(weights * slices).sum(dim=0, keepdim=True),
        confidence=confidence_map(volume),
        uncertainty=uncertainty.to(stack.dtype),
        inverse_uncertainty=spread.to(stack.dtype),
    )

