"""``python -m core focal-stack-depth``: depth and an all-in-focus image from a focal stack."""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import check, fail
from ..focal_stack.alignment import align_stack
from ..focal_stack.depth_from_focus import FocusResult, depth_from_focus
from ..focal_stack.focus_measures import MEASURES
from ..focal_stack.slices import check_focus_distances
from ..focal_stack.video import focal_stacks, interpolate_focus, is_video_path, read_frames
from ..imageio import IMAGE_EXTENSIONS, is_image_path, read_image, write_image, write_map
from ..optics import focal_length_pixels
from .common import add_device_argument, check_map_output, check_output_path, pick_device, tensor_to_image

FOCUS_FILE = "focus_distances.txt"

EPILOG = f"""\
Slices: several images, a folder of images (sorted by name), or a focus-sweep video. Images are
EXR (scene-linear) or PNG/JPEG/TIFF (sRGB, linearised); all slices the same size.
Focus distances: metres, one per slice (inf for infinity), as --focus-distances or --focus-file
(one number per line; for a video, one per frame, or 'FRAME METRES' pairs read sparsely and
interpolated in dioptres). A folder's own {FOCUS_FILE} is used when neither is given. Without
distances, depth comes out as a fractional slice index (classical method only).
Outputs: --depth and --confidence as .exr/.pfm/.npy (metres, [0, 1]); --aif as any image.
For a video, --frame picks the frame (default: the middle one); --frame all writes every frame,
with '#' in the output names standing for the frame number.

examples:
  python -m core focal-stack-depth --stack s0.jpg s1.jpg s2.jpg --focus-distances 0.3 0.6 2 \\
      --focal-length 4.3 --depth depth.exr --aif aif.png --confidence conf.exr
  python -m core focal-stack-depth --stack sweep.mp4 --focus-file focus.txt --frame all \\
      --depth out/depth_###.exr --aif out/aif_###.png
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("focal-stack-depth", help="depth and all-in-focus from a focal stack or focus sweep",
                       description="Depth from focus: a depth map, an all-in-focus image and a confidence map "
                                   "from images focused at different distances.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stack", nargs="+", required=True, metavar="SLICE", help="slice images, a folder, or a video")
    focus = p.add_mutually_exclusive_group()
    focus.add_argument("--focus-distances", type=float, nargs="+", metavar="M", help="focus distance of each slice, m")
    focus.add_argument("--focus-file", help="text file of focus distances (see below)")
    p.add_argument("--focal-length", type=float, metavar="MM",
                   help="lens focal length, mm: enables the focus-breathing correction")
    p.add_argument("--f-stop", type=float, metavar="N", help="aperture f-number (reports how well the stack "
                                                             "resolves depth)")
    p.add_argument("--sensor-width", type=float, default=36.0, metavar="MM", help="sensor width, mm (default 36)")
    p.add_argument("--depth", required=True, help="output depth map (.exr, .pfm, .npy)")
    p.add_argument("--aif", required=True, help="output all-in-focus image")
    p.add_argument("--confidence", help="output confidence map (.exr, .pfm, .npy)")
    p.add_argument("--method", choices=["classical", "learned"], default="classical")
    p.add_argument("--weights", help="FocalStackNet weights for --method learned (default: the shipped ones)")
    p.add_argument("--align", choices=["auto", "none", "breathing", "translation", "affine", "homography"],
                   default="auto", help="alignment: auto = breathing + translation with --focal-length, none "
                                        "without; affine/homography for hand-held stacks")
    p.add_argument("--measure", choices=sorted(MEASURES), default="modified-laplacian",
                   help="focus measure of the classical method")
    p.add_argument("--window", type=int, default=9, help="focus-measure window, pixels (default 9)")
    p.add_argument("--frame", default=None, help="video: frame index, or 'all' (default: the middle frame)")
    p.add_argument("--frames-window", type=int, metavar="K",
                   help="video: use frames within K of each frame (default: its whole focus ramp)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    add_device_argument(p)
    p.set_defaults(run=run)


def _read_focus_file(path: str) -> list[tuple[float, ...]]:
    p = Path(path)
    check(p.is_file(), f"focus file not found: {p}")
    rows = []
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
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


def _slice_paths(stack: list[str]) -> tuple[list[Path], Path | None]:
    """The slice files, and the folder they came from (if one was given)."""
    if len(stack) == 1 and Path(stack[0]).is_dir():
        folder = Path(stack[0])
        files = sorted((f for f in folder.iterdir() if f.is_file() and is_image_path(f)),
                       key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)])
        check(bool(files), f"folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return files, folder
    for s in stack:
        check(not is_video_path(s), f"give a video alone: --stack {s}")
    return [Path(s) for s in stack], None


def _outputs(args: argparse.Namespace, many: bool) -> None:
    check_map_output(args.depth.replace("#", "0"), "depth")
    check_output_path(args.aif.replace("#", "0"), IMAGE_EXTENSIONS, "all-in-focus")
    if args.confidence:
        check_map_output(args.confidence.replace("#", "0"), "confidence")
    for name in filter(None, (args.depth, args.aif, args.confidence)):
        check(not many or "#" in name, f"--frame all writes one file per frame: put '#' in {name}")


def _numbered(path: str, frame: int) -> str:
    return re.sub(r"#+", lambda m: f"{frame:0{len(m.group(0))}d}", path)


def run(args: argparse.Namespace) -> int:
    check(args.window >= 1, f"--window must be at least 1, got {args.window}")
    if args.focal_length is not None:
        check(args.focal_length > 0, f"--focal-length must be positive, got {args.focal_length}")
    if args.f_stop is not None:
        check(args.f_stop > 0, f"--f-stop must be positive, got {args.f_stop}")
    device = pick_device(args.device)
    rows = _read_focus_file(args.focus_file) if args.focus_file else None
    video = len(args.stack) == 1 and is_video_path(args.stack[0])
    many = video and args.frame == "all"
    _outputs(args, many)
    model = _LazyModel(args, device)

    start = time.perf_counter()
    if video:
        results = _run_video(args, rows, model, device)
    else:
        results = [(None, *_run_stack(args, rows, model, device))]
    for frame, result, distances in results:
        name = (lambda p: _numbered(p, frame)) if many else (lambda p: p)
        write_map(name(args.depth), result.depth[0, 0].cpu().numpy())
        write_image(name(args.aif), tensor_to_image(result.all_in_focus))
        if args.confidence:
            write_map(name(args.confidence), result.confidence[0, 0].cpu().numpy(), channel="V")
    if not args.quiet:
        _, last, distances = results[-1]
        h, w = last.depth.shape[-2:]
        unit = "m" if distances is not None else "slice index"
        print(f"wrote {args.depth} ({w}x{h}, {len(results)} frame(s), {args.method}, depth in {unit}, "
              f"{time.perf_counter() - start:.2f} s on {device})", flush=True)
        if distances is not None and args.f_stop and args.focal_length:
            _report_resolution(distances, args, w, h)
    return 0


class _LazyModel:
    """The network, loaded once on first use: after the cheap checks of the inputs have passed."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        check(args.method == "learned" or args.weights is None, "--weights is for --method learned")
        self.path, self.device, self.model = args.weights, device, None

    def get(self) -> torch.nn.Module:
        if self.model is None:
            from ..focal_stack.learned import load_model

            self.model = load_model(self.path, self.device)
        return self.model


