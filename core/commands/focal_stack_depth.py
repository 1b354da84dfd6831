"""``python -m core focal-stack-depth``: depth and an all-in-focus image from a focal stack.

argparse to :class:`core.pipelines.focal_stack_depth.FocalStackDepthParams`, files (slices, a
folder, a video, focus files) around :mod:`core.pipelines.focal_stack_depth`: the same pipeline
the Focal Stack Depth node runs.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from ..errors import check
from ..pipelines.focal_stack_depth import (FocalStackDepthParams, run as run_stack, run_banded, run_video,
                                           runs_banded)
from .common import add_nan_policy
from .options import add_options, params_from

FOCUS_FILE = "focus_distances.txt"

EPILOG = f"""\
Slices: several images, a folder of images (sorted by name), or a focus-sweep video. Images are
EXR (scene-linear) or PNG/JPEG/TIFF (sRGB, linearised); all slices the same size.
Focus distances: metres, one per slice (inf for infinity), as --focus-distances or --focus-file
(one number per line; for a video, one per frame, or 'FRAME METRES' pairs read sparsely and
interpolated in dioptres). A folder's own {FOCUS_FILE} is used when neither is given. Without
distances, depth comes out as a fractional slice index (classical method only).
Outputs: --depth, --confidence and --uncertainty as .exr/.pfm/.npy (metres, [0, 1], metres);
--aif (optional) as any image; no two the same file, all checked before any work and written
together at the end. --method physical and --method learned-camera read the camera: give
--focal-length, --f-stop and --sensor-width; a camera that blurs the focus range apart by under a
pixel is refused.
Large stacks (over 512 MiB of slices) with the classical method and no alignment (--align none,
or auto without --focal-length) run in bands of rows: memory stays bounded whatever the number of
slices. A job that would need more memory than is free (or than $REFOCUS_MEMORY_LIMIT, e.g. 4G)
is refused before it starts. Limits: --window 1..255 px.
For a video, --frame picks the frame (default: the middle one); --frame all writes every frame,
with '#' in the output names standing for the frame number. Images (a folder or a sequence) given
with --frame are a focus sweep's frames in order, as a video's. With --method physical a sweep's
per-frame depths are fused over time (--no-temporal: each frame alone).

