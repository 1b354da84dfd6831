"""Physical depth from a focal stack: a cost volume over depth built from the camera's own blur.

For a camera whose focal length, f-number and sensor are known, the blur of every slice at every
depth follows from the thin lens (core.optics): a point at inverse depth d seen by slice n, focused
at 1 / F_n, is a disc of diameter c_n(d) = K_n |1/F_n - d| pixels, K_n = A f_px (A = f / N the
aperture). So each depth hypothesis d_m predicts what every slice must look like: an all-in-focus
estimate blurred by that slice's disc. The method (depth from defocus, in the spirit of Kim et al.'s
video DfD, seed 001, and the defocus model of Fujimura et al.'s camera-invariant network):

1. **All-in-focus estimate** A: the classical per-pixel soft selection of the sharpest slice
   (core.focal_stack.depth_from_focus). Under hypothesis m it carries the residual blur of the
   sharpest slice there, c_res = min_n c_n(d_m); so slice n is predicted as A blurred by a disc of
   diameter sqrt(c_n^2 - c_res^2) (blurs add about in quadrature).
2. **Blur levels**: A's spectrum times the disc's optical transfer function 2 J1(pi c rho) /
   (pi c rho) at a ladder of diameters (0.3 px apart, then 12 % apart); each (slice, hypothesis)
   pair interpolates between two of them. One FFT per level, not per pair.
3. **Matching cost** per hypothesis: the squared difference of every slice and its prediction,
   summed over the slices, in a variance-stabilised domain (sqrt of linear luminance: shot noise
   becomes about even), then aggregated edge-aware: a guided filter steered by the all-in-focus
   image at the focus method's radius, plus the same at 4x that radius (a texture-less patch
   has a flat cost at the fine scale and takes its neighbours' preference from the coarse one).
4. **Scores**: the cost's rise over the pixel's best, relative to that best plus the stack's
   noise floor (measured from the slices): where texture stands well above the noise the scores
   are peaked, where the slices differ only by noise they are flat. Plus the focus measures (depth
   from focus): the log modified Laplacian over its noise floor, interpolated in dioptres to
   every hypothesis.
5. **Depth** is the best hypothesis refined by a parabola through the log-scores, in dioptres;
   **uncertainty** the spread (standard deviation) of the softmax of the scores over the
   hypotheses, in dioptres and propagated to metres; **confidence** 1 minus that spread relative
   to a flat distribution's. A texture-less backdrop therefore comes out uncertain, and its depth
   follows its textured neighbours, never "the nearest slice".

It needs no training and uses the camera it is given: any focal length, f-number, sensor, focus
range and slice count. Slices must be aligned (core.focal_stack.alignment), scene-linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..colour import linear_to_srgb
from ..errors import check, check_image
from ..optics import Lens
from .depth_from_focus import (FocusResult, all_in_focus, default_radius, inverse_to_metres, noise_floored,
                               spread_over)
from .focus_measures import focus_measure, luminance
from ..box_filter import box_mean
from .guided_filter import guided_filter, guided_filter_coefficients
from .noise import noise_sigma
from .otf import _fft_size, disc_otf
from .slices import check_focus_distances, depth_from_dioptres, dioptres

# Below this many pixels of blur between the nearest and the farthest focus, no depth can be told.
MIN_BLUR_SPAN_PX = 1.0
_STABILISE = 1e-3


def coc_per_dioptre(lens: Lens, focus_distances: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(N,) CoC diameter in pixels per dioptre of defocus of each slice, K_n = A f_px.

    With ``lens.breathing`` (a real lens, seed 001's Eq. 1) K_n grows by F_n / (F_n - f).
    """
    lens.with_focus(1e9).validate()  # its own focus distance plays no part
    k = torch.full_like(focus_distances, lens.coc_scale(width, height), dtype=torch.float64)
    if lens.breathing:
        f_m = lens.focal_length_mm * 1e-3
        fd = focus_distances.to(torch.float64)
        k = k * torch.where(torch.isfinite(fd), fd / (fd - f_m), torch.ones_like(fd))
    return k


