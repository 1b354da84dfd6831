"""``python -m core stereo-depth``: disparity (and metric depth) of the left view of a stereo pair.

argparse to :class:`core.pipelines.stereo_depth.StereoDepthParams`, files around
:func:`core.pipelines.stereo_depth.run`: the same pipeline the Stereo Depth node runs.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..pipelines.stereo_depth import StereoDepthParams, run as run_pipeline
from .options import add_options, params_from

EPILOG = """\
Images: EXR (scene-linear) or PNG/JPEG/TIFF (sRGB), a rectified pair of the same size.
Disparity: pixels, x_left - x_right, of the left view, by extension .pfm, .exr (channel D), .npy.
Depth: planar metres (channel Z in EXR) from Blender's stereo camera: --baseline is its
interocular distance; OFFAXIS pairs (Blender's default) also need --convergence-distance.
Limits: disparities within -4096..4096 px and at most twice the image width.

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
    p.add_argument("--quiet", action="store_true", help="no summary line")
    add_options(p.add_argument_group("method and stereo camera"), StereoDepthParams)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..imageio import read_image, write_map
    from .common import check_map_output

    params = params_from(StereoDepthParams, args)
    check_map_output(args.output, "disparity output")
    if args.confidence:
        check_map_output(args.confidence, "confidence output")
    if args.depth:
        check_map_output(args.depth, "depth output")
        params.camera()  # refuse a missing baseline or focal length before any work
    left, right = read_image(args.left), read_image(args.right)
    start = time.perf_counter()
    result = run_pipeline(left, right, params, depth=bool(args.depth))
    for warning in result.warnings:
        sys.stderr.write(f"refocus stereo-depth: warning: {warning}\n")
    disparity = result.outputs["disparity"][..., 0]
    outputs = [(args.output, disparity, "D")]
    if args.confidence:
        outputs.append((args.confidence, result.outputs["confidence"][..., 0], "Y"))
    if args.depth:
        outputs.append((args.depth, result.outputs["depth"][..., 0], "Z"))
    for path, values, channel in outputs:
        write_map(path, values, channel)
    if not args.quiet:
        h, w = disparity.shape
        print(f"wrote {args.output} ({w}x{h}, {params.method}, disparity {np.min(disparity):.1f} to "
              f"{np.max(disparity):.1f} px, {time.perf_counter() - start:.2f} s on {result.info['device']})",
              flush=True)
    return 0
