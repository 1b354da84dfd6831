"""``python -m core focus-track``: a focus distance per frame that follows a subject through a clip.

argparse to :class:`core.pipelines.focus_track.FocusTrackParams`, files around
:func:`core.pipelines.focus_track.run` (the same pipeline the Focus Track node runs). Writes one CSV
row per frame; with ``--refocus-out`` also each frame refocused at its tracked distance by the
Layered Defocus pipeline.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..pipelines.focus_track import CSV_HEADER, FocusTrackClipParams, FocusTrackParams
from .common import expand_files
from .options import add_options, params_from

EPILOG = """\
Frames: image files (EXR scene-linear; PNG/JPEG/TIFF sRGB), a folder of them (name order), or one
video file (.mp4 .mov .avi .mkv .m4v .webm). Depth: planar metres (Blender's Z pass, Stereo Depth,
Focal Stack Depth or Mono Depth's metric output), one map per frame: EXR, PFM or NPY files, or a
folder of them. The box is in pixels of the start frame, top-left origin: x0 y0 x1 y1.
The subject may instead come as --box-uv (0..1 of the frame), or as a box per frame (--boxes in
pixels, --boxes-uv in 0..1; JSON text or a .json file, null where unknown), e.g. exported markers.
CSV: frame,x0,y0,x1,y1,focus_distance_m,raw_focus_distance_m,confidence (frame = index from 0).
The lens options (--focal-length, --f-stop, sensor) set the depth of field, hence the dead-band,
and the refocused frames of --refocus-out.

example:
  python -m core focus-track --frames shots/ --depth depth/ --box 80 40 120 110 --fps 24 \\
      --max-rack 2 --focal-length 50 --f-stop 2 --output track.csv --refocus-out refocused/
"""

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("focus-track", help="a focus distance per frame that follows a subject",
                       description="Track a subject through a clip and pull focus on it (SteReFo's focus "
                                   "tracking): CSRT/KCF box tracking, the depth mode in the box, focus-puller "
                                   "smoothing in dioptres.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", nargs="+", required=True, metavar="F", help="frames: files, a folder or a video")
    p.add_argument("--depth", nargs="+", required=True, metavar="D", help="depth maps: files or a folder")
    p.add_argument("--depth-channel", help="EXR channel holding depth (default: the only one, or Z/Depth)")
    p.add_argument("--nan-policy", choices=["error", "zero", "nearest"], default="nearest",
                   help="NaN or infinite depth (stereo holes, the sky): nearest (default: the nearest finite "
                        "pixel's), zero (ignored by the tracker; refused by --refocus-out) or error")
    p.add_argument("--output", required=True, help="CSV file to write")
    p.add_argument("--refocus-out", metavar="DIR", help="also write each frame refocused at its focus (EXR)")
    p.add_argument("--overlay-out", metavar="IMAGE", help="also write frame --frame-index with its box and "
                                                          "in-focus band (PNG, EXR, ...)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    # The worker op's parameters, less the clip (here: --frames and --depth).
    add_options(p.add_argument_group("subject, tracker, focus puller and lens"), FocusTrackClipParams,
                skip={"frames"})
    p.set_defaults(run=run)


def boxes_from(text: str | None, what: str) -> list | None:
    """Per-frame boxes from JSON text or a .json file (a list of [x0, y0, x1, y1] or null)."""
    import json

    from ..errors import fail

    if text is None:
        return None
    source = Path(text)
    try:
        raw = source.read_text() if source.suffix.lower() == ".json" and source.is_file() else text
        value = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{what} is neither a JSON list of boxes nor a .json file holding one ({exc})")
    return value


def track_params(args: argparse.Namespace, width: int, height: int) -> FocusTrackParams:
    """The track's parameters from the options, normalised boxes turned into pixels."""
    from ..errors import check

    chosen = [n for n in ("box_px", "box_uv", "boxes_px", "boxes_uv") if getattr(args, n, None) is not None]
    check(len(chosen) == 1, "give the subject as one of --box, --box-uv, --boxes or --boxes-uv"
          + (f", not {' and '.join(chosen)}" if chosen else ""))
    clip = params_from(FocusTrackClipParams, args, frames=None, frame_index=0,  # the CLI reads the clip itself
                       boxes_px=boxes_from(args.boxes_px, "--boxes"),
                       boxes_uv=boxes_from(args.boxes_uv, "--boxes-uv"))
    return clip.for_size(width, height)


class LazyFrames:
    """A sequence that reads item ``i`` on demand (a few kept), checking every item's size
    against the first's: the clip never has to fit in memory."""

    def __init__(self, paths: list[Path], read: Callable[[Path], np.ndarray], what: str,
                 size: tuple[int, int] | None = None, keep: int = 4) -> None:
        self.paths, self.read, self.what, self.size, self.keep = paths, read, what, size, keep
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        from ..errors import check

        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        values = self.read(self.paths[index])
        shape = (values.shape[1], values.shape[0])
        if self.size is None:
            self.size = shape
        check(shape == self.size, f"{self.what} {self.paths[index]} is {shape[0]}x{shape[1]}, "
                                  f"the first frame {self.size[0]}x{self.size[1]}")
        self._cache[index] = values
        while len(self._cache) > self.keep:
            self._cache.popitem(last=False)
        return values


def open_frames(given: list[str]) -> tuple[Any, list[str]]:
    """The frames as a sequence and a name per frame (for the refocused files)."""
    from ..errors import check
    from ..imageio import IMAGE_EXTENSIONS, read_image

    if len(given) == 1 and Path(given[0]).suffix.lower() in VIDEO_EXTENSIONS:
        from ..focal_stack.video import read_frames

        frames = read_frames(given[0])
        return frames, [f"frame_{i:05d}" for i in range(len(frames))]
    paths = expand_files(given, IMAGE_EXTENSIONS, "frame")
    stems = [p.stem for p in paths]
    check(len(set(stems)) == len(stems), "two frames share a file name; refocused frames would overwrite each other")
    return LazyFrames(paths, read_image, "frame"), stems


def run(args: argparse.Namespace) -> int:
    from ..errors import check
    from ..imageio import MAP_EXTENSIONS, read_map
    from ..pipelines.focus_track import run as run_pipeline
    from ..progress import ProgressBar

    out = Path(args.output)
    check(out.suffix.lower() == ".csv", f"the output must be a .csv file, got {out}")
    check((out.parent if str(out.parent) else Path(".")).is_dir(), f"output folder does not exist: {out.parent}")
    if args.refocus_out:
        check(not Path(args.refocus_out).is_file(), f"--refocus-out {args.refocus_out} is a file, not a folder")
    frames, names = open_frames(args.frames)
    depth_paths = expand_files(args.depth, MAP_EXTENSIONS, "depth map")
    check(len(depth_paths) == len(frames), f"{len(frames)} frames but {len(depth_paths)} depth maps")
    first = frames[0]
    size = (first.shape[1], first.shape[0])
    params = track_params(args, *size)
    check(0 <= args.frame_index < len(frames), f"--frame-index {args.frame_index} is outside the "
                                               f"{len(frames)} frames")
    if args.overlay_out:
        from .common import check_output_path

        check_output_path(args.overlay_out, what="overlay")
    depths = LazyFrames(depth_paths, lambda p: read_map(p, args.depth_channel, nan_policy=args.nan_policy),
                        "depth map", size)

    bar = ProgressBar("focus-track", unit=" frames", enabled=not args.quiet)
    start = time.perf_counter()
    track = run_pipeline(frames, depths, params, progress=bar)
    seconds = time.perf_counter() - start

    if args.refocus_out:
        refocus_all(frames, depths, names, track.focus_distance_m, params, Path(args.refocus_out), args.quiet)
    if args.overlay_out:
        from ..focus_track.overlay import overlay_frame
        from ..imageio import write_image

        t = args.frame_index
        good = track.status[t] != "lost" and not bool(track.held[t])
        write_image(args.overlay_out, overlay_frame(np.asarray(frames[t]), np.asarray(depths[t]), tuple(track.boxes[t]),
                                                    float(track.focus_distance_m[t]), track.info["coc_px_per_dioptre"],
                                                    params.coc_limit_px, good))
    text = CSV_HEADER + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in track.rows())
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, out)
    if not args.quiet:
        info = track.info
        print(f"wrote {out} ({len(frames)} frames, {1e3 * seconds / len(frames):.1f} ms/frame, "
              f"focus {track.focus_distance_m.min():.3f}-{track.focus_distance_m.max():.3f} m, "
              f"{len(info['lost_frames'])} frames lost, {len(info['held_frames'])} held)", flush=True)
    return 0


def refocus_all(frames: Any, depths: Any, names: list[str], focus_m: np.ndarray, params: FocusTrackParams,
                folder: Path, quiet: bool) -> None:
    """Each frame refocused at its smoothed distance with the Layered Defocus pipeline (EXR)."""
    from ..imageio import write_image
    from ..pipelines.defocus import LayeredDefocusParams, run as defocus
    from ..progress import ProgressBar

    folder.mkdir(parents=True, exist_ok=True)
    lens = LayeredDefocusParams(focal_length_mm=params.focal_length_mm, f_stop=params.f_stop,
                                focus_distance_m=float(focus_m[0]), sensor_width_mm=params.sensor_width_mm,
                                sensor_height_mm=params.sensor_height_mm, sensor_fit=params.sensor_fit)
    bar = ProgressBar("refocus", unit=" frames", enabled=not quiet)
    for t in range(len(names)):
        image = np.asarray(frames[t], np.float32)
        result = defocus(image, np.asarray(depths[t], np.float32), lens, focus_input_m=float(focus_m[t]))
        write_image(folder / f"{names[t]}.exr", result.outputs["image"])
        bar(t + 1, len(names))