def _distances(values: list[float] | None, count: int, method: str) -> list[float] | None:
    if values is None:
        check(method == "classical", "the learned method needs focus distances (--focus-distances or --focus-file)")
        return None
    return check_focus_distances(values, count).tolist()


def _run_stack(args: argparse.Namespace, rows, model, device: torch.device) -> tuple[FocusResult, list[float] | None]:
    files, folder = _slice_paths(args.stack)
    check(len(files) >= 2, f"a focal stack needs at least 2 slices, got {len(files)}")
    values = args.focus_distances
    if rows is not None:
        check(all(len(r) == 1 for r in rows), "a focal stack's focus file lists one distance per line")
        values = [r[0] for r in rows]
    elif values is None and folder is not None and (folder / FOCUS_FILE).is_file():
        values = [r[-1] for r in _read_focus_file(str(folder / FOCUS_FILE))]
    distances = _distances(values, len(files), args.method)
    images = []
    for f in files:
        image = read_image(f)
        if images:
            first = images[0]
            check(image.shape[:2] == first.shape[:2], f"slice {f} is {image.shape[1]}x{image.shape[0]} but "
                                                      f"{files[0]} is {first.shape[1]}x{first.shape[0]}")
        images.append(image)
    channels = min(min(i.shape[2] for i in images), 3)
    stack = torch.stack([torch.from_numpy(np.ascontiguousarray(i[..., :channels].transpose(2, 0, 1)))
                         for i in images]).to(device)
    if channels == 1 and args.method == "learned":
        stack = stack.expand(-1, 3, -1, -1)
    stack = _align(stack, distances, args)
    return _estimate(stack, distances, args, model), distances


