"""Focus Track: a focus distance per frame that follows a subject through a clip (SteReFo section 4).

The one pipeline behind ``python -m core focus-track``, the worker's ``focus_track`` op and the
Focus Track node::

    from core.pipelines.focus_track import FocusTrackParams, run
    track = run(frames, depths, FocusTrackParams(box_px=(80, 40, 120, 100), fps=24))
    track.focus_distance_m      # (T,) smoothed, metres; track.raw_focus_distance_m, track.boxes ...

Per frame: the box moves with the tracker (:mod:`core.focus_track.tracker`; or comes given, e.g.
from Blender's own motion-tracking markers), the focus is sampled from the planar depth inside it
(:mod:`core.focus_track.sampling`), and the whole series is smoothed as a focus puller would pull
it (:mod:`core.focus_track.smoothing`). The box is placed at ``start_frame`` and tracked forwards
to the end and backwards to the first frame. With ``scale_from_depth`` the box keeps the size the
subject's distance implies (a subject twice as near is twice as large), which CSRT's own scale
search only approximates and KCF lacks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from ..contract import Input, OpSpec, Output, check_finite, check_range, param
from ..errors import check
from . import ProgressFn
from .checks import SENSOR_FITS, check_sensor

# How far the filter's box may drift from the size the subject's distance implies before it is
# restarted at that size: CSRT follows scale itself (and a restart costs two of its updates), KCF
# keeps the size it started with.
RESIZE_TOLERANCE = {"csrt": 0.15, "kcf": 0.08}


@dataclass(frozen=True)
class FocusTrackParams:
    """The subject, the tracker, the focus puller and the lens whose depth of field sets the dead-band."""

    box_px: tuple[float, float, float, float] | None = param(
        None, unit="px", help="the subject's box at the start frame: x0 y0 x1 y1, pixels, top-left origin",
        cli="box")
    start_frame: int = param(0, help="index of the frame where the box is placed (0: the first)")
    boxes_px: Any = param(None, unit="px", help="a box per frame (x0 y0 x1 y1 pixels, or null where unknown) "
                                               "instead of tracking: JSON text or a .json file")
    method: Literal["csrt", "kcf"] = param("csrt", help="tracker: csrt (accurate) or kcf (fast)")
    track_width_px: int = param(320, unit="px", help="track on frames resized to at most this width "
                                                     "(0: full size); depth is always sampled at full size")
    scale_from_depth: bool = param(True, help="the box's size follows the subject's distance")
    fps: float = param(24.0, help="frames per second of the clip")
    max_rack_dioptres_per_s: float = param(2.0, help="fastest focus pull, dioptres per second", cli="max-rack")
    response_s: float = param(0.05, unit="s", help="time constant of the critically damped follow")
    ease_s: float = param(0.15, unit="s", help="time to reach the maximum rack speed (ease in and out)")
    dead_band: float = param(0.25, help="focus rests while the target moves less than this share of the "
                                       "depth of field")
    anticipate: bool = param(True, help="zero-phase follow over the clip (no lag), as a rehearsed pull")
    coc_limit_px: float = param(1.5, unit="px", help="acceptable circle of confusion: the depth of field's edge")
    focal_length_mm: float = param(50.0, unit="mm", help="lens focal length (for the depth of field)")
    f_stop: float = param(2.8, help="aperture f-number (for the depth of field)")
    sensor_width_mm: float = param(36.0, unit="mm", help="sensor width")
    sensor_height_mm: float | None = param(None, unit="mm", help="sensor height (VERTICAL fit)")
    sensor_fit: Literal["AUTO", "HORIZONTAL", "VERTICAL"] = param("AUTO", help="Blender's sensor fit")

    def _has_subject(self) -> bool:
        return self.box_px is not None or self.boxes_px is not None

    def __post_init__(self) -> None:
        check(self._has_subject(), "give the subject's box (or a box per frame)")
        if self.box_px is not None:
            check(len(self.box_px) == 4, f"the box takes four numbers x0 y0 x1 y1, got {len(self.box_px)}")
            check_finite("the box", *self.box_px)
            x0, y0, x1, y1 = self.box_px
            check(x1 > x0 and y1 > y0, f"the box {tuple(self.box_px)} is empty: it needs x1 > x0 and y1 > y0")
        if self.boxes_px is not None:
            _check_boxes(self.boxes_px, "boxes_px")
        check(self.start_frame >= 0, f"the start frame must be 0 or more, got {self.start_frame}")
        check(self.method in ("csrt", "kcf"), f"unknown tracker {self.method!r}; use csrt or kcf")
        check(self.track_width_px == 0 or self.track_width_px >= 32,
              f"the tracking width must be 0 (full size) or at least 32 pixels, got {self.track_width_px}")
        check_range("the frame rate", self.fps, 0.0, 1000.0, low_open=True)
        check_range("the maximum rack speed (dioptres/s)", self.max_rack_dioptres_per_s, 0.0, 1000.0, low_open=True)
        check_range("the response time (s)", self.response_s, 0.0, 10.0)
        check_range("the ease time (s)", self.ease_s, 0.0, 10.0)
        check_range("the dead-band (share of the depth of field)", self.dead_band, 0.0, 1.0)
        check_range("the CoC limit (px)", self.coc_limit_px, 0.0, 1000.0, low_open=True)
        check_sensor(self.focal_length_mm, self.sensor_width_mm, self.sensor_height_mm)
        check_range("the f-stop", self.f_stop, 0.0, 1000.0, low_open=True)
        check(self.sensor_fit in SENSOR_FITS, f"unknown sensor fit {self.sensor_fit!r}")

    def coc_px_per_dioptre(self, width: int, height: int) -> float:
        """A f_px: CoC pixels per dioptre of defocus for this lens at ``width`` x ``height``."""
        from ..optics import focal_length_pixels

        f_px = focal_length_pixels(self.focal_length_mm, width, height, self.sensor_width_mm,
                                   self.sensor_height_mm, self.sensor_fit)
        return self.focal_length_mm * 1e-3 / self.f_stop * f_px


def _check_boxes(boxes: Any, name: str) -> None:
    check(isinstance(boxes, (list, tuple)) and len(boxes) > 0, f"{name} must be a list of boxes, one per frame")
    for b in boxes:
        check(b is None or (isinstance(b, (list, tuple)) and len(b) == 4
                            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in b)),
              f"each of {name} is x0 y0 x1 y1 or null, got {b!r}")


@dataclass(frozen=True)
class FocusTrackClipParams(FocusTrackParams):
    """The worker op's parameters: the track's, plus where the whole clip is (the compositor hands
    a node one frame at a time, so the op reads every frame by path) and which frame to answer.

    ``frames``: one entry per frame of the clip, ``{"image": path, "image_layer": name or null,
    "depth": path, "depth_layer": name or null}`` (EXR layers as ``ViewLayer.Combined``; PNG, JPEG,
    TIFF, PFM, NPY files as they are), or ``{"video": path, "video_frame": k, ...}`` for a frame
    of a movie file; ``None``: the request's own inputs are a clip of one frame (nothing to track).
    The subject may also come as ``box_uv`` / ``boxes_uv``: boxes in 0..1 of the
    frame from the top-left (the node's box, Blender's tracking markers)."""

    frames: Any = param(None, help="the clip, one entry per frame: image and depth paths (and EXR layers)")
    frame_index: int = param(0, help="the frame whose overlay is written (the worker: the frame it answers)")
    box_uv: tuple[float, float, float, float] | None = param(
        None, help="the subject's box at the start frame in 0..1 of the frame, x0 y0 x1 y1 from the top-left")
    boxes_uv: Any = param(None, help="a box per frame in 0..1 of the frame, top-left origin (or null), e.g. "
                                     "Blender's markers: JSON text or a .json file")

    def _has_subject(self) -> bool:
        return super()._has_subject() or self.box_uv is not None or self.boxes_uv is not None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.frames is None or (isinstance(self.frames, list) and len(self.frames) > 0),
              "frames must list the clip's frames")
        for entry in self.frames or []:
            check(isinstance(entry, dict) and isinstance(entry.get("depth"), str)
                  and (isinstance(entry.get("image"), str) or isinstance(entry.get("video"), str)),
                  f"each frame needs an image (or video) path and a depth path, got {entry!r}")
        count = len(self.frames) if self.frames else 1
        check(0 <= self.frame_index < count, f"frame {self.frame_index} is outside the clip's {count} frames")
        if self.box_uv is not None:
            check_finite("the box", *self.box_uv)
            x0, y0, x1, y1 = self.box_uv
            check(0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0,
                  f"the box {tuple(self.box_uv)} must lie in 0..1 with x1 > x0 and y1 > y0")
        if self.boxes_uv is not None:
            _check_boxes(self.boxes_uv, "boxes_uv")
            check(self.frames is None or len(self.boxes_uv) == len(self.frames),
                  f"{len(self.frames or ())} frames but {len(self.boxes_uv)} marker boxes")

    def for_size(self, width: int, height: int) -> FocusTrackParams:
        """The track's own parameters, boxes in pixels of a ``width`` x ``height`` clip."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(FocusTrackParams)}

        def px(b: Any) -> tuple[float, float, float, float] | None:
            return None if b is None else (b[0] * width, b[1] * height, b[2] * width, b[3] * height)

        if self.box_uv is not None:
            values["box_px"] = px(self.box_uv)
        if self.boxes_uv is not None:
            values["boxes_px"] = [px(b) for b in self.boxes_uv]
        return FocusTrackParams(**values)