examples:
  python -m core focal-stack-depth --stack s0.jpg s1.jpg s2.jpg --focus-distances 0.3 0.6 2 \\
      --focal-length 4.3 --depth depth.exr --aif aif.png --confidence conf.exr
  python -m core focal-stack-depth --stack sweep.mp4 --focus-file focus.txt --frame all \\
      --depth out/depth_###.exr --aif out/aif_###.png
  python -m core focal-stack-depth --stack folder/ --method physical --focal-length 50 --f-stop 2 \\
      --depth depth.exr --uncertainty sigma.exr
  python -m core focal-stack-depth --stack folder/ --method learned-camera --focal-length 4.3 \\
      --f-stop 1.8 --sensor-width 5.6 --depth depth.exr
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("focal-stack-depth", help="depth and all-in-focus from a focal stack or focus sweep",
                       description="Depth from focus: a depth map, an all-in-focus image and a confidence map "
                                   "from images focused at different distances.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", nargs="+", required=True, metavar="SLICE", help="slice images, a folder, or a video")
    p.add_argument("--focus-file", help="text file of focus distances (see below)")
    p.add_argument("--depth", required=True, help="output depth map (.exr, .pfm, .npy)")
    p.add_argument("--aif", help="output all-in-focus image (optional)")
    p.add_argument("--confidence", help="output confidence map (.exr, .pfm, .npy)")
    p.add_argument("--uncertainty", help="output depth uncertainty map, one standard deviation in depth's unit "
                                         "(.exr, .pfm, .npy)")
    p.add_argument("--frame", default=None, help="video: frame index, or 'all' (default: the middle frame)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    add_nan_policy(p)
    add_options(p.add_argument_group("stack, camera and method"), FocalStackDepthParams)
    p.set_defaults(run=run)


def _read_focus_file(path: str) -> list[tuple[float, ...]]:
    from ..focal_stack.video import read_focus_rows

    return read_focus_rows(path)


def _slice_paths(stack: list[str]) -> tuple[list[Path], Path | None]:
    """The slice files, and the folder they came from (if one was given)."""
    from ..focal_stack.video import is_video_path
    from ..imageio import IMAGE_EXTENSIONS, is_image_path

    if len(stack) == 1 and Path(stack[0]).is_dir():
        folder = Path(stack[0])
        files = sorted((f for f in folder.iterdir() if f.is_file() and is_image_path(f)),
                       key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)])
        check(bool(files), f"folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return files, folder
    for s in stack:
        check(not is_video_path(s), f"give a video alone: --stack {s}")
    return [Path(s) for s in stack], None


def _outputs(args: argparse.Namespace, many: bool, frame: int = 0):
    """The outputs (of one frame) as a checked core.outputs.OutputSet, and its (output, key) pairs."""
    from ..imageio import IMAGE_EXTENSIONS, MAP_EXTENSIONS
    from ..outputs import OutputSet

    for name in filter(None, (args.depth, args.aif, args.confidence, args.uncertainty)):
        check(not many or "#" in name, f"--frame all writes one file per frame: put '#' in {name}")
    outputs = OutputSet()
    wanted = [(outputs.add(_numbered(args.depth, frame), MAP_EXTENSIONS, "depth"), "depth")]
    if args.aif:
        wanted.append((outputs.add(_numbered(args.aif, frame), IMAGE_EXTENSIONS, "all-in-focus"), "all_in_focus"))
    if args.confidence:
        wanted.append((outputs.add(_numbered(args.confidence, frame), MAP_EXTENSIONS, "confidence"),
                       "confidence"))
    if args.uncertainty:
        wanted.append((outputs.add(_numbered(args.uncertainty, frame), MAP_EXTENSIONS, "uncertainty"),
                       "uncertainty"))
    return outputs, wanted


def _write(args: argparse.Namespace, many: bool, frame, result) -> None:
    from ..imageio import write_image, write_map

    outputs, wanted = _outputs(args, many, frame if many else 0)
    for _, key in wanted:
        check(key in result.outputs, f"this run gives no {key} map (large banded stacks have no uncertainty)")
    with outputs.writing():
        for out, key in wanted:
            values = result.outputs[key]
            if key == "all_in_focus":
                outputs.write(out, lambda tmp, v=values: write_image(tmp, v))
            else:
                outputs.write(out, lambda tmp, v=values, ch="Z" if key == "depth" else "V":
                              write_map(tmp, v[..., 0], channel=ch))


def _numbered(path: str, frame: int) -> str:
    return re.sub(r"#+", lambda m: f"{frame:0{len(m.group(0))}d}", path)


def run(args: argparse.Namespace) -> int:
    from ..focal_stack.video import is_video_path

    check(args.focus_file is None or args.focus_distances_m is None,
          "give --focus-distances or --focus-file, not both")
    rows = _read_focus_file(args.focus_file) if args.focus_file else None
    # A video is a focus sweep; so are images (a folder, a sequence) given with --frame.
    video = (len(args.stack) == 1 and is_video_path(args.stack[0])) or args.frame is not None
    many = video and args.frame == "all"
    _outputs(args, many)  # every output checked before any work

    start = time.perf_counter()
    results = _run_video(args, rows) if video else [(None, _run_stack(args, rows))]
    for frame, result in results:
        _write(args, many, frame, result)
    if not args.quiet:
        last = results[-1][1]
        h, w = last.outputs["depth"].shape[:2]
        distances = last.info["focus_distances_m"]
        params = params_from(FocalStackDepthParams, args,  # the distances as read (a focus file's too)
                             focus_distances_m=tuple(distances) if distances is not None else None)
        print(f"wrote {args.depth} ({w}x{h}, {len(results)} frame(s), {params.method}, depth in "
              f"{last.info['depth_unit']}, {time.perf_counter() - start:.2f} s on {last.info['device']})", flush=True)
        if distances is not None and params.f_stop and params.focal_length_mm:
            _report_resolution(distances, params, w, h)
    return 0


def _run_stack(args: argparse.Namespace, rows):
    from ..imageio import image_shape, read_image
    from ..memory import focal_stack_bytes
    from .common import check_memory

    files, folder = _slice_paths(args.stack)
    check(len(files) >= 2, f"a focal stack needs at least 2 slices, got {len(files)}")
    distances = args.focus_distances_m
    if rows is not None:
        check(all(len(r) == 1 for r in rows), "a focal stack's focus file lists one distance per line")
        distances = tuple(r[0] for r in rows)
    elif distances is None and folder is not None and (folder / FOCUS_FILE).is_file():
        distances = tuple(r[-1] for r in _read_focus_file(str(folder / FOCUS_FILE)))
    params = params_from(FocalStackDepthParams, args, focus_distances_m=distances)
    params.distances(len(files))  # wrong counts and duplicates refused before any slice is read
    shape = image_shape(files[0])
    if shape is not None:
        h, w, c = shape
        banded = runs_banded(params, len(files), h, w, c)
        check_memory(focal_stack_bytes(len(files), h, w, min(c, 3), banded),
                     f"depth from a focal stack of {len(files)} {w}x{h} slices")
        if banded:
            return _run_banded(files, params, (h, w, min(c, 3)), args)
    images = []
    for f in files:
        image = read_image(f, args.nan_policy)
        if images:
            first = images[0]
            check(image.shape[:2] == first.shape[:2], f"slice {f} is {image.shape[1]}x{image.shape[0]} but "
                                                      f"{files[0]} is {first.shape[1]}x{first.shape[0]}")
        images.append(image)
    return run_stack(images, params)


def _run_banded(files: list[Path], params: FocalStackDepthParams, shape: tuple[int, int, int],
                args: argparse.Namespace):
    """Large unaligned classical stacks: each slice read, stored (memory or disk) and let go, then
    the classical method band by band (core.focal_stack.banded)."""
    from ..focal_stack.banded import SliceStore
    from ..imageio import read_image
    from ..progress import ProgressBar

    h, w, c = shape
    with SliceStore(len(files), h, w, c) as store:
        for i, f in enumerate(files):
            image = read_image(f, args.nan_policy)
            check(image.shape[:2] == (h, w), f"slice {f} is {image.shape[1]}x{image.shape[0]} but {files[0]} is "
                                             f"{w}x{h}")
            check(image.shape[2] >= c, f"slice {f} has {image.shape[2]} channel(s) but {files[0]} has {c}")
            store.put(i, image[..., :c])
            del image
        bar = ProgressBar("focal-stack-depth", unit=" bands", enabled=not args.quiet)
        return run_banded(store, params, progress=bar)


def _run_video(args: argparse.Namespace, rows):
    from ..focal_stack.video import is_video_path, read_sweep, sweep_focus

    stack = args.stack
    if not (len(stack) == 1 and is_video_path(stack[0])):
        stack = [str(f) for f in _slice_paths(stack)[0]]
    frames = read_sweep(stack, args.nan_policy)
    count = len(frames)
    if rows is None:
        check(args.focus_distances_m is not None,
              "a focus-sweep video needs its focus distances (--focus-distances or --focus-file)")
        rows = [(v,) for v in args.focus_distances_m]
    distances = sweep_focus(rows, count)
    params = params_from(FocalStackDepthParams, args, focus_distances_m=tuple(distances))
    if args.frame in (None, "all"):
        which = list(range(count)) if args.frame == "all" else [count // 2]
    else:
        check(args.frame.isdigit() and int(args.frame) < count, f"--frame must be 0..{count - 1} or 'all', "
                                                                f"got {args.frame}")
        which = [int(args.frame)]
    return list(run_video(frames, distances, params, which))


def _report_resolution(distances: list[float], params: FocalStackDepthParams, w: int, h: int) -> None:
    """Print how many pixels of blur separate adjacent slices: below ~1 px depth is guesswork."""
    from ..optics import focal_length_pixels

    assert params.focal_length_mm is not None and params.f_stop is not None
    f_px = focal_length_pixels(params.focal_length_mm, w, h, params.sensor_width_mm)
    per_dioptre = params.focal_length_mm * 1e-3 / params.f_stop * f_px
    inv = sorted(1.0 / d for d in distances)
    gaps = [b - a for a, b in zip(inv, inv[1:])]
    print(f"blur between adjacent slices: {per_dioptre * min(gaps):.1f} to {per_dioptre * max(gaps):.1f} px "
          f"({per_dioptre:.1f} px per dioptre)", flush=True)
