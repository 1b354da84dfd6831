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


def read_sweep(stack: Sequence[str | os.PathLike[str]], nan_policy: str = "error") -> list[np.ndarray]:
    """A focus sweep's frames as (H, W, 3) float32 scene-linear: one video file, or one image file
    per frame in clip order (an image sequence: EXR linear, PNG/JPEG/TIFF sRGB; alpha dropped,
    grey repeated), every frame the first one's size."""
    from ..imageio import read_image

    if len(stack) == 1 and is_video_path(stack[0]):
        return read_frames(stack[0])
    frames: list[np.ndarray] = []
    for path in stack:
        check(not is_video_path(path), f"give a video alone: {path}")
        image = read_image(path, nan_policy)
        image = np.repeat(image[..., :1], 3, axis=2) if image.shape[2] < 3 else image[..., :3]
        if frames:
            h, w = frames[0].shape[:2]
            check(image.shape[:2] == (h, w), f"frame {path} is {image.shape[1]}x{image.shape[0]} but {stack[0]} "
                                             f"is {w}x{h}")
        frames.append(np.ascontiguousarray(image, dtype=np.float32))
    return frames


def read_focus_rows(path: str | os.PathLike[str]) -> list[tuple[float, ...]]:
    """The rows of a focus file: one number per line (metres, ``inf`` for infinity) or ``FRAME
    METRES`` pairs; commas or spaces between numbers, ``#`` starts a comment."""
    from pathlib import Path

    p = Path(path)
    check(p.is_file(), f"focus file not found: {p}")
    rows = []
    try:
        text = p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        fail(f"cannot read focus file {p} as text: {exc.__class__.__name__}")
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rows.append(tuple(float(v) for v in line.replace(",", " ").split()))
        except ValueError:
            fail(f"{p}, line {number}: expected numbers, got {line!r}")
        check(len(rows[-1]) in (1, 2), f"{p}, line {number}: expected 'METRES' or 'FRAME METRES'")
    check(bool(rows), f"focus file {p} holds no focus distance")
    check(len({len(r) for r in rows}) == 1, f"focus file {p} mixes one- and two-column lines")
    return rows


def sweep_focus(rows: Sequence[tuple[float, ...]], count: int) -> list[float]:
    """Per-frame focus distances (metres) of a ``count``-frame sweep from focus-file rows: one per
    frame, or sparse ``(frame, metres)`` pairs (0-based frames) interpolated in dioptres."""
    if rows and len(rows[0]) == 2:
        samples = {int(r[0]): r[1] for r in rows}
        check(all(0 <= f < count for f in samples), f"focus file names frames outside 0..{count - 1}")
        return interpolate_focus(samples, count)
    values = [r[0] for r in rows]
    check(len(values) == count, f"got {len(values)} focus distance(s) for a {count}-frame video; give one "
                                f"per frame, or 'FRAME METRES' pairs in --focus-file")
    for v in values:
        check(v > 0 and not math.isnan(v), f"focus distances must be positive, got {v:g}")
    return list(values)


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


# ------------------------------------------------------------------ video depth from defocus
@dataclass(frozen=True)
class VideoDepth:
    """Per-frame outputs of :func:`video_depth` for T frames.

    Attributes:
        depth: (T, 1, H, W) planar metres.
        all_in_focus: (T, C, H, W) scene-linear (layered Wiener deconvolution of each frame's stack).
        confidence: (T, 1, H, W) in [0, 1].
        uncertainty: (T, 1, H, W) one standard deviation of depth, metres.
        inverse_uncertainty: (T, 1, H, W) the same in dioptres.
        focus_distances: T focus distances in metres, refined when asked.
        independent_depth: (T, 1, H, W) per-frame depth before temporal fusion (for comparison).
    """

    depth: torch.Tensor
    all_in_focus: torch.Tensor
    confidence: torch.Tensor
    uncertainty: torch.Tensor
    inverse_uncertainty: torch.Tensor
    focus_distances: list[float]
    independent_depth: torch.Tensor