SPEC = OpSpec(
    name="focus_track", title="Focus Track", params_type=FocusTrackClipParams, command="focus-track",
    inputs=(Input("image", "Image", "color", "The clip to track in, scene-linear (frames read by path)"),
            Input("depth", "Depth", "value", "Planar depth, metres, per frame")),
    outputs=(Output("focus_distance", "Focus Distance", "value", "Smoothed focus distance of this frame, metres"),
             Output("confidence", "Confidence", "value", "Confidence of this frame's focus, 0..1"),
             Output("overlay", "Overlay", "color", "The frame with the box, the sampled depth and the "
                                                   "in-focus band", passthrough="image")),
)


@dataclass
class FocusTrack:
    """A clip's focus track, T frames.

    Attributes:
        boxes: (T, 4) x0 y0 x1 y1 pixels, top-left origin.
        focus_distance_m: (T,) smoothed planar focus distance, metres.
        raw_focus_distance_m: (T,) the sampled one (held frames repeat the last good value).
        confidence: (T,) 0..1.
        status: (T,) tracker status per frame (``tracked``, ``lost``, ``redetected``, ``init``, ``given``).
        held: (T,) bool, frames where the subject's depth was not found (value held).
        info: what was used: dead-band and depth of field in dioptres, lens scale, counts.
    """

    boxes: np.ndarray
    focus_distance_m: np.ndarray
    raw_focus_distance_m: np.ndarray
    confidence: np.ndarray
    status: list[str]
    held: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def rows(self, first_frame: int = 0) -> list[list[Any]]:
        """CSV rows ``frame,x0,y0,x1,y1,focus_distance_m,raw_focus_distance_m,confidence``."""
        return [[first_frame + t, *(round(float(v), 2) for v in self.boxes[t]),
                 round(float(self.focus_distance_m[t]), 5), round(float(self.raw_focus_distance_m[t]), 5),
                 round(float(self.confidence[t]), 4)] for t in range(len(self.status))]


