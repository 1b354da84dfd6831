"""``focal_stack_depth``: :mod:`core.pipelines.focal_stack_depth` for the Focal Stack Depth node.

Stack mode: the node's linked slices, ``slice_1`` ... ``slice_8`` in socket order (unlinked ones
are left out by the add-on).

Video mode (``params.stack`` set): a focus sweep read by path, as the command line reads
``--stack ... --frame``: one image file per frame of the clip, or one movie file, with one focus
distance per clip frame (``focus_distances_m``, or ``focus_file`` in ``--focus-file``'s format).
The compositor hands a node one frame at a time, but a frame's depth needs its focus ramp and the
temporal fusion needs the whole clip; so, as the ``focus_track`` op does, the op reads the clip
itself, runs the video pipeline once for every frame and keeps the results (keyed by the
parameters less the frame, and each file's size and modification time): every later frame is a
lookup. ``slice_1`` (the frame the compositor shows) only checks the size.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from typing import Any

from ...errors import check
from ...pipelines import Result
from ...pipelines.focal_stack_depth import SPEC, FocalStackDepthClipParams, run as pipeline, run_video
from ..protocol import Job
from .focus_track import _stamp, _video_frames

__all__ = ["SPEC", "run"]

_CLIPS: OrderedDict[str, list[Result]] = OrderedDict()
_KEEP = 2  # clips kept: every frame's maps of a short clip or two


def clip_key(params: FocalStackDepthClipParams) -> str:
    """What a clip's results depend on: every parameter but the frame asked, and every file's identity."""
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name != "frame"}
    files = list(params.stack) + ([params.focus_file] if params.focus_file else [])
    return json.dumps([values, [_stamp(f) for f in files]], sort_keys=True, default=str)


def clip_results(params: FocalStackDepthClipParams, progress: Any = None) -> list[Result]:
    """Every frame's result of the clip ``params.stack`` (computed once per :func:`clip_key`)."""
    from ...focal_stack.video import is_video_path, read_focus_rows, read_sweep, sweep_focus

    key = clip_key(params)
    if key in _CLIPS:
        _CLIPS.move_to_end(key)
        return _CLIPS[key]
    stack = list(params.stack)
    movie = len(stack) == 1 and is_video_path(stack[0])
    frames = _video_frames(stack[0]) if movie else read_sweep(stack)
    rows = (read_focus_rows(params.focus_file) if params.focus_file
            else [(float(d),) for d in params.focus_distances_m or ()])
    distances = sweep_focus(rows, len(frames))
    results: list[Result] = []
    for t, result in run_video(frames, distances, params.stack_params(distances), range(len(frames))):
        results.append(result)
        if progress is not None:
            progress(t + 1, len(frames))
    _CLIPS[key] = results
    while len(_CLIPS) > _KEEP:
        _CLIPS.popitem(last=False)
    return results


def run(job: Job, params: FocalStackDepthClipParams) -> Result:
    if params.stack is None:
        keys = [k for k in SPEC.input_keys() if job.has(k)]
        return pipeline([job.input(k) for k in keys], params, progress=job.progress)
    results = clip_results(params, job.progress)
    t = int(params.frame or 0)
    check(t < len(results), f"frame {t} is outside the clip's {len(results)} frames")
    result = results[t]
    if job.has("slice_1"):
        h, w = job.input("slice_1").shape[:2]
        ch, cw = result.outputs["depth"].shape[:2]
        check((w, h) == (cw, ch), f"this frame is {w}x{h} but the clip's frames are {cw}x{ch}")
    return Result(result.outputs, {**result.info, "frame": t, "frames": len(results)}, list(result.warnings))

