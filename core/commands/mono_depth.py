"""``python -m core mono-depth``: depth from single images, with the built-in network or an ONNX model.

argparse to :class:`core.pipelines.mono_depth.MonoDepthParams`, files around
:func:`core.pipelines.mono_depth.run`: the same pipeline the Mono Depth node runs.

One image gives one output file; several images (or folders of them) give one output each, into a
folder or by a name pattern. Every output is checked before any work and all are renamed into
place together at the end (:class:`core.outputs.OutputSet`), so bad input writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..pipelines.mono_depth import MonoDepthParams, run as run_pipeline
from .common import add_nan_policy, expand_files
from .options import add_options, params_from

FORMATS = ("exr", "pfm", "npy", "png")
OUTPUT_EXTENSIONS = tuple(f".{f}" for f in FORMATS)

EPILOG = """\
Images: EXR (scene-linear) or PNG/JPEG/TIFF (sRGB); folders are expanded to the images in them,
in name order.
Output: normalised inverse depth (1 = nearest, 0 = farthest) at the input's size, or with
--near/--far (or --fit) planar depth in metres; by extension .exr (channel Y for inverse depth,
Z for depth), .pfm, .npy, or .png (16-bit, inverse depth only: value * 65535).
Several images: --output is a folder (files named after the images, type from --format) or a
pattern with {stem} (the image's name without extension) or {index} (its position from 0), for
example 'depth/{stem}_depth.exr' or 'depth/frame_{index:04d}.pfm'.
Models: 'builtin' (the shipped network) or an ONNX file: Depth Anything V2 and MiDaS exports take
the defaults (ImageNet normalisation, sides multiples of 14, inverse depth out); give
--normalisation, --size-multiple and --model-output for others. Nothing is downloaded.

examples:
  python -m core mono-depth --image photo.jpg --output photo_depth.exr --near 1.5 --far 40
  python -m core mono-depth --image plate/ --output depth/ --sequence --smoothing 0.5
  python -m core mono-depth --image shot.png --output d.exr --model depth_anything_v2_vits.onnx \\
      --fit 812 540 2.4 300 200 9.0
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mono-depth", help="depth from a single image (built-in network or an ONNX model)",
                       description="Depth from single images: normalised inverse depth from the built-in "
                                   "DeepLens-style network or any ONNX depth model, upsampled to the image's "
                                   "size along its edges, optionally in metres.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True, nargs="+", metavar="IMG", help="image(s) or folder(s) of images")
    p.add_argument("--output", required=True, help="output file, or for several images a folder or a pattern")
    p.add_argument("--inverse-depth", metavar="OUT",
                   help="with --near/--far or --fit, also write the normalised inverse depth here (file, folder "
                        "or pattern as --output)")
    p.add_argument("--format", choices=FORMATS, default="exr", help="file type for outputs into a folder (default exr)")
    p.add_argument("--sequence", action="store_true",
                   help="the images are frames of one shot: align each frame's scale and shift to the previous "
                        "one, so the depth does not flicker")
    p.add_argument("--smoothing", type=float, default=0.0, metavar="S",
                   help="with --sequence, temporal smoothing 0 (none, default) to 0.95")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_nan_policy(p)
    add_options(p.add_argument_group("model and metric depth"), MonoDepthParams)
    p.set_defaults(run=run)


def expand_images(given: list[str]) -> list[Path]:
    """The image files named by ``given``: files as they are, folders expanded to their images in name order."""
    from ..formats import IMAGE_EXTENSIONS

    return expand_files(given, IMAGE_EXTENSIONS, "image")


def output_paths(target: str, images: list[Path], fmt: str, what: str) -> list[str]:
    """One output path per image: ``target`` itself (one image), a folder, or a {stem}/{index} pattern."""
    from ..errors import check

    if os.path.isdir(target):
        paths = [os.path.join(target, f"{image.stem}.{fmt}") for image in images]
    elif "{" in target:
        try:
            paths = [target.format(stem=image.stem, index=i) for i, image in enumerate(images)]
        except (KeyError, IndexError, ValueError) as exc:
            check(False, f"the {what} pattern {target!r} is not valid: use {{stem}} or {{index}} ({exc})")
    else:
        check(len(images) == 1, f"{len(images)} images need the {what} to be a folder or a pattern with "
                                f"{{stem}} or {{index}}, not the one file {target}")
        paths = [target]
    check(len(set(paths)) == len(paths), f"the {what} {target!r} gives two images the same file name; "
                                         f"use {{index}} in a pattern")
    inputs = {str(image.resolve()) for image in images}
    for path in paths:
        check(str(Path(path).resolve()) not in inputs, f"the {what} {path} would overwrite an input image")
    return paths


def write_output(path: Path, values, channel: str) -> None:
    """Write an (H, W) map by extension; PNG is 16-bit, [0, 1] scaled to 0..65535."""
    import cv2
    import numpy as np

    from ..errors import check
    from ..imageio import write_map

    if path.suffix.lower() == ".png":
        encoded = np.round(np.clip(values, 0.0, 1.0) * 65535.0).astype(np.uint16)
        check(cv2.imwrite(str(path), encoded), f"cannot write {path}")
    else:
        write_map(path, values, channel)


def run(args: argparse.Namespace) -> int:
    from ..errors import check
    from ..imageio import read_image
    from ..mono.sequence import SequenceAligner
    from ..outputs import OutputSet
    from ..pipelines.mono_depth import backend
    from ..devices import pick_device
    from ..progress import ProgressBar

    # Everything that can be refused is refused before any work, so bad input writes nothing.
    params = params_from(MonoDepthParams, args)
    check(args.inverse_depth is None or params.metric,
          "--inverse-depth is the extra output of metric depth; without --near/--far or --fit the output already "
          "is the inverse depth")
    check(not (args.smoothing and not args.sequence), "--smoothing is for --sequence")
    check(0.0 <= args.smoothing <= 0.95, f"--smoothing must be 0 to 0.95, got {args.smoothing:g}")
    images = expand_images(args.image)
    outputs = OutputSet()
    main_what = "depth output" if params.metric else "inverse depth output"
    main_paths = output_paths(args.output, images, args.format, main_what)
    main_outs = [outputs.add(p, OUTPUT_EXTENSIONS, main_what) for p in main_paths]
    for out in main_outs:
        check(not (params.metric and out.target.suffix.lower() == ".png"),
              f"16-bit PNG holds normalised inverse depth only; write depth in metres as .exr, .pfm or .npy "
              f"({out.given})")
    inverse_outs = []
    if args.inverse_depth:
        inverse_outs = [outputs.add(p, OUTPUT_EXTENSIONS, "inverse depth output")
                        for p in output_paths(args.inverse_depth, images, args.format, "inverse depth output")]
    backend(params, pick_device(params.device))  # a bad model file fails here, before any image is read

    aligner = SequenceAligner(smoothing=args.smoothing) if args.sequence else None
    bar = ProgressBar("mono-depth", unit=" images", enabled=not args.quiet and len(images) > 1)
    start = time.perf_counter()
    summary = ""
    with outputs.writing():
        for i, path in enumerate(images):
            image = read_image(path, args.nan_policy)
            result = run_pipeline(image, params, aligner=aligner)
            for warning in result.warnings:
                sys.stderr.write(f"refocus mono-depth: warning: {path.name}: {warning}\n")
            key = "depth" if params.metric else "inverse_depth"
            outputs.write(main_outs[i], lambda tmp: write_output(tmp, result.outputs[key][..., 0],
                                                                 "Z" if params.metric else "Y"))
            if inverse_outs:
                outputs.write(inverse_outs[i], lambda tmp: write_output(tmp, result.outputs["inverse_depth"][..., 0],
                                                                        "Y"))
            bar(i + 1, len(images))
            info = result.info
            size = "x".join(str(v) for v in info["processing_size_px"])
            metric = (f", {info['near_m']:.3g} to {info['far_m']:.3g} m" if params.metric else "")
            summary = f"{image.shape[1]}x{image.shape[0]}, {info['backend']} at {size}{metric}"
    if not args.quiet:
        where = main_outs[0].given if len(images) == 1 else f"{len(images)} files ({main_outs[0].given}, ...)"
        print(f"wrote {where} ({summary}, {time.perf_counter() - start:.2f} s on {result.info['device']})", flush=True)
    return 0