CSV_HEADER = "frame,x0,y0,x1,y1,focus_distance_m,raw_focus_distance_m,confidence"


def check_box(box: Sequence[float], width: int, height: int, what: str = "the box") -> None:
    """The box must overlap the image by at least a pixel each way."""
    x0, y0, x1, y1 = box
    check(x1 > x0 and y1 > y0, f"{what} {tuple(box)} is empty: it needs x1 > x0 and y1 > y0")
    check(x0 < width and y0 < height and x1 > 0 and y1 > 0 and min(x1, width) - max(x0, 0) >= 1
          and min(y1, height) - max(y0, 0) >= 1,
          f"{what} {tuple(box)} lies outside the {width}x{height} image")


def _track_pass(frames: Sequence[np.ndarray], depths: Sequence[np.ndarray], order: list[int], box: tuple,
                params: FocusTrackParams, tick: Any) -> dict[int, tuple]:
    """Track and sample along ``order`` (frame indices, the first holding ``box``)."""
    from ..focus_track.sampling import FocusSampler, locate_by_depth
    from ..focus_track.tracker import BoxTracker, scale_box, to_tracking_image

    tracker, sampler = BoxTracker(params.method), FocusSampler()
    width = np.asarray(depths[order[0]]).shape[1]
    s = min(1.0, params.track_width_px / width) if params.track_width_px else 1.0

    def down(b: tuple) -> tuple:  # full-size pixels to the tracker's
        return tuple(v * s for v in b)

    def up(b: tuple) -> tuple:
        return tuple(v / s for v in b)

    out: dict[int, tuple] = {}
    reference: tuple[float, float] | None = None  # (box diagonal, distance) at a good frame
    last_good_distance: float | None = None
    for n, t in enumerate(order):
        image = to_tracking_image(np.asarray(frames[t]), s)
        depth = np.asarray(depths[t], np.float32)
        if n == 0:
            state = tracker.start(image, down(box))
        else:
            # While the subject is hidden it keeps walking: its box grows as its distance shrinks,
            # and a re-detected box must show a surface where the subject should be.
            predicted, last = sampler.predicted(), last_good_distance
            scale = last / predicted if predicted and last else 1.0
            lost_before = tracker.lost_for
            # A subject found again must stand where its distance should be now, within what the
            # prediction can be off after the frames it was hidden: clutter a little nearer or
            # farther looks like it too, and would be followed from then on.
            near = 0.06 + 0.02 * sampler.held_for
            state = tracker.update(image, scale=scale, verify=lambda b: sampler.finds_subject(depth, up(b), near))
            if not state.good and predicted:
                # Appearance fails while the subject is partly hidden; its visible part still stands
                # where its distance should be.
                found = locate_by_depth(depth, up(state.box), predicted, tolerance=near,
                                        reach=0.5 + 0.5 * (lost_before + 1))
                if found is not None and sampler.finds_subject(depth, found, near):
                    state = tracker.restart(image, down(found))
        state = type(state)(up(state.box), state.status, state.score)  # full-size pixels from here on
        sample = sampler.sample(depth, state.box, usable=state.good)
        if state.good and sample.held and n > 0:
            # The filter holds on, but not to anything at the subject's distance: it has slid onto
            # an occluder. Search from the last good box instead.
            tracker.mark_lost()
            state = type(state)(state.box, "lost", state.score)
        current = state.box
        if params.scale_from_depth and state.good and not sample.held:
            diagonal = math.hypot(current[2] - current[0], current[3] - current[1])
            if reference is None:
                reference = (diagonal, sample.distance_m)
            else:
                wanted = reference[0] * reference[1] / sample.distance_m
                ratio = wanted / max(diagonal, 1e-6)
                if abs(ratio - 1.0) > RESIZE_TOLERANCE[params.method]:
                    current = scale_box(current, ratio)
                    tracker.resize(image, down(current))
        if state.good and not sample.held:
            last_good_distance = sample.distance_m
        confidence = sample.confidence * (1.0 if state.good else 0.3)
        out[t] = (current, sample.distance_m, confidence, state.status, sample.held)
        tick()
    return out


