"""``python -m core defocus``: refocus an all-in-focus image from its depth map."""

from __future__ import annotations

import argparse
import math
import time

import torch

from ..defocus import DEFAULT_K_MAX, DEFAULT_MASK, refocus
from ..errors import check, check_depth
from ..imageio import read_image, read_map, write_image
from ..optics import Lens, focus_distance_at, focus_distance_in_box
from ..progress import ProgressBar
from .common import add_device_argument, check_output_path, image_to_tensor, map_to_tensor, pick_device, tensor_to_image

EPILOG = """\
Image: EXR (scene-linear RGB/RGBA, multilayer too) or PNG/JPEG/TIFF (sRGB, linearised).
Depth: planar depth in metres (Blender's Z pass): a one-channel EXR, the Z/Depth layer of a
multilayer EXR, PFM or NPY. Output by extension: .exr float, .png/.tif 16-bit, .jpg 8-bit.

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
    focus = p.add_mutually_exclusive_group(required=True)
    focus.add_argument("--focus-distance", type=float, metavar="M", help="focus distance in metres")
    focus.add_argument("--focus-pixel", type=int, nargs=2, metavar=("X", "Y"),
                       help="focus on the median depth around this pixel (5x5 window)")
    focus.add_argument("--focus-box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                       help="focus on the median depth inside this box (pixels)")
    p.add_argument("--f-stop", type=float, required=True, metavar="N", help="aperture f-number")
    p.add_argument("--focal-length", type=float, required=True, metavar="MM", help="focal length, mm")
    p.add_argument("--sensor-width", type=float, default=36.0, metavar="MM", help="sensor width, mm (default 36)")
    p.add_argument("--sensor-height", type=float, metavar="MM", help="sensor height, mm (VERTICAL fit)")
    p.add_argument("--sensor-fit", choices=["AUTO", "HORIZONTAL", "VERTICAL"], default="AUTO",
                   help="Blender's sensor fit (default AUTO)")
    p.add_argument("--blades", type=int, default=0, help="aperture blades, 0 for a round aperture")
    p.add_argument("--rotation", type=float, default=0.0, metavar="DEG", help="blade rotation, degrees")
    p.add_argument("--ratio", type=float, default=1.0, help="anamorphic aperture ratio (Blender's)")
    p.add_argument("--breathing", action="store_true",
                   help="real-lens focus breathing (Eq. 1 exactly) instead of Blender's camera")
    p.add_argument("--k-max", type=int, default=DEFAULT_K_MAX,
                   help=f"largest kernel before downsampling (default {DEFAULT_K_MAX})")
    p.add_argument("--step", type=float, default=1.0, help="layer spacing in pixels of CoC (default 1)")
    p.add_argument("--mask", choices=["linear", "tanh"], default=DEFAULT_MASK,
                   help="layer masks: linear (blur follows CoC continuously) or tanh (SteReFo's window)")
    p.add_argument("--alpha", type=float, default=1e3, help="sharpness of tanh masks (SteReFo: 1e3)")
    p.add_argument("--output", required=True, help="output image (.exr, .png, .tif, .jpg)")
    p.add_argument("--bit-depth", type=int, choices=[8, 16], help="PNG/TIFF bit depth (default 16)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    lens = Lens(
        focal_length_mm=args.focal_length, f_stop=args.f_stop, focus_distance=args.focus_distance or 1.0,
        sensor_width_mm=args.sensor_width, sensor_height_mm=args.sensor_height, sensor_fit=args.sensor_fit,
        breathing=args.breathing, blades=args.blades, rotation=math.radians(args.rotation), ratio=args.ratio,
    )
    check(args.k_max >= 5, f"--k-max must be at least 5, got {args.k_max}")
    check(args.step > 0, f"--step must be positive, got {args.step}")
    device = pick_device(args.device)

    image_np = read_image(args.image)
    depth_np = read_map(args.depth, args.depth_channel)
    check(image_np.shape[:2] == depth_np.shape,
          f"image is {image_np.shape[1]}x{image_np.shape[0]} but depth is {depth_np.shape[1]}x{depth_np.shape[0]}")
    image = image_to_tensor(image_np, device)
    depth = map_to_tensor(depth_np, device)
    check_depth(depth)
    if args.focus_pixel is not None:
        focus = focus_distance_at(depth, *args.focus_pixel, radius=2)
    elif args.focus_box is not None:
        focus = focus_distance_in_box(depth, args.focus_box)
    else:
        focus = args.focus_distance
    lens = lens.with_focus(focus)
    lens.validate()

    bar = ProgressBar("defocus", unit=" layers", enabled=not args.quiet)
    start = time.perf_counter()
    with torch.no_grad():
        out = refocus(image, depth, lens, k_max=args.k_max, step=args.step, mask=args.mask, alpha=args.alpha,
                      progress=bar)
    write_image(args.output, tensor_to_image(out), bit_depth=args.bit_depth)
    if not args.quiet:
        print(f"wrote {args.output} ({image_np.shape[1]}x{image_np.shape[0]}, focus {focus:.3f} m, "
              f"{time.perf_counter() - start:.2f} s on {device})", flush=True)
    return 0
