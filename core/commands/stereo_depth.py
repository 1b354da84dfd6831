"""``python -m core stereo-depth``: disparity (and metric depth) of the left view of a stereo pair."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from ..errors import check
from ..imageio import read_image, write_map
from ..stereo import METHODS, StereoCamera, estimate_disparity
from ..stereo.rectification import row_alignment
from ..stereo.sgbm import check_pair, default_max_disparity, round_disparity_range, to_matching_image
from .common import add_device_argument, check_map_output, image_to_tensor, pick_device

EPILOG = """\
Images: EXR (scene-linear) or PNG/JPEG/TIFF (sRGB), a rectified pair of the same size.
Disparity: pixels, x_left - x_right, of the left view, by extension .pfm, .exr (channel D), .npy.
Depth: planar metres (channel Z in EXR) from Blender's stereo camera: --baseline is its
interocular distance; OFFAXIS pairs (Blender's default) also need --convergence-distance.

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
    p.add_argument("--method", choices=METHODS, default="sgbm",
                   help="sgbm (default), learned (StereoNet) or refined (SGBM + learned refinement)")
    p.add_argument("--max-disparity", type=int, metavar="D",
                   help="largest disparity searched, pixels (SGBM: a multiple of 16, default width/8; "
                        "learned: default the model's)")
    p.add_argument("--min-disparity", type=int, default=0, metavar="D",
                   help="smallest disparity searched (SGBM; negative for OFFAXIS pairs; default 0)")
    p.add_argument("--confidence", metavar="OUT", help="also write the confidence map in [0, 1]")
    p.add_argument("--weights", help="network weights for --method learned or refined (default: the shipped ones)")
    cam = p.add_argument_group("metric depth (Blender's stereo camera)")
    cam.add_argument("--depth", metavar="OUT", help="also write planar depth in metres")
    cam.add_argument("--baseline", type=float, metavar="M", help="interocular distance, metres")
    cam.add_argument("--focal-length", type=float, metavar="MM", help="focal length, mm")
    cam.add_argument("--sensor-width", type=float, default=36.0, metavar="MM", help="sensor width, mm (default 36)")
    cam.add_argument("--sensor-height", type=float, metavar="MM", help="sensor height, mm (VERTICAL fit)")
    cam.add_argument("--sensor-fit", choices=["AUTO", "HORIZONTAL", "VERTICAL"], default="AUTO")
    cam.add_argument("--convergence-mode", choices=["PARALLEL", "OFFAXIS", "TOE"], default="PARALLEL",
                     help="Blender's stereo convergence mode (default PARALLEL)")
    cam.add_argument("--convergence-distance", type=float, default=1.95, metavar="M",
                     help="OFFAXIS/TOE convergence distance, metres (Blender's default 1.95)")
    cam.add_argument("--pivot", choices=["LEFT", "RIGHT", "CENTER"], default="CENTER", help="Blender's stereo pivot")
    p.add_argument("--quiet", action="store_true", help="no summary line")
    add_device_argument(p)
    p.set_defaults(run=run)


def _warn(message: str) -> None:
    sys.stderr.write(f"refocus stereo-depth: warning: {message}\n")


def run(args: argparse.Namespace) -> int:
    # Check everything that can be checked before any work, so bad input writes nothing.
    check_map_output(args.output, "disparity output")
    if args.confidence:
        check_map_output(args.confidence, "confidence output")
    camera = None
    if args.depth:
        check_map_output(args.depth, "depth output")
        check(args.baseline is not None and args.focal_length is not None,
              "--depth needs --baseline (metres) and --focal-length (mm)")
        camera = StereoCamera(interocular_distance=args.baseline, convergence_distance=args.convergence_distance,
                              convergence_mode=args.convergence_mode, pivot=args.pivot,
                              focal_length_mm=args.focal_length, sensor_width_mm=args.sensor_width,
                              sensor_height_mm=args.sensor_height, sensor_fit=args.sensor_fit)
        camera.validate()
    device = pick_device(args.device)

    left_np, right_np = read_image(args.left), read_image(args.right)
    check_pair(left_np, right_np)
    height, width = left_np.shape[:2]

    max_disparity = args.max_disparity
    check(max_disparity is None or max_disparity > 0, f"--max-disparity must be positive, got {max_disparity}")
    if args.method == "sgbm":
        max_disparity = max_disparity if max_disparity is not None else default_max_disparity(width)
        num, rounded = round_disparity_range(max_disparity, args.min_disparity)
        if rounded:
            _warn(f"SGBM searches a multiple of 16 disparities: --max-disparity {max_disparity} rounded up to "
                  f"{args.min_disparity + num}")
        max_disparity = args.min_disparity + num

    alignment = row_alignment(to_matching_image(left_np), to_matching_image(right_np))
    if not alignment.rectified():
        _warn(f"the pair does not look rectified: matched features differ by {alignment.vertical_px:.1f} px "
              f"vertically (median of {alignment.matches}); rectify it first, or expect a poor disparity")

    start = time.perf_counter()
    left, right = image_to_tensor(left_np, device), image_to_tensor(right_np, device)
    model = None
    if args.method in ("learned", "refined"):
        from ..stereo.learned import default_refined_weights, load_model

        model = load_model(args.weights or (default_refined_weights() if args.method == "refined" else None), device)
    result = estimate_disparity(left, right, args.method, max_disparity, args.min_disparity, model)
    disparity = result.disparity[0, 0].detach().cpu().numpy()
    outputs = [(args.output, disparity, "D")]
    if args.confidence:
        outputs.append((args.confidence, result.confidence[0, 0].cpu().numpy(), "Y"))
    if camera is not None:
        with torch.no_grad():
            depth = camera.to_depth(result.disparity.cpu())[0, 0].numpy()
        outputs.append((args.depth, depth, "Z"))
    for path, values, channel in outputs:
        write_map(path, values, channel)
    if not args.quiet:
        print(f"wrote {args.output} ({width}x{height}, {args.method}, disparity {np.min(disparity):.1f} to "
              f"{np.max(disparity):.1f} px, {time.perf_counter() - start:.2f} s on "
              f"{'cpu' if args.method == 'sgbm' else device})", flush=True)
    return 0