def blur_span_px(k: torch.Tensor, inverse_focus: torch.Tensor) -> float:
    """Pixels of blur that separate the nearest and farthest slices: the spread of K_n / F_n."""
    blur = k.to(torch.float64) * inverse_focus.to(torch.float64)
    return float(blur.max() - blur.min())


def check_blur_apart(k: torch.Tensor, inverse_focus: torch.Tensor, focal_length_mm: float | None = None,
                     focus_distances: torch.Tensor | None = None) -> float:
    """The blur in pixels that separates the nearest and farthest slices; InputError below
    :data:`MIN_BLUR_SPAN_PX` (the camera cannot blur the focus range apart) or when a focus
    distance is not beyond the focal length. Returns that span."""
    if focal_length_mm is not None and focus_distances is not None:
        nearest = float(focus_distances.min())
        check(nearest * 1000.0 > focal_length_mm,
              f"focus distance {nearest:g} m is not beyond the focal length ({focal_length_mm:g} mm)")
    span = blur_span_px(k, inverse_focus)
    check(span >= MIN_BLUR_SPAN_PX,
          f"this camera blurs the focus range apart by only {span:.2f} px (at least {MIN_BLUR_SPAN_PX:g} px "
          "needed): the slices are too alike to tell depth; focus over a wider range or open the aperture")
    return span


def blur_ladder(max_diameter: float, fine_step: float = 0.4, ratio: float = 1.15) -> torch.Tensor:
    """Disc diameters in pixels from 0 to past ``max_diameter``: ``fine_step`` apart while that is
    finer than ``ratio``, then geometric (blur differences matter relative to the blur)."""
    levels = [0.0]
    while levels[-1] < max_diameter:
        levels.append(max(levels[-1] + fine_step, levels[-1] * ratio))
    if len(levels) < 2:
        levels.append(fine_step)
    return torch.tensor(levels, dtype=torch.float64)


