"""Focus-puller smoothing of a per-frame focus series, in dioptres.

Blur is linear in inverse distance (core.optics: CoC = A f_px (1/F - 1/D)), so a focus puller's
moves are best described in dioptres (1/m): a rack of 0.1 D changes every CoC in the frame by the
same number of pixels, at 1 m or at 10 m. :func:`pull_focus` turns the raw series into one that a
focus puller could have made:

1. *bridge*: frames where the subject was hidden (held by the sampler) are filled by a straight
   line in dioptres between the good frames either side (the clip is known in advance, as a
   rehearsed shot is), or hold the nearest good value at the ends;
2. *dead-band*: while the target stays within the band of where focus rests, focus does not move
   (no breathing with noise); once it leaves, focus follows until the target settles again. The
   band is at most a share of the depth of field (the CoC limit over A f_px, in dioptres), so the
   wobble it hides is invisible, and no wider than the noise needs (``noise_factor`` times the
   series' noise, estimated from its second differences): a deep depth of field must not let a
   clean series lag a walking subject by a large share of its distance;
3. *follow*: a critically damped second-order follower (no overshoot), its speed limited to the
   maximum rack speed and its acceleration to rack speed / ease time (ease in and out);
   with ``anticipate`` it runs forward and then backward over the clip (zero phase: no lag behind a
   walking subject, as a rehearsed pull has none), on a series padded by quadratic extrapolation
   so that the ends do not lag either, and twiced (the smoothed residual added back) so that it does not
   cut the corners of an accelerating pull. The result is finally clamped to the rack speed.

Inputs and outputs are numpy arrays of shape (T,); distances in metres, dioptres in 1/m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PullerSettings:
    """How the focus puller moves.

    Attributes:
        fps: frames per second of the clip.
        max_rack_dioptres_per_s: fastest focus change, dioptres per second.
        response_s: time constant of the critically damped follow (1 / omega), seconds.
        ease_s: time to reach the maximum rack speed from rest (acceleration limit), seconds.
        dead_band_dioptres: changes of the target smaller than this do not move focus.
        settle_frames: frames the target must stay within half the band to rest again.
        anticipate: zero-phase follow (forward then backward) instead of a causal one.
        bridge: interpolate across held frames (otherwise hold the last good value).
        noise_factor: the band used is at most this many noise standard deviations (0: always
            ``dead_band_dioptres``).
    """

    fps: float = 24.0
    max_rack_dioptres_per_s: float = 2.0
    response_s: float = 0.05
    ease_s: float = 0.15
    dead_band_dioptres: float = 0.0
    settle_frames: int = 6
    anticipate: bool = True
    bridge: bool = True
    noise_factor: float = 4.0


@dataclass(frozen=True)
class PulledFocus:
    """The smoothed series (T,): ``distance_m`` metres, ``dioptres`` 1/m, ``target_dioptres`` the
    bridged and dead-banded target the follower chased; ``dead_band_dioptres`` the band used and
    ``noise_dioptres`` the noise estimated."""

    distance_m: np.ndarray
    dioptres: np.ndarray
    target_dioptres: np.ndarray
    dead_band_dioptres: float = 0.0
    noise_dioptres: float = 0.0


def noise_sigma(values: np.ndarray) -> float:
    """Robust standard deviation of white noise on a smooth series (T,): from the median absolute
    deviation of its second differences (var of x[t+1] - 2 x[t] + x[t-1] is 6 sigma^2)."""
    values = np.asarray(values, np.float64)
    if len(values) < 5:
        return 0.0
    d2 = values[2:] - 2.0 * values[1:-1] + values[:-2]
    mad = float(np.median(np.abs(d2 - np.median(d2))))
    return 1.4826 * mad / np.sqrt(6.0)


def depth_of_field_dioptres(coc_px_per_dioptre: float, coc_limit_px: float) -> float:
    """Half-width in dioptres of the band around the focus where the CoC stays under ``coc_limit_px``.

    With CoC = K (1/F - 1/D), K = A f_px pixels per dioptre, |CoC| < c holds for |1/F - 1/D| < c / K.
    """
    return coc_limit_px / coc_px_per_dioptre


def bridge_gaps(values: np.ndarray, held: np.ndarray, interpolate: bool = True) -> np.ndarray:
    """``values`` (T,) with held frames replaced: a straight line between the good frames around
    each gap (``interpolate``) or the last good value; ends hold the nearest good value."""
    values = np.asarray(values, np.float64).copy()
    good = ~np.asarray(held, bool)
    if not good.any():
        return values
    t = np.arange(len(values))
    if interpolate:
        return np.interp(t, t[good], values[good])
    last = values[good][0]
    for i in range(len(values)):
        if good[i]:
            last = values[i]
        else:
            values[i] = last
    return values


def apply_dead_band(target: np.ndarray, band: float, settle_frames: int = 6) -> np.ndarray:
    """Hold/follow hysteresis: output rests while ``target`` stays within ``band`` of the rest
    value; follows it once it leaves; rests again (at the mean of the last ``settle_frames``)
    when the target has stayed within ``band / 2`` of that mean for ``settle_frames`` frames and
    its trend over them is under ``band / 4``."""
    target = np.asarray(target, np.float64)
    if band <= 0.0 or len(target) == 0:
        return target.copy()
    out = np.empty_like(target)
    rest: float | None = float(target[0])
    for i, u in enumerate(target):
        if rest is not None:
            if abs(u - rest) > band:
                rest = None
                out[i] = u
            else:
                out[i] = rest
            continue
        out[i] = u
        recent = target[max(0, i - settle_frames + 1):i + 1]
        if len(recent) >= settle_frames:
            centre = float(recent.mean())
            # Still, not merely slow: a subject walking steadily keeps focus following, or it would
            # lag by up to the band before each step.
            slope = float(np.polyfit(np.arange(len(recent)), recent, 1)[0])
            if float(np.abs(recent - centre).max()) < 0.5 * band and abs(slope) * settle_frames < 0.25 * band:
                rest = centre
    return out


def follow(target: np.ndarray, fps: float, response_s: float, max_rate: float, max_accel: float,
           substeps: int = 8) -> np.ndarray:
    """Critically damped follow of ``target`` (T,) sampled at ``fps``: x'' = w^2 (u - x) - 2 w x',
    w = 1 / ``response_s``, with |x'| <= ``max_rate`` and |x''| <= ``max_accel`` (units of
    ``target`` per second, per second squared). Starts at rest on the first target."""
    target = np.asarray(target, np.float64)
    out = np.empty_like(target)
    if len(target) == 0:
        return out
    omega = 1.0 / max(response_s, 1e-6)
    dt = 1.0 / (fps * substeps)
    x, v = float(target[0]), 0.0
    for i, u in enumerate(target):
        for _ in range(substeps):
            a = omega * omega * (u - x) - 2.0 * omega * v
            a = min(max(a, -max_accel), max_accel)
            v = min(max(v + a * dt, -max_rate), max_rate)
            x += v * dt
        out[i] = x
    return out


def limit_rate(values: np.ndarray, max_step: float) -> np.ndarray:
    """Clamp each frame-to-frame change of ``values`` (T,) to ``max_step``."""
    out = np.asarray(values, np.float64).copy()
    for i in range(1, len(out)):
        out[i] = out[i - 1] + min(max(out[i] - out[i - 1], -max_step), max_step)
    return out


def _extrapolate_pad(values: np.ndarray, pad: int, fit: int = 8) -> np.ndarray:
    """``pad`` samples added at both ends, continuing a quadratic fitted to the ``fit`` samples
    there: an accelerating pull keeps accelerating past the ends (odd reflection would put an
    inflection there, which the follower then cuts)."""
    n = len(values)
    if pad <= 0 or n < 2:
        return values
    degree = 2 if n >= 4 else 1
    k = min(fit, n)
    t = np.arange(k, dtype=np.float64)
    head_fit = np.polyfit(t, values[:k], degree)
    tail_fit = np.polyfit(t, values[-k:], degree)
    head = np.polyval(head_fit, np.arange(-pad, 0, dtype=np.float64))
    tail = np.polyval(tail_fit, np.arange(k, k + pad, dtype=np.float64))
    return np.concatenate([head, values, tail])


def pull_focus(raw_m: np.ndarray, held: np.ndarray, settings: PullerSettings) -> PulledFocus:
    """The smoothed focus series from the raw one.

    Args:
        raw_m: (T,) raw focus distances, metres (held frames repeat the last good value).
        held: (T,) bool, frames where the subject was not seen.
        settings: the puller.
    """
    raw = np.asarray(raw_m, np.float64)
    inverse = 1.0 / np.maximum(raw, 1e-6)
    target = bridge_gaps(inverse, held, settings.bridge)
    good = ~np.asarray(held, bool)
    noise = noise_sigma(inverse[good]) if good.sum() >= 5 else 0.0
    band = settings.dead_band_dioptres
    if settings.noise_factor > 0:
        band = min(band, settings.noise_factor * noise)
    target = apply_dead_band(target, band, settings.settle_frames)
    rate = settings.max_rack_dioptres_per_s
    accel = rate / max(settings.ease_s, 1e-6)
    if settings.anticipate:
        pad = int(round(6.0 * settings.response_s * settings.fps)) + 2
        padded = _extrapolate_pad(target, pad)

        def zero_phase(values: np.ndarray) -> np.ndarray:
            forward = follow(values, settings.fps, settings.response_s, rate, accel)
            return follow(forward[::-1], settings.fps, settings.response_s, rate, accel)[::-1]

        # Twicing (Tukey): smoothing the residual once more and adding it back cancels the
        # low-pass's second-order bias, which would cut the corner of an accelerating pull (1/D
        # of a subject walking at constant speed curves upwards).
        first = zero_phase(padded)
        both = first + zero_phase(padded - first)
        cut = (len(both) - len(target)) // 2
        smoothed = both[cut:cut + len(target)]
    else:
        smoothed = follow(target, settings.fps, settings.response_s, rate, accel)
    smoothed = limit_rate(smoothed, rate / settings.fps)
    smoothed = np.maximum(smoothed, 1e-6)
    return PulledFocus(1.0 / smoothed, smoothed, target, band, noise)
