"""Speed of Stereo Depth at 960x540: the SGBM pipeline and the network, in one run.

    python -m bench.stereo_speed [--repeats N] [--weights W] [--threads N]

The input is Middlebury's Motorcycle pair (scikit-image) resized to 960x540. Printed, each the
minimum of ``--repeats`` runs after a warm-up (the minimum, because other work on a shared CPU
only ever adds time):

* OpenCV's StereoSGBM alone, one direction (the peer), and the whole SGBM path (three SGBM
  passes: both views and the half-pixel debiasing pass, the left-right check, the fill and the
  confidence), with their ratio and the issue's 1 s target;
* the networks (the shipped StereoNet and SGBM + refinement, or --weights; a fresh full-size
  StereoNet when none ship) on the CPU, and on CUDA where
  available, against the issue's 15 ms GPU target.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from core.stereo.reference import motorcycle
from core.stereo.sgbm import SGBMParams, _matcher, sgbm_disparity, to_matching_image
from bench.timing import best_of

SIZE = (960, 540)
MAX_DISPARITY = 128
SGBM_TARGET_S = 1.0
GPU_TARGET_S = 0.015


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stereo_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--weights", help="network weights (default: the shipped ones, else a fresh full network)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pair = motorcycle()
    left, right = (cv2.resize(v, SIZE, interpolation=cv2.INTER_AREA) for v in (pair.left, pair.right))
    params = SGBMParams(num_disparities=MAX_DISPARITY)
    lu, ru = to_matching_image(left), to_matching_image(right)
    matcher = _matcher(params, 3)
    peer = best_of(args.repeats, lambda: matcher.compute(lu, ru))
    ours = best_of(args.repeats, lambda: sgbm_disparity(left, right, params))
    print(f"SGBM {SIZE[0]}x{SIZE[1]}, {MAX_DISPARITY} disparities, {cv2.getNumThreads()} OpenCV threads:")
    print(f"  OpenCV StereoSGBM, one view:    {peer:.3f} s")
    print(f"  Stereo Depth SGBM path (dense): {ours:.3f} s  ({ours / peer:.1f}x the single pass; "
          f"target {SGBM_TARGET_S:.1f} s: {'met' if ours <= SGBM_TARGET_S else 'MISSED'})")

    from core.stereo.learned import default_refined_weights, default_weights, is_refiner, load_model, refined_disparity
    from core.stereo.nets import CONFIGS, StereoNet

    models = []
    for weights in ([lambda: args.weights] if args.weights else [default_weights, default_refined_weights]):
        try:
            path = weights()
            models.append((str(path), load_model(path)))
        except Exception:  # no weights shipped: time an untrained network of the full size
            models.append(("untrained full configuration", StereoNet(CONFIGS["full"]).eval()))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for label, model in models:
        refiner = is_refiner(model)  # its forward needs SGBM's outputs: time the whole refined path
        what = "SGBM + refinement network" if refiner else "Network"
        for device in devices:
            net = model.to(device)
            lt, rt = (torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)))[None].to(device)
                      for v in (left, right))
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

            def run() -> None:
                with torch.no_grad():
                    if refiner:  # SGBM on the CPU, then the refinement network on the device
                        refined_disparity(lt, rt, net, MAX_DISPARITY)
                    else:
                        net(lt, rt, MAX_DISPARITY)

            t = best_of(max(1, args.repeats if device == "cuda" else 2), run, sync)
            met = "met" if t <= GPU_TARGET_S else "MISSED"
            target = f"; target {GPU_TARGET_S * 1e3:.0f} ms: {met}" if device == "cuda" else ""
            print(f"{what} ({label}) on {device}: {t * 1e3:.1f} ms ({t / ours:.2f}x the SGBM path{target})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