def temporal_fusion(inverse: torch.Tensor, spread: torch.Tensor, guide: torch.Tensor, *, colour_sigma: float = 0.04,
                    carry: float = 0.95, floor: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal smoothing of per-frame inverse depth by its own uncertainty (seed 001's temporal step).

    A forward and a backward recursive filter, each fusing a frame's estimate with the previous
    (next) frame's fused one in proportion to their precisions 1 / spread^2, the carried precision
    multiplied by ``carry`` (old evidence fades) and by exp(-(delta guide / colour_sigma)^2), the
    change of the pixel's all-in-focus grey between the frames: where something moves, the pixel
    changes and the past does not carry over. The two passes are combined without counting the
    frame's own estimate twice.

    Args:
        inverse, spread: (T, 1, H, W) dioptres.
        guide: (T, 1, H, W) all-in-focus grey (sRGB-encoded), the motion cue.

    Returns:
        (T, 1, H, W) fused inverse depth and its spread, dioptres.
    """
    t_count = inverse.shape[0]
    precision = 1.0 / (spread.clamp_min(floor) ** 2)
    links = torch.exp(-((guide[1:] - guide[:-1]) / colour_sigma) ** 2) * carry  # (T-1, 1, H, W)

    def sweep(order: list[int], link_index) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        values: list[torch.Tensor] = [torch.empty(0)] * t_count
        weights: list[torch.Tensor] = [torch.empty(0)] * t_count
        prev = None
        for t in order:
            p, d = precision[t], inverse[t]
            if prev is not None:
                w = links[link_index(t)] * weights[prev]
                d = (p * d + w * values[prev]) / (p + w)
                p = p + w
            values[t], weights[t] = d, p
            prev = t
        return values, weights

    fwd_d, fwd_p = sweep(list(range(t_count)), lambda t: t - 1)
    bwd_d, bwd_p = sweep(list(range(t_count - 1, -1, -1)), lambda t: t)
    fused, fused_spread = [], []
    for t in range(t_count):
        p = fwd_p[t] + bwd_p[t] - precision[t]
        fused.append((fwd_p[t] * fwd_d[t] + bwd_p[t] * bwd_d[t] - precision[t] * inverse[t]) / p)
        fused_spread.append(p.rsqrt())
    return torch.stack(fused), torch.stack(fused_spread)


def refine_focus(frame: torch.Tensor, sharp: torch.Tensor, inverse_depth: torch.Tensor, coc_per_dioptre_px: float,
                 prior: float, search: float = 0.2, steps: int = 21) -> float:
    """The focus (dioptres) that best explains one frame, given the scene's sharp image and depth.

    Each candidate focus f within +-``search`` dioptres of ``prior`` predicts the frame as the
    sharp image blurred by K |f - d(x)| at every pixel; the candidate whose prediction matches the
    frame best (squared error on square-root luminance), refined by a parabola, wins. For a lens
    that reports its focus sparsely or roughly (seed 001's focus-distance refinement).

    Args:
        frame, sharp: (1, C, H, W) scene-linear; inverse_depth: (1, 1, H, W) dioptres.
    """
    from .defocus_volume import blur_ladder, blurred_levels
    from .focus_measures import luminance

    candidates = torch.linspace(max(prior - search, 0.0), prior + search, steps, dtype=torch.float64)
    inv = inverse_depth.to(torch.float32)
    k = float(coc_per_dioptre_px)
    max_blur = k * float(max((candidates.max() - inv.min()).abs(), (inv.max() - candidates.min()).abs()))
    ladder = blur_ladder(max_blur)
    levels = (blurred_levels(luminance(sharp).to(torch.float32), ladder).clamp_min(0) + 1e-3).sqrt()[:, 0]  # (L, H, W)
    target = (luminance(frame).to(torch.float32).clamp_min(0) + 1e-3).sqrt()[0, 0]
    lad = ladder.to(torch.float32)
    costs = []
    for f in candidates.tolist():
        c = (k * (f - inv[0, 0])).abs()
        hi = torch.searchsorted(lad, c.contiguous()).clamp(1, lad.numel() - 1)
        t = ((c - lad[hi - 1]) / (lad[hi] - lad[hi - 1])).clamp(0, 1)
        pred = torch.lerp(levels.gather(0, (hi - 1)[None]), levels.gather(0, hi[None]), t[None])[0]
        costs.append(float(((pred - target) ** 2)[8:-8, 8:-8].mean()))
    cost = torch.tensor(costs, dtype=torch.float64)
    j = int(cost.argmin())
    best = float(candidates[j])
    if 0 < j < steps - 1:
        y0, y1, y2 = cost[j - 1], cost[j], cost[j + 1]
        curvature = float(y0 - 2 * y1 + y2)
        if curvature > 0:
            best += 0.5 * float(y0 - y2) / curvature * float(candidates[1] - candidates[0])
    return best


def _ramp_lines(inverse: list[float], prior: list[float]) -> list[float]:
    """Per-frame refined focus (dioptres) made even within each focus ramp of ``prior`` (metres): a
    focus motor moves evenly, so each ramp's refined values are replaced by their least-squares
    line over the frame index (a single frame's misfit cannot bend it). Returns metres."""
    out = list(inverse)
    for ramp in focus_ramps(prior):
        t = np.array(list(ramp), dtype=np.float64)
        y = np.array([inverse[i] for i in ramp], dtype=np.float64)
        if len(t) >= 3:
            slope, offset = np.polyfit(t, y, 1)
            for i in ramp:
                out[i] = float(slope * i + offset)
    return [1.0 / v if v > 0 else math.inf for v in out]


def video_depth(
    frames: Sequence[np.ndarray] | torch.Tensor,
    focus_distances: Sequence[float],
    coc_per_dioptre_px: float,
    *,
    window: int | None = None,
    temporal: bool = True,
    refine: bool = False,
    align: Motion | None = None,
    focal_length_mm: float | None = None,
    carry: float = 0.95,
    colour_sigma: float = 0.04,
    device: torch.device | str = "cpu",
) -> VideoDepth:
    """Video depth from defocus for a focus-sweep clip: depth, all-in-focus and uncertainty per frame.

    1. Each frame's focal stack: the frames of its focus ramp (:func:`focal_stacks`), aligned.
    2. Per-frame depth by the physical cost volume (core.focal_stack.defocus_volume), with its
       uncertainty.
    3. With ``refine``, each frame's focus distance is re-estimated against the stack's sharp image
       and depth (:func:`refine_focus`) and the depth recomputed with the refined distances.
    4. Temporal fusion of the per-frame depths by their uncertainty (:func:`temporal_fusion`).
    5. All-in-focus frames by layered multi-frame Wiener deconvolution at the fused depth.

    Args:
        frames: T frames, (H, W, 3) numpy or a (T, 3, H, W) tensor, scene-linear.
        focus_distances: T per-frame focus distances, metres (e.g. from :func:`interpolate_focus`).
        coc_per_dioptre_px: the lens' CoC diameter in pixels per dioptre of defocus, A f_px.
        window: temporal half-window of each frame's stack (default: its whole ramp).
        temporal: fuse the per-frame depths over time.
        refine: refine the focus distances (rough or sparse readouts).
        align, focal_length_mm: alignment of each stack (:func:`focal_stacks`); none by default.
        carry, colour_sigma: the temporal fusion's settings (:func:`temporal_fusion`).
    """
    from .deconvolution import layered_wiener
    from .defocus_volume import physical_depth
    from .depth_from_focus import inverse_to_metres
    from .focus_measures import luminance
    from ..colour import linear_to_srgb

    count = len(frames)
    check(count >= 2, f"a focus sweep needs at least 2 frames, got {count}")
    check(len(focus_distances) == count, f"got {len(focus_distances)} focus distances for {count} frames")
    check(coc_per_dioptre_px > 0, "the blur per dioptre must be positive")
    distances = [float(d) for d in focus_distances]

    def per_frame(dist: list[float]):
        out = []
        for fs in focal_stacks(frames, dist, window=window, focal_length_mm=focal_length_mm, refine=align,
                               device=device):
            result = physical_depth(fs.alignment.images, fs.focus_distances, coc_per_dioptre_px=coc_per_dioptre_px)
            out.append((fs, result))
        return out

    results = per_frame(distances)
    if refine:
        refined = []
        for t, (fs, result) in enumerate(results):
            frame = _to_tensor(frames[t]).to(device)[None]
            inv_t = refine_focus(frame, result.all_in_focus, 1.0 / result.depth, coc_per_dioptre_px,
                                 1.0 / distances[t])
            refined.append(inv_t)
        distances = _ramp_lines(refined, distances)
        results = per_frame(distances)

    inverse = torch.cat([1.0 / r.depth for _, r in results])
    spread = torch.cat([r.inverse_uncertainty for _, r in results])
    guide = torch.cat([linear_to_srgb(luminance(r.all_in_focus)).clamp(0, 1) for _, r in results])
    independent = torch.cat([r.depth for _, r in results])
    if temporal:
        inverse, spread = temporal_fusion(inverse, spread, guide, colour_sigma=colour_sigma, carry=carry)
    aifs = []
    for t, (fs, _) in enumerate(results):
        inv_f = 1.0 / torch.tensor(fs.focus_distances, dtype=torch.float64)
        k = torch.full_like(inv_f, coc_per_dioptre_px)
        aifs.append(layered_wiener(fs.alignment.images, inv_f, k, inverse[t:t + 1]))
    lo = min(1.0 / d for d in distances)
    hi = max(1.0 / d for d in distances)
    flat = max((hi - lo) / math.sqrt(12.0), 1e-9)
    return VideoDepth(depth=1.0 / inverse.clamp_min(1e-4), all_in_focus=torch.cat(aifs).clamp_min(0.0),
                      confidence=(1.0 - spread / flat).clamp(0.0, 1.0), uncertainty=inverse_to_metres(spread, inverse),
                      inverse_uncertainty=spread, focus_distances=distances, independent_depth=independent)
