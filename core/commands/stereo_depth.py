"""``python -m core stereo-depth``: disparity (and metric depth) of the left view of a stereo pair.

argparse to :class:`core.pipelines.stereo_depth.StereoDepthParams`, files around
:func:`core.pipelines.stereo_depth.run`: the same pipeline the Stereo Depth node runs.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..pipelines.stereo_depth import StereoDepthParams, run as run_pipeline
from .common import add_nan_policy
from .options import add_options, params_from

EPILOG = """\
Images: EXR (scene-linear) or PNG/JPEG/TIFF (sRGB), a rectified pair of the same size.
Disparity: pixels, x_left - x_right, of the left view, by extension .pfm, .exr (channel D), .npy.
Depth: planar metres (channel Z in EXR) from Blender's stereo camera: --baseline is its
interocular distance; OFFAXIS pairs (Blender's default) also need --convergence-distance.
Limits: disparities within -4096..4096 px and at most twice the image width. Large frames run in
horizontal strips (SGBM), so memory stays near the two images' own size; a job that would need
more memory than is free (or than $REFOCUS_MEMORY_LIMIT, e.g. 4G) is refused before it starts.

examples:
  python -m core stereo-depth --left L.png --right R.png --output disparity.pfm
  python -m core stereo-depth --left render_L.exr --right render_R.exr --output d.exr \\
      --depth depth.exr --baseline 0.065 --focal-length 50 --sensor-width 36 \\
      --convergence-mode PARALLEL --confidence confidence.exr
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stereo-depth", help="disparity and depth from a rectified stereo pair",
                       description="Dense disparity of the left view of a rectified stereo pair (OpenCV SGBM "
                                   "with left-right check and guided fill, or a StereoNet-style network), "
                                   "optionally converted to metric depth.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--left", required=True, help="left image")
    p.add_argument("--right", required=True, help="right image")
    p.add_argument("--output", required=True, help="disparity map in pixels (.pfm, .exr, .npy)")
    p.add_argument("--confidence", metavar="OUT", help="also write the confidence map in [0, 1]")
    p.add_argument("--depth", metavar="OUT", help="also write planar depth in metres (needs --baseline and "
                                                  "--focal-length)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    add_nan_policy(p)
    add_options(p.add_argument_group("method and stereo camera"), StereoDepthParams)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..imageio import MAP_EXTENSIONS, image_shape, read_image, write_map
    from ..memory import stereo_bytes
    from ..outputs import OutputSet
    from ..progress import ProgressBar
    from ..stereo.strips import strip_rows
    from .common import check_memory

    params = params_from(StereoDepthParams, args)
    outputs = OutputSet()  # every output checked now, all written together at the end
    wanted = [(outputs.add(args.output, MAP_EXTENSIONS, "disparity output"), "disparity", "D")]
    if args.confidence:
        wanted.append((outputs.add(args.confidence, MAP_EXTENSIONS, "confidence output"), "confidence", "Y"))
    if args.depth:
        wanted.append((outputs.add(args.depth, MAP_EXTENSIONS, "depth output"), "depth", "Z"))
        params.camera()  # refuse a missing baseline or focal length before any work
    shape = image_shape(args.left)
    if shape is not None:
        h, w, c = shape
        check_memory(stereo_bytes(h, w, c, strip_rows(w)), f"stereo depth of a {w}x{h} pair")
    left, right = read_image(args.left, args.nan_policy), read_image(args.right, args.nan_policy)
    bar = ProgressBar("stereo-depth", unit=" steps", enabled=not args.quiet)
    start = time.perf_counter()
    result = run_pipeline(left, right, params, progress=bar, depth=bool(args.depth))
    for warning in result.warnings:
        sys.stderr.write(f"refocus stereo-depth: warning: {warning}\n")
    disparity = result.outputs["disparity"][..., 0]
    with outputs.writing():
        for out, key, channel in wanted:
            outputs.write(out, lambda tmp, k=key, ch=channel: write_map(tmp, result.outputs[k][..., 0], ch))
    if not args.quiet:
        h, w = disparity.shape
        print(f"wrote {args.output} ({w}x{h}, {params.method}, disparity {np.min(disparity):.1f} to "
              f"{np.max(disparity):.1f} px, {time.perf_counter() - start:.2f} s on {result.info['device']})",
              flush=True)
    return 0
