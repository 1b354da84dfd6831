"""Temporally stable mono depth for sequences: align each frame to the last, optionally smooth, measure flicker.

A mono-depth model sees every frame alone, and its output is relative: each frame comes with its own
unknown scale and shift in inverse depth (and min-max normalisation moves them whenever the nearest
or farthest thing in view changes). Played back, a plate's depth breathes, which users of every
mono-depth model complain about. :class:`SequenceAligner` fixes the gauge frame by frame: each
prediction is fitted (least squares in inverse depth, :func:`core.mono.metric.fit_scale_shift`) to
the previous output, with a second fit that drops the pixels the first one explains worst (moving
objects, disocclusions), so those do not drag the static scene. Optional temporal smoothing then
blends towards the previous output where the two agree, and not where something moved.

:func:`flicker` is the measure: the mean frame-to-frame change of (aligned) inverse depth on static
pixels.

Frames are (1, 1, H, W) or (T, 1, H, W) torch tensors of normalised inverse depth (1 = nearest).
"""

from __future__ import annotations

import torch

from ..errors import check
from .metric import fit_scale_shift

TRIM = 2.5  # the second fit keeps residuals within TRIM median absolute residuals


def align_to(frame: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None,
             trim: float | None = TRIM) -> tuple[torch.Tensor, float, float]:
    """``frame`` (1, 1, H, W) mapped by a scale and shift in inverse depth onto ``reference``.

    Args:
        mask: (1, 1, H, W) bool, pixels allowed in the fit (default all).
        trim: refit on the pixels whose first-fit residual is within ``trim`` times the median
            absolute residual (None: one plain least-squares fit).

    Returns:
        the aligned frame, the scale and the shift.
    """
    check(frame.shape == reference.shape, f"frame {tuple(frame.shape)} and reference "
                                          f"{tuple(reference.shape)} differ in shape")
    keep = torch.ones_like(frame, dtype=torch.bool) if mask is None else mask.bool()
    scale, shift = fit_scale_shift(frame, reference, keep)
    if trim is not None:
        residual = (scale.view(-1, 1, 1, 1) * frame + shift.view(-1, 1, 1, 1) - reference).abs()
        limit = residual[keep].median() * trim
        inliers = keep & (residual <= limit.clamp_min(1e-6))
        if int(inliers.sum()) >= 2:
            scale, shift = fit_scale_shift(frame, reference, inliers)
    s, t = float(scale[0]), float(shift[0])
    if s <= 0.0:  # a frame that fits only upside down (or not at all) is kept as it came
        return frame, 1.0, 0.0
    return s * frame + t, s, t


class SequenceAligner:
    """Feed frames in order; each comes back aligned to the previous output (and smoothed).

    Args:
        smoothing: 0 (alignment only) to below 1: weight of the previous output in an exponential
            moving average, applied where aligned and previous agree within ``motion``.
        motion: change in normalised inverse depth that counts as motion: the smoothing weight
            falls as exp(-(change / motion)^2), so moving objects do not leave trails.
        trim: see :func:`align_to`.
    """

    def __init__(self, smoothing: float = 0.0, motion: float = 0.05, trim: float | None = TRIM) -> None:
        check(0.0 <= smoothing < 1.0, f"temporal smoothing must be in [0, 1), got {smoothing:g}")
        check(motion > 0.0, f"motion threshold must be positive, got {motion:g}")
        self.smoothing, self.motion, self.trim = smoothing, motion, trim
        self.previous: torch.Tensor | None = None
        self.scales: list[float] = []
        self.shifts: list[float] = []

    def reset(self) -> None:
        self.previous = None
        self.scales, self.shifts = [], []

    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        """(1, 1, H, W) normalised inverse depth -> (1, 1, H, W) aligned (first frame: unchanged)."""
        check(frame.dim() == 4 and frame.shape[:2] == (1, 1), f"a frame must be (1, 1, H, W), got {tuple(frame.shape)}")
        if self.previous is None or self.previous.shape != frame.shape:
            out, s, t = frame, 1.0, 0.0
        else:
            out, s, t = align_to(frame, self.previous, trim=self.trim)
            if self.smoothing > 0.0:
                weight = self.smoothing * torch.exp(-((out - self.previous) / self.motion) ** 2)
                out = out + weight * (self.previous - out)
        self.scales.append(s)
        self.shifts.append(t)
        self.previous = out
        return out


def align_sequence(frames: torch.Tensor, smoothing: float = 0.0, motion: float = 0.05,
                   trim: float | None = TRIM) -> torch.Tensor:
    """(T, 1, H, W) independent predictions -> (T, 1, H, W) aligned to frame 0's gauge (see :class:`SequenceAligner`)."""
    check(frames.dim() == 4 and frames.shape[1] == 1, f"frames must be (T, 1, H, W), got {tuple(frames.shape)}")
    aligner = SequenceAligner(smoothing, motion, trim)
    return torch.cat([aligner(frames[i:i + 1]) for i in range(frames.shape[0])])


def flicker(frames: torch.Tensor, static: torch.Tensor | None = None) -> float:
    """Mean absolute frame-to-frame change of (T, 1, H, W) inverse depth over static pixels.

    Args:
        static: (H, W), (1, 1, H, W) or (T, 1, H, W) bool, True where the scene does not move
            (for (T, ...) masks a pixel counts between t-1 and t when static in both), or
            (T - 1, 1, H, W): one mask per pair of frames.
    """
    check(frames.dim() == 4 and frames.shape[0] >= 2, f"flicker needs (T >= 2, 1, H, W) frames, got {tuple(frames.shape)}")
    change = (frames[1:] - frames[:-1]).abs()
    if static is None:
        return float(change.mean())
    mask = static.bool()
    mask = mask.view(1, 1, *mask.shape[-2:]) if mask.dim() == 2 else mask
    if mask.shape[0] == frames.shape[0]:
        mask = mask[1:] & mask[:-1]
    mask = mask.expand_as(change)
    check(bool(mask.any()), "flicker needs at least one static pixel")
    return float(change[mask].mean())
