"""Focus-sweep video to per-frame focal stacks (Video Depth-from-Defocus, seed 001, Sec. 4.1).

A video whose focus is pulled back and forth holds, around every frame, neighbours focused at other
distances. The video is cut into *focus ramps*: runs of frames whose focus moves one way. Each
frame then gets a focal stack of the frames of its own ramp within a temporal window around it,
aligned to it; frames from other ramps are left out, since the farther apart two frames are in
time, the more the scene has moved between them. Focus distances need only be known sparsely
(a lens reports its position a few times a second): :func:`interpolate_focus` fills in the rest,
linearly in dioptres, the unit in which a focus motor moves evenly.

Alignment here is global (breathing and an ECC motion, core.focal_stack.alignment), which suits a
static scene shot hand-held; seed 001's defocus-preserving PatchMatch for moving scenes is not
attempted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import cv2
import numpy as np
import torch

from ..colour import srgb_to_linear
from ..errors import check, fail
from .alignment import Alignment, Motion, align_stack

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")


def is_video_path(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def read_frames(path: str | os.PathLike[str], max_frames: int | None = None) -> list[np.ndarray]:
    """Decode a video into (H, W, 3) float32 scene-linear frames (video is sRGB/Rec.709-encoded)."""
    check(os.path.isfile(path), f"video file not found: {path}")
    capture = cv2.VideoCapture(str(path))
    check(capture.isOpened(), f"cannot open video {path} (unknown codec or not a video)")
    frames: list[np.ndarray] = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = bgr[..., ::-1].astype(np.float32) / 255.0
            frames.append(srgb_to_linear(rgb))
    finally:
        capture.release()
    check(len(frames) > 0, f"video {path} has no readable frames")
    return frames


def interpolate_focus(samples: Mapping[int, float], count: int) -> list[float]:
    """Per-frame focus distances (metres) from sparse readouts {frame: metres}, linear in dioptres.

    Frames before the first or after the last readout take its value.
    """
    check(len(samples) > 0, "need at least one focus readout")
    frames = sorted(samples)
    for f in frames:
        check(samples[f] > 0, f"focus distance at frame {f} must be positive, got {samples[f]}")
    inv = np.interp(np.arange(count), frames, [1.0 / samples[f] for f in frames])
    return [1.0 / float(v) if v > 0 else math.inf for v in inv]


def focus_ramps(focus_distances: Sequence[float]) -> list[range]:
    """Split per-frame focus distances into ramps: maximal runs moving one way in dioptres.

    A frame where the focus holds still stays with the ramp it is in; a reversal starts a new ramp
    at the turning frame, which belongs to both (it is the far or near end of each).
    """
    inv = [1.0 / float(d) for d in focus_distances]
    n = len(inv)
    if n < 2:
        return [range(0, n)]
    ramps: list[range] = []
    start, direction = 0, 0
    for t in range(1, n):
        step = inv[t] - inv[t - 1]
        sign = (step > 0) - (step < 0)
        if sign == 0:
            continue
        if direction == 0:
            direction = sign
        elif sign != direction:
            ramps.append(range(start, t))
            start, direction = t - 1, sign
    ramps.append(range(start, n))
    return ramps


def stack_frames(t: int, focus_distances: Sequence[float], ramps: Sequence[range],
                 window: int | None = None) -> list[int]:
    """Frames that form the focal stack of frame ``t``, in time order.

    The frames of t's ramp (the first ramp holding t) within ``window`` frames of t (all of the
    ramp when ``None``). Of frames focused at the same distance only the one nearest t is kept.
    """
    ramp = next((r for r in ramps if t in r), None)
    check(ramp is not None, f"frame {t} lies in no focus ramp")
    assert ramp is not None
    candidates = [s for s in ramp if window is None or abs(s - t) <= window]
    chosen: dict[float, int] = {}
    for s in sorted(candidates, key=lambda s: (abs(s - t), s)):
        chosen.setdefault(float(focus_distances[s]), s)
    return sorted(chosen.values())


@dataclass(frozen=True)
class FrameStack:
    """The aligned focal stack of one video frame."""

    frame: int
    frames: list[int]
    focus_distances: list[float]
    alignment: Alignment


def focal_stacks(
    frames: Sequence[np.ndarray] | torch.Tensor,
    focus_distances: Sequence[float],
    *,
    window: int | None = None,
    focal_length_mm: float | None = None,
    refine: Motion | None = "translation",
    which: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[FrameStack]:
    """Yield the aligned focal stack of each requested frame of a focus-sweep video.

    Args:
        frames: T frames, (H, W, 3) numpy scene-linear, or a (T, 3, H, W) tensor.
        focus_distances: T per-frame focus distances in metres (see :func:`interpolate_focus`).
        window: temporal half-window in frames (default: the whole ramp).
        focal_length_mm: enables the focus-breathing correction.
        refine: ECC motion model for hand-held video, or ``None``.
        which: frame indices to produce (default: all).
    """
    count = len(frames)
    check(len(focus_distances) == count, f"got {len(focus_distances)} focus distances for {count} frames")
    ramps = focus_ramps(focus_distances)
    for t in range(count) if which is None else which:
        check(0 <= t < count, f"frame {t} out of range for a {count}-frame video")
        members = stack_frames(t, focus_distances, ramps, window)
        if len(members) < 2:
            fail(f"frame {t} has no other focus distance in its ramp; the focus must move during the video")
        slices = torch.stack([_to_tensor(frames[s]) for s in members]).to(device)
        distances = [float(focus_distances[s]) for s in members]
        aligned = align_stack(slices, distances if focal_length_mm else None, focal_length_mm,
                              reference=members.index(t), refine=refine)
        yield FrameStack(frame=t, frames=members, focus_distances=distances, alignment=aligned)


def _to_tensor(frame: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(frame, torch.Tensor):
        return frame
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))