def blurred_levels(image: torch.Tensor, diameters: torch.Tensor, prefilter_px: float = 0.0) -> torch.Tensor:
    """A (1, 1, H, W) image blurred by discs of each of ``diameters`` pixels: (L, 1, H, W).

    FFT convolution on a reflect-padded copy (no wrap-around at the borders). ``prefilter_px``
    adds a Gaussian of that standard deviation to every level (see :func:`physical_depth`).
    """
    h, w = image.shape[-2:]
    pad = int(math.ceil(float(diameters.max()) / 2.0)) + 2
    pad_h, pad_w = min(pad, h - 1), min(pad, w - 1)
    padded = F.pad(image, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    hp, wp = _fft_size(padded.shape[-2]), _fft_size(padded.shape[-1])
    padded = F.pad(padded, (0, wp - padded.shape[-1], 0, hp - padded.shape[-2]), mode="replicate")
    spectrum = torch.fft.rfft2(padded[0, 0].to(torch.float32))
    otf = disc_otf(diameters.to(image.device), hp, wp).to(torch.float32)
    if prefilter_px > 0:
        fy = torch.fft.fftfreq(hp, device=image.device).view(hp, 1)
        fx = torch.fft.rfftfreq(wp, device=image.device).view(1, -1)
        otf = otf * torch.exp(-2.0 * math.pi ** 2 * prefilter_px ** 2 * (fx * fx + fy * fy))
    out = torch.fft.irfft2(spectrum[None] * otf, s=(hp, wp))
    return out[:, None, pad_h:pad_h + h, pad_w:pad_w + w].to(image.dtype)


def gaussian_prefilter(images: torch.Tensor, sigma_px: float, blur_pad_px: float = 0.0) -> torch.Tensor:
    """(N, 1, H, W) maps each convolved with a Gaussian of ``sigma_px``, the same FFT convolution
    as :func:`blurred_levels` at diameter ``blur_pad_px`` (which sets the padding), batched."""
    h, w = images.shape[-2:]
    pad = int(math.ceil(blur_pad_px / 2.0)) + 2
    pad_h, pad_w = min(pad, h - 1), min(pad, w - 1)
    padded = F.pad(images, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    hp, wp = _fft_size(padded.shape[-2]), _fft_size(padded.shape[-1])
    padded = F.pad(padded, (0, wp - padded.shape[-1], 0, hp - padded.shape[-2]), mode="replicate")
    fy = torch.fft.fftfreq(hp, device=images.device).view(hp, 1)
    fx = torch.fft.rfftfreq(wp, device=images.device).view(1, -1)
    gauss = torch.exp(-2.0 * math.pi ** 2 * sigma_px ** 2 * (fx * fx + fy * fy))
    out = torch.fft.irfft2(torch.fft.rfft2(padded.to(torch.float32)) * gauss, s=(hp, wp))
    return out[..., pad_h:pad_h + h, pad_w:pad_w + w].to(images.dtype)


def default_hypotheses(inverse_focus: torch.Tensor, k: torch.Tensor, step_px: float = 1.0,
                       least: int = 9, most: int = 17) -> torch.Tensor:
    """Depth hypotheses in dioptres, evenly spaced over the focus range, about ``step_px`` of blur
    apart in the most blurring slice (``least`` to ``most`` of them), ascending."""
    lo, hi = float(inverse_focus.min()), float(inverse_focus.max())
    count = int(min(most, max(least, math.ceil(float(k.max()) * (hi - lo) / step_px) + 1)))
    return torch.linspace(lo, hi, count, dtype=torch.float64)


def interpolate_slices(values: torch.Tensor, positions: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation along dim 0: (N, ...) samples at ascending ``positions`` (N,)
    to (M, ...) at ``at`` (M,), clamped at the ends."""
    idx = torch.searchsorted(positions, at).clamp(1, positions.numel() - 1)
    x0, x1 = positions[idx - 1], positions[idx]
    t = ((at - x0) / (x1 - x0)).clamp(0.0, 1.0).to(values.dtype)
    shape = (-1,) + (1,) * (values.dim() - 1)
    return values[idx - 1] * (1 - t.view(shape)) + values[idx] * t.view(shape)


def _aggregate(volume: torch.Tensor, guide: torch.Tensor, radius: int, coarse_weight: float,
               eps: float) -> torch.Tensor:
    """Edge-aware aggregation of (1, K, h, w) maps at ``radius`` plus, weighted, at 4x ``radius``."""
    _, _, h, w = volume.shape
    fine = guided_filter(guide, volume, radius, eps)
    if coarse_weight > 0 and min(h, w) >= 16:
        small = F.avg_pool2d(volume, 4, ceil_mode=True)
        small_g = F.avg_pool2d(guide, 4, ceil_mode=True)
        coarse = guided_filter(small_g, small, max(1, radius), eps)
        coarse = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        fine = fine + coarse_weight * coarse
    return fine


def parabola_peak(scores: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Sub-hypothesis peak of (M, 1, H, W) log-scores at evenly spaced ascending ``positions`` (M,):
    the vertex of the parabola through the best and its two neighbours, (1, 1, H, W)."""
    m = scores.shape[0]
    best = scores.argmax(dim=0, keepdim=True)
    step = float(positions[1] - positions[0])
    centre = best.clamp(1, m - 2)
    y0, y1, y2 = scores.gather(0, centre - 1), scores.gather(0, centre), scores.gather(0, centre + 1)
    curvature = y0 - 2 * y1 + y2
    offset = torch.where(curvature < 0, 0.5 * (y0 - y2) / curvature.clamp(max=-1e-12), torch.zeros_like(y1))
    interior = (best > 0) & (best < m - 1)
    offset = torch.where(interior, offset.clamp(-1.0, 1.0), torch.zeros_like(offset))
    return float(positions[0]) + (best.to(scores.dtype) + offset) * step


@dataclass
class DefocusVolume:
    """The physical method's evidence before its read-out (what the camera-aware network reads).

    Attributes:
        scores: (M, 1, h, w) log-scores of the depth hypotheses at half resolution (h = ceil(H / 2)),
            0 at each pixel's best; higher is more likely.
        hypotheses: (M,) the hypotheses' inverse depths, dioptres, evenly spaced and ascending over
            the focus range.
        guide: (1, 1, h, w) sRGB luminance of the all-in-focus estimate, the aggregation's guide.
        guide_full: (1, 1, H, W) the same at full resolution.
        slices: (N, C, H, W) the stack, scene-linear, ordered far to near.
        inverse_focus: (N,) the slices' focus in dioptres, ascending.
        coc_per_dioptre: (N,) pixels of CoC diameter per dioptre of defocus of each slice.
        radius, eps: the guided filter that brings half-resolution maps back to full resolution.
        focus_scores: (M, 1, h, w) the depth-from-focus part of :attr:`scores` (the aggregated log
            focus measures interpolated to the hypotheses, 0 at each pixel's best, unweighted), or
            None when the focus measures were not used.
    """

    scores: torch.Tensor
    hypotheses: torch.Tensor
    guide: torch.Tensor
    guide_full: torch.Tensor
    slices: torch.Tensor
    inverse_focus: torch.Tensor
    coc_per_dioptre: torch.Tensor
    radius: int
    eps: float
    focus_scores: torch.Tensor | None = None

    @property
    def focus_range(self) -> tuple[float, float]:
        """The focus range in dioptres: its far end (the fewest dioptres) and its span."""
        inv = self.inverse_focus
        return float(inv.min()), float(inv.max() - inv.min())

    def upsample(self, maps: torch.Tensor) -> torch.Tensor:
        """(1, C, h, w) half-resolution maps to (1, C, H, W), edge-aware: the fast guided filter's
        (a, b) fitted at half resolution against :attr:`guide`, applied to :attr:`guide_full`."""
        h, w = self.guide_full.shape[-2:]
        a, b = guided_filter_coefficients(self.guide, maps, self.radius, self.eps)
        return (F.interpolate(a, size=(h, w), mode="bilinear", align_corners=False) * self.guide_full
                + F.interpolate(b, size=(h, w), mode="bilinear", align_corners=False))

    def read_out(self, inverse_half: torch.Tensor, spread_half: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Half-resolution inverse depth and spread (1, 1, h, w), dioptres, to full resolution,
        the depth clamped to the focus range."""
        full = self.upsample(torch.cat([inverse_half, spread_half], dim=1))
        inv = self.inverse_focus
        return full[:, :1].clamp(float(inv.min()), float(inv.max())), full[:, 1:].clamp_min(0.0)

    def result(self, inverse: torch.Tensor, spread: torch.Tensor, dtype: torch.dtype) -> FocusResult:
        """The :class:`FocusResult` of full-resolution inverse depth and spread (1, 1, H, W),
        dioptres: the all-in-focus image takes each pixel from the slices its depth blurs least."""
        n = self.slices.shape[0]
        device = self.slices.device
        blur = self.coc_per_dioptre.to(device=device, dtype=torch.float32).view(n, 1, 1, 1) * (
            self.inverse_focus.to(device=device, dtype=torch.float32).view(n, 1, 1, 1) - inverse).abs()
        weights = torch.softmax(-0.5 * blur * blur, dim=0)
        aif = (weights * self.slices).sum(dim=0, keepdim=True)
        flat = max(self.focus_range[1] / math.sqrt(12.0), 1e-9)
        return FocusResult(
            depth=depth_from_dioptres(inverse).to(dtype),
            all_in_focus=aif.to(dtype),
            confidence=(1.0 - spread / flat).clamp(0.0, 1.0).to(dtype),
            uncertainty=inverse_to_metres(spread, inverse).to(dtype),
            inverse_uncertainty=spread.to(dtype),
        )


def _score_volume(g_slices: torch.Tensor, log_focus_half: torch.Tensor, aif_grey: torch.Tensor, inv: torch.Tensor,
                  k: torch.Tensor, hyp: torch.Tensor, residual_blur: bool, radius: int, eps: float,
                  coarse_weight: float, contrast: float, focus_weight: float,
                  tau: float, prefilter_px: float = 0.0,
                  balance: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One pass of the cost volume: the log-scores (M, 1, H/2, W/2), the guides at half and full
    resolution (sRGB luminance of ``aif_grey``) and the focus-measure part of the scores.

    ``g_slices`` (N, 1, H, W) square-root luminance; ``log_focus_half`` (N, 1, H/2, W/2) log focus
    measures; ``aif_grey`` (1, 1, H, W) linear luminance of the all-in-focus estimate, blurred by
    each slice's sharpest CoC when ``residual_blur``.
    """
    n, _, h, w = g_slices.shape
    m = hyp.numel()
    device = g_slices.device
    coc = k.view(n, 1) * (inv.view(n, 1) - hyp.view(1, m)).abs()  # (N, M) pixels
    residual = coc.min(dim=0, keepdim=True).values * (1.0 if residual_blur else 0.0)
    eff = (coc * coc - residual * residual).clamp_min(0.0).sqrt()
    ladder = blur_ladder(float(eff.max()))
    g_levels = (blurred_levels(aif_grey, ladder, prefilter_px).clamp_min(0.0) + _STABILISE).sqrt()  # (L, 1, H, W)
    pos = torch.searchsorted(ladder, eff.flatten()).clamp(1, ladder.numel() - 1).view(n, m)
    frac = ((eff - ladder[pos - 1]) / (ladder[pos] - ladder[pos - 1])).clamp(0.0, 1.0)
    half = (h + 1) // 2, (w + 1) // 2
    volume = torch.empty(1, m + n, *half, dtype=torch.float32, device=device)
    total = torch.empty(1, h, w, dtype=torch.float32, device=device)
    buf = torch.empty_like(total)
    if balance:
        # Each slice votes with its cost relative to its own mean over the hypotheses: a slice
        # blurred by many pixels errs most in absolute terms (occlusion edges, shading) but says
        # least, and must not drown the slices whose small blur decides a far surface's depth.
        volume[0, :m].zero_()
        per_slice = torch.empty(m, *half, dtype=torch.float32, device=device)
        for i in range(n):
            for j in range(m):
                lo = int(pos[i, j]) - 1
                torch.lerp(g_levels[lo], g_levels[lo + 1], float(frac[i, j]), out=buf)
                buf.sub_(g_slices[i]).square_()
                per_slice[j] = F.avg_pool2d(buf[None], 2, ceil_mode=True)[0, 0]
            norm = box_mean(per_slice.mean(dim=0, keepdim=True)[None], 3)[0] + tau / n
            volume[0, :m] += per_slice / norm
        volume[0, :m] *= tau / n  # back to the scale of a squared error, so tau keeps its meaning
    else:
        for j in range(m):
            total.zero_()
            for i in range(n):
                lo = int(pos[i, j]) - 1
                torch.lerp(g_levels[lo], g_levels[lo + 1], float(frac[i, j]), out=buf)
                buf.sub_(g_slices[i]).square_()
                total.add_(buf)
            volume[0, j] = F.avg_pool2d(total[None], 2, ceil_mode=True)[0, 0]
    volume[0, m:] = log_focus_half[:, 0]

    # Aggregation at half resolution, edge-aware, guided by the all-in-focus image.
    guide_full = linear_to_srgb(aif_grey).clamp(0.0, 1.0)
    guide = F.avg_pool2d(guide_full, 2, ceil_mode=True)
    aggregated = _aggregate(volume, guide, radius, coarse_weight, eps)[0]  # (M + N, h/2, w/2)
    cost = aggregated[:m, None].clamp_min(0.0)
    best = cost.min(dim=0, keepdim=True).values
    scores = -contrast * (cost - best) / (best + tau)
    focus_scores = None
    if focus_weight > 0:
        focus_scores = interpolate_slices(aggregated[m:, None], inv.to(device), hyp.to(device))
        focus_scores = focus_scores - focus_scores.amax(dim=0, keepdim=True)
        scores = scores + focus_weight * focus_scores
    return scores, guide, guide_full, focus_scores


def peak_and_spread(scores: torch.Tensor, hypotheses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The physical read-out of (M, 1, h, w) log-scores over ``hypotheses`` (M,) dioptres: the
    parabola-refined best hypothesis and the softmax's spread about it, both (1, 1, h, w) dioptres."""
    hyp_d = hypotheses.to(device=scores.device, dtype=torch.float32)
    inverse_half = parabola_peak(scores, hyp_d)
    return inverse_half, spread_over(torch.softmax(scores, dim=0), hyp_d, inverse_half)


def physical_volume(
    stack: torch.Tensor,
    focus_distances: Sequence[float] | torch.Tensor,
    lens: Lens | None = None,
    *,
    coc_per_dioptre_px: float | Sequence[float] | torch.Tensor | None = None,
    hypotheses: int | None = None,
    radius: int | None = None,
    eps: float = 1e-3,
    coarse_weight: float = 0.0,
    contrast: float = 16.0,
    focus_weight: float = 1.0,
    noise_floor: float = 2.0,
    passes: int = 2,
    noise_to_signal: float = 2e-3,
    prefilter_px: float = 1.0,
    balance: bool = False,
    aif_sharpness: float = 4.0,
    sharp_image: torch.Tensor | None = None,
) -> DefocusVolume:
    """The physical cost volume of a focal stack and its camera (see :func:`physical_depth`).

    Args:
        stack: (N, C, H, W) aligned slices, scene-linear, N >= 2.
        focus_distances: (N,) metres, distinct, positive (``inf`` allowed), any order.
        lens: the camera (focal length, f-number, sensor; its own focus distance is ignored).
        coc_per_dioptre_px: instead of ``lens``: CoC diameter in pixels per dioptre of defocus,
            A f_px, one for all slices or one per slice (a dataset record's
            ``coc_px_per_dioptre``).
        hypotheses: number of depth hypotheses (default :func:`default_hypotheses`).
        radius, eps: the aggregation's guided filter (default radius :func:`default_radius`).
        coarse_weight: weight of the 4x-radius aggregation.
        contrast: slope of the defocus scores (larger: more decided).
        focus_weight: weight of the focus-measure scores (depth from focus); 0 for defocus alone.
        noise_floor: focus measures below this many times their noise response count as none.
        passes: 2 re-runs the cost volume against the stack deconvolved at the first pass's
            depth (core.focal_stack.deconvolution), a sharper all-in-focus estimate; 1 is faster.
        noise_to_signal: the deconvolution's Wiener lambda (raised with the stack's noise).
        prefilter_px: a Gaussian of this standard deviation (pixels) applied to the slices and
            to their predictions before they are compared: pixel-scale noise (a sensor's, or a
            path tracer's, which renders of one scene share between slices) carries no blur
            information and would otherwise favour the least blurred hypotheses.
        sharp_image: (1, C, H, W) scene-linear all-in-focus image to predict the slices from, taken
            as sharp (e.g. a video's previous frame); default: the stack's own estimate.

    Returns:
        :class:`DefocusVolume`: the last pass's scores over the hypotheses, and what reading them
        out needs.
    """
    from .deconvolution import layered_wiener

    check_image(stack, "focal stack")
    n, _, h, w = stack.shape
    check(n >= 2, f"a focal stack needs at least 2 slices, got {n}")
    check(passes in (1, 2), f"passes must be 1 or 2, got {passes}")
    distances = check_focus_distances(focus_distances, n)
    check((lens is None) != (coc_per_dioptre_px is None),
          "the physical method needs the camera: give a lens (focal length, f-number, sensor) or its blur per dioptre")
    if lens is not None:
        k_all = coc_per_dioptre(lens, distances, w, h)
    else:
        k_all = torch.as_tensor(coc_per_dioptre_px, dtype=torch.float64).flatten()
        k_all = k_all.expand(n).clone() if k_all.numel() == 1 else k_all
        check(k_all.numel() == n, f"got {k_all.numel()} blur scales for {n} slices")
        check(bool((k_all > 0).all()), "the blur per dioptre must be positive")
    inv_all = dioptres(distances)
    check_blur_apart(k_all, inv_all, lens.focal_length_mm if lens is not None else None, distances)

    order = torch.argsort(inv_all)  # far (small dioptres) to near
    inv, k = inv_all[order], k_all[order]
    device = stack.device
    slices = stack[order.to(device)]
    hyp = default_hypotheses(inv, k) if hypotheses is None else torch.linspace(
        float(inv.min()), float(inv.max()), max(3, int(hypotheses)), dtype=torch.float64)
    r = max(1, (default_radius(h, w) if radius is None else radius) // 2)  # at half resolution

    grey = luminance(slices).to(torch.float32)
    raw = noise_floored(focus_measure(linear_to_srgb(grey), "modified-laplacian", 9), slices, noise_floor)
    log_focus_half = F.avg_pool2d(raw, 2, ceil_mode=True).log()
    compared = gaussian_prefilter(grey, prefilter_px, blur_pad_px=0.0) if prefilter_px > 0 else grey
    g_slices = (compared.clamp_min(0.0) + _STABILISE).sqrt()
    sigma_g = float(noise_sigma(g_slices).pow(2).mean().sqrt())
    tau = n * 2.0 * sigma_g ** 2 + 1e-7
    settings = dict(radius=r, eps=eps, coarse_weight=coarse_weight, contrast=contrast, focus_weight=focus_weight,
                    tau=tau, prefilter_px=prefilter_px, balance=balance)
    if sharp_image is not None:
        aif_grey, residual = luminance(sharp_image.to(device=device)).to(torch.float32), False
    else:
        aif_grey, residual = luminance(all_in_focus(slices, raw, aif_sharpness)).to(torch.float32), True

    def volume(scores: torch.Tensor, guide: torch.Tensor, guide_full: torch.Tensor,
               focus_scores: torch.Tensor | None) -> DefocusVolume:
        return DefocusVolume(scores, hyp, guide, guide_full, slices, inv, k, r, eps, focus_scores)

    first = volume(*_score_volume(g_slices, log_focus_half, aif_grey, inv, k, hyp, residual, **settings))
    if passes == 1:
        return first
    inverse, _ = first.read_out(*peak_and_spread(first.scores, hyp))
    # Linear-domain noise over signal, squared, raises lambda on noisy stacks.
    lam = noise_to_signal + float(noise_sigma(grey).pow(2).mean()) / max(float(grey.mean()) ** 2, 1e-8)
    sharp = layered_wiener(grey, inv, k, inverse, noise_to_signal=lam)
    return volume(*_score_volume(g_slices, log_focus_half, sharp, inv, k, hyp, False, **settings))


def physical_depth(stack: torch.Tensor, focus_distances: Sequence[float] | torch.Tensor, lens: Lens | None = None,
                   **options) -> FocusResult:
    """Depth, all-in-focus image, confidence and uncertainty from a focal stack and its camera.

    ``stack``, ``focus_distances``, ``lens`` and the keyword options are :func:`physical_volume`'s;
    the depth is its scores' best hypothesis refined by a parabola, the uncertainty their softmax's
    spread, both brought to full resolution by the guided filter.

    Returns:
        :class:`FocusResult` with depth in metres, ``uncertainty`` in metres (one standard
        deviation) and ``inverse_uncertainty`` in dioptres.
    """
    volume = physical_volume(stack, focus_distances, lens, **options)
    inverse, spread = volume.read_out(*peak_and_spread(volume.scores, volume.hypotheses))
    return volume.result(inverse, spread, stack.dtype)