def _align(stack: torch.Tensor, distances: list[float] | None, args: argparse.Namespace) -> torch.Tensor:
    mode = args.align
    if mode == "auto":
        mode = "translation" if args.focal_length and distances else "none"
    if mode == "none":
        return stack
    breathing = args.focal_length is not None and distances is not None
    check(mode != "breathing" or breathing, "--align breathing needs --focal-length and focus distances")
    refine = None if mode == "breathing" else mode
    return align_stack(stack, distances if breathing else None, args.focal_length if breathing else None,
                       refine=refine).images


def _estimate(stack: torch.Tensor, distances: list[float] | None, args: argparse.Namespace,
              model: _LazyModel) -> FocusResult:
    with torch.no_grad():
        if args.method == "learned":
            from ..focal_stack.learned import learned_depth

            return learned_depth(stack, distances, model.get())
        return depth_from_focus(stack, distances, measure=args.measure, window=args.window)


def _run_video(args: argparse.Namespace, rows, model, device: torch.device):
    frames = read_frames(args.stack[0])
    count = len(frames)
    if rows is not None and len(rows[0]) == 2:
        samples = {int(r[0]): r[1] for r in rows}
        check(all(0 <= f < count for f in samples), f"focus file names frames outside 0..{count - 1}")
        distances = interpolate_focus(samples, count)
    else:
        values = [r[0] for r in rows] if rows is not None else args.focus_distances
        check(values is not None, "a focus-sweep video needs its focus distances (--focus-distances or --focus-file)")
        check(len(values) == count, f"got {len(values)} focus distance(s) for a {count}-frame video; give one "
                                    f"per frame, or 'FRAME METRES' pairs in --focus-file")
        for v in values:
            check(v > 0 and not math.isnan(v), f"focus distances must be positive, got {v:g}")
        distances = list(values)
    if args.frame in (None, "all"):
        which = list(range(count)) if args.frame == "all" else [count // 2]
    else:
        check(args.frame.isdigit() and int(args.frame) < count, f"--frame must be 0..{count - 1} or 'all', "
                                                                f"got {args.frame}")
        which = [int(args.frame)]
    refine = None if args.align in ("none", "breathing") else ("translation" if args.align == "auto" else args.align)
    focal = args.focal_length if args.align != "none" else None
    out = []
    for fs in focal_stacks(frames, distances, window=args.frames_window, focal_length_mm=focal, refine=refine,
                           which=which, device=device):
        out.append((fs.frame, _estimate(fs.alignment.images, fs.focus_distances, args, model), fs.focus_distances))
    return out


def _report_resolution(distances: list[float], args: argparse.Namespace, w: int, h: int) -> None:
    """Print how many pixels of blur separate adjacent slices: below ~1 px depth is guesswork."""
    f_px = focal_length_pixels(args.focal_length, w, h, args.sensor_width)
    per_dioptre = args.focal_length * 1e-3 / args.f_stop * f_px
    inv = sorted(1.0 / d for d in distances)
    gaps = [b - a for a, b in zip(inv, inv[1:])]
    print(f"blur between adjacent slices: {per_dioptre * min(gaps):.1f} to {per_dioptre * max(gaps):.1f} px "
          f"({per_dioptre:.1f} px per dioptre)", flush=True)