def _given_pass(depths: Sequence[np.ndarray], boxes: Sequence[Any], tick: Any) -> dict[int, tuple]:
    """Sample along boxes given per frame (Blender's markers); frames without a box are held."""
    from ..focus_track.sampling import FocusSampler

    sampler = FocusSampler()
    out: dict[int, tuple] = {}
    last_box = next((b for b in boxes if b is not None), None)
    for t, b in enumerate(boxes):
        depth = np.asarray(depths[t], np.float32)
        usable = b is not None
        box = tuple(float(v) for v in (b if usable else last_box))
        last_box = box
        sample = sampler.sample(depth, box, usable=usable)
        out[t] = (box, sample.distance_m, sample.confidence, "given" if usable else "lost", sample.held)
        tick()
    return out


def run(frames: Sequence[np.ndarray], depths: Sequence[np.ndarray], params: FocusTrackParams,
        progress: ProgressFn | None = None) -> FocusTrack:
    """Track the subject through ``frames`` and pull focus on it.

    Args:
        frames: T frames (H, W, 3|4) scene-linear float (or uint8 sRGB); any sequence that indexes,
            so a lazy loader works.
        depths: T planar depth maps (H, W), metres.
        params: see :class:`FocusTrackParams`.
        progress: called as ``progress(done, T)``.
    """
    from ..focus_track.smoothing import PullerSettings, depth_of_field_dioptres, pull_focus

    count = len(frames)
    check(count >= 1, "no frames given")
    check(len(depths) == count, f"{count} frames but {len(depths)} depth maps")
    first_depth = np.asarray(depths[0])
    check(first_depth.ndim == 2, f"depth maps must be (H, W), got {first_depth.shape}")
    height, width = first_depth.shape
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(min(done[0], count), count)

    if params.boxes_px is not None:
        check(len(params.boxes_px) == count, f"{count} frames but {len(params.boxes_px)} boxes")
        check(any(b is not None for b in params.boxes_px), "no frame has a box")
        for b in params.boxes_px:
            if b is not None:
                check_box(b, width, height, "a given box")
        per_frame = _given_pass(depths, params.boxes_px, tick)
    else:
        assert params.box_px is not None
        check(params.start_frame < count, f"the start frame {params.start_frame} is past the last frame "
                                          f"({count - 1})")
        check_box(params.box_px, width, height)
        start = params.start_frame
        box = tuple(float(v) for v in params.box_px)
        per_frame = _track_pass(frames, depths, list(range(start, count)), box, params, tick)
        if start > 0:
            per_frame.update(_track_pass(frames, depths, list(range(start, -1, -1)), box, params, tick))

    order = range(count)
    boxes = np.array([per_frame[t][0] for t in order], np.float64)
    raw = np.array([per_frame[t][1] for t in order], np.float64)
    confidence = np.array([per_frame[t][2] for t in order], np.float64)
    status = [per_frame[t][3] for t in order]
    held = np.array([per_frame[t][4] for t in order], bool)
    coc_scale = params.coc_px_per_dioptre(width, height)
    dof = depth_of_field_dioptres(coc_scale, params.coc_limit_px)
    settings = PullerSettings(fps=params.fps, max_rack_dioptres_per_s=params.max_rack_dioptres_per_s,
                              response_s=params.response_s, ease_s=params.ease_s,
                              dead_band_dioptres=params.dead_band * dof, anticipate=params.anticipate)
    pulled = pull_focus(raw, held, settings)
    info = {"frames": count, "width": width, "height": height, "method": params.method,
            "coc_px_per_dioptre": coc_scale, "depth_of_field_dioptres": dof,
            "dead_band_dioptres": pulled.dead_band_dioptres, "noise_dioptres": pulled.noise_dioptres,
            "lost_frames": [t for t in order if status[t] == "lost"],
            "redetected_frames": [t for t in order if status[t] == "redetected"],
            "held_frames": [t for t in order if held[t]]}
    return FocusTrack(boxes, pulled.distance_m, raw, np.clip(confidence, 0.0, 1.0), status, held, info)
