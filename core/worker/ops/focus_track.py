"""``focus_track``: :mod:`core.pipelines.focus_track` for the Focus Track node, one frame per request.

The compositor evaluates a node one frame at a time, but a track needs the whole clip: tracking
runs forwards from the start frame and the focus puller smooths over the clip. So the node sends
the clip's frames by path (``params.frames``: image sequences, multilayer EXRs with their layers,
or a movie's frames) and the frame it wants (``frame_index``); the op reads the clip itself, runs
the pipeline once and keeps the track (keyed by the parameters less the frame index, and each
file's size and modification time), so that every later frame is a lookup.

Outputs for the asked frame: Focus Distance and Confidence as constant (H, W, 1) maps (a linked
Layered Defocus reads its focus from them), and the Overlay: the frame with the box, the sampled
distance and the in-focus band. ``info`` carries the whole smoothed series (the Bake Focus to
Camera operator keys the camera from it).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import check, fail
from ...pipelines import Result
from ...pipelines.focus_track import SPEC, FocusTrack, FocusTrackClipParams, run as pipeline
from ..protocol import Job, read_layer

__all__ = ["SPEC", "run"]

_TRACKS: OrderedDict[str, FocusTrack] = OrderedDict()
_KEEP = 4  # tracks kept: a few nodes or a few parameter sets being compared
_VIDEOS: OrderedDict[str, list[np.ndarray]] = OrderedDict()


def _stamp(path: str) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError:
        fail(f"frame file not found: {path}")
    return [path, st.st_size, st.st_mtime_ns]


def track_key(params: FocusTrackClipParams) -> str:
    """What the track depends on: every parameter but the frame asked, and every file's identity."""
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name != "frame_index"}
    files = sorted({e[k] for e in params.frames for k in ("image", "depth", "video") if isinstance(e.get(k), str)})
    return json.dumps([values, [_stamp(f) for f in files]], sort_keys=True, default=str)


def _video_frames(path: str) -> list[np.ndarray]:
    if path not in _VIDEOS:
        from ...focal_stack.video import read_frames

        _VIDEOS[path] = read_frames(path)
        while len(_VIDEOS) > 1:
            _VIDEOS.popitem(last=False)
    return _VIDEOS[path]


def read_plane(path: str, layer: str | None, what: str) -> np.ndarray:
    """(H, W, C) float32 from an EXR layer, or any image/map file core reads."""
    from ...imageio import read_image, read_map

    check(Path(path).is_file(), f"{what} not found: {path}")
    if Path(path).suffix.lower() == ".exr":
        return read_layer(path, layer)
    if what == "depth map":
        return read_map(path)[..., None]
    return read_image(path)


class ClipFrames:
    """The clip's frames (or depth maps) read on demand, a few kept."""

    def __init__(self, entries: list[dict[str, Any]], depth: bool) -> None:
        self.entries, self.depth = entries, depth
        self._kept: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> np.ndarray:
        if index in self._kept:
            return self._kept[index]
        e = self.entries[index]
        if self.depth:
            values = read_plane(e["depth"], e.get("depth_layer"), "depth map")[..., 0]
        elif isinstance(e.get("video"), str):
            frames = _video_frames(e["video"])
            k = int(e.get("video_frame", index))
            check(0 <= k < len(frames), f"frame {k} is outside the video {e['video']} ({len(frames)} frames)")
            values = frames[k]
        else:
            values = read_plane(e["image"], e.get("image_layer"), "frame")
        self._kept[index] = values
        while len(self._kept) > 4:
            self._kept.popitem(last=False)
        return values


def clip_track(params: FocusTrackClipParams, progress: Any = None) -> FocusTrack:
    """The track of the clip ``params.frames`` describes (computed once per key)."""
    key = track_key(params)
    if key in _TRACKS:
        _TRACKS.move_to_end(key)
        return _TRACKS[key]
    frames, depths = ClipFrames(params.frames, False), ClipFrames(params.frames, True)
    first = depths[0]
    height, width = first.shape
    for t in range(len(depths)):  # every map the size of the first, or one sentence saying which is not
        shape = depths[t].shape
        check(shape == (height, width), f"the depth of frame {t} is {shape[1]}x{shape[0]}, frame 0's {width}x{height}")
    track = pipeline(frames, depths, params.for_size(width, height), progress=progress)
    _TRACKS[key] = track
    while len(_TRACKS) > _KEEP:
        _TRACKS.popitem(last=False)
    return track


def run(job: Job, params: FocusTrackClipParams) -> Result:
    from ...focus_track.overlay import overlay_frame

    image, depth = job.input("image"), job.input("depth")[..., 0]
    warnings = []
    if params.frames is None:
        # No clip to read: this frame alone (the node's inputs are not file sequences).
        entry = {k: v for k, v in (("image", job.inputs["image"].get("path")),
                                   ("image_layer", job.inputs["image"].get("layer")),
                                   ("depth", job.inputs["depth"].get("path")),
                                   ("depth_layer", job.inputs["depth"].get("layer")))}
        # A marker's box for this frame stays (the node sends one); a box drawn at another frame does too.
        keep = params.boxes_uv if params.boxes_uv is not None and len(params.boxes_uv) == 1 else None
        params = dataclasses.replace(params, frames=[entry], frame_index=0, start_frame=0, boxes_uv=keep,
                                     boxes_px=None)
        warnings.append("the box is not tracked: feed Image and Depth from file sequences (Image nodes) "
                        "for the clip to be read")
    track = clip_track(params, job.progress)
    t = params.frame_index
    h, w = depth.shape
    check((w, h) == (track.info["width"], track.info["height"]),
          f"this frame's depth is {w}x{h} but the clip's frames are {track.info['width']}x{track.info['height']}")
    focus = float(track.focus_distance_m[t])
    good = track.status[t] != "lost" and not bool(track.held[t])
    overlay = overlay_frame(image, depth, tuple(track.boxes[t]), focus, track.info["coc_px_per_dioptre"],
                            params.coc_limit_px, good)
    outputs = {"focus_distance": np.full((h, w, 1), focus, np.float32),
               "confidence": np.full((h, w, 1), float(track.confidence[t]), np.float32),
               "overlay": overlay}
    info = {"focus_distance_m": focus, "raw_focus_distance_m": float(track.raw_focus_distance_m[t]),
            "confidence": float(track.confidence[t]), "status": track.status[t], "box_px": list(track.boxes[t]),
            "frame_index": t, "focus_distance_series_m": [float(v) for v in track.focus_distance_m],
            "raw_focus_distance_series_m": [float(v) for v in track.raw_focus_distance_m],
            "lost_frames": track.info["lost_frames"], "held_frames": track.info["held_frames"]}
    if not good:
        warnings.append(f"the subject is hidden at this frame; focus holds at {focus:.2f} m")
    return Result(outputs, info, warnings)
