"""``python -m core defocus``: refocus an all-in-focus image from its depth map.

argparse to :class:`core.pipelines.defocus.LayeredDefocusParams`, files around
:func:`core.pipelines.defocus.run`: the same pipeline the Layered Defocus node runs.
"""

from __future__ import annotations

import argparse
import time

from ..pipelines.defocus import LayeredDefocusParams, run as run_pipeline
from .common import add_nan_policy
from .options import add_options, params_from

EPILOG = """\
Image: EXR (scene-linear RGB/RGBA, multilayer too) or PNG/JPEG/TIFF (sRGB, linearised).
Depth: planar depth in metres (Blender's Z pass): a one-channel EXR, the Z/Depth layer of a
multilayer EXR, PFM or NPY. Output by extension: .exr float, .png/.tif 16-bit, .jpg 8-bit.
Focus: one of --focus-distance, --focus-point, --focus-pixel or --focus-box.
Limits: blades 0 or 3..100, --step at least 0.05 px, --k-max 5..255. A job that would need more
memory than is free (or than $REFOCUS_MEMORY_LIMIT, e.g. 4G) is refused before it starts.

example:
  python -m core defocus --image render.exr --depth render.exr --focus-distance 2.5 \\
      --f-stop 2 --focal-length 50 --sensor-width 36 --output refocused.exr
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("defocus", help="shallow depth of field from an image and its depth",
                       description="Refocus an all-in-focus image with a thin-lens camera (layered defocus, "
                                   "SteReFo Algorithm 1).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True, help="all-in-focus image")
    p.add_argument("--depth", required=True, help="planar depth in metres")
    p.add_argument("--depth-channel", help="EXR channel holding depth (default: the only one, or Z/Depth)")
    p.add_argument("--output", required=True, help="output image (.exr, .png, .tif, .jpg)")
    p.add_argument("--bit-depth", type=int, choices=[8, 16], help="PNG/TIFF bit depth (default 16)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--bokeh-image", metavar="PATH", help="bokeh shape from any kernel image (normalised, used at "
                                                         "each layer's size)")
    p.add_argument("--focus-map", metavar="PATH", help="also write the focus map: blur in front (blue) and behind "
                                                       "(orange), the in-focus band green")
    p.add_argument("--exr-compression", choices=["zip", "zips", "piz", "rle", "none"],
                   help="EXR output compression (default: zip for half floats, none for 32-bit ones, which zip "
                        "shrinks by only ~10%%); EXR output is half when the input image was")
    add_nan_policy(p)
    add_options(p.add_argument_group("camera and renderer"), LayeredDefocusParams)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..imageio import IMAGE_EXTENSIONS, image_shape, read_image, read_map, write_image
    from ..memory import defocus_bytes
    from ..outputs import OutputSet
    from ..progress import ProgressBar
    from .common import check_memory

    params = params_from(LayeredDefocusParams, args)
    outputs = OutputSet()  # checked now, written at the end
    out = outputs.add(args.output, IMAGE_EXTENSIONS, "output")
    heat = outputs.add(args.focus_map, IMAGE_EXTENSIONS, "focus map") if args.focus_map else None
    shape = image_shape(args.image)
    if shape is not None:
        check_memory(defocus_bytes(*shape), f"defocus of a {shape[1]}x{shape[0]} frame")
    # Half-float input stays half until the tensor is made (one conversion), and is written back as half.
    image = read_image(args.image, args.nan_policy, keep_half=True)
    half = image.dtype.itemsize == 2
    bokeh = read_image(args.bokeh_image) if args.bokeh_image else None
    depth = read_map(args.depth, args.depth_channel, nan_policy="nearest" if args.nan_policy == "nearest" else None)
    bar = ProgressBar("defocus", unit=" layers", enabled=not args.quiet)
    start = time.perf_counter()
    result = run_pipeline(image, depth, params, progress=bar, bokeh_image=bokeh, focus_map=heat is not None)
    bits = args.bit_depth if args.bit_depth is not None or not args.output.lower().endswith(".exr") else (16 if half else None)
    compression = args.exr_compression or ("zip" if bits == 16 else "none")
    with outputs.writing():
        outputs.write(out, lambda tmp: write_image(tmp, result.outputs["image"], bit_depth=bits,
                                                   exr_compression=compression))
        if heat is not None:
            outputs.write(heat, lambda tmp: write_image(tmp, result.outputs["focus_map"], exr_compression=compression))
    if not args.quiet:
        print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]}, focus {result.info['focus_distance_m']:.3f} m, "
              f"{time.perf_counter() - start:.2f} s on {result.info['device']})", flush=True)
    return 0
