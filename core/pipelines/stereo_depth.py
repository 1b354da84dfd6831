"""Stereo Depth: disparity, metric depth and confidence of the left view of a rectified pair.

The one pipeline behind ``python -m core stereo-depth``, the worker's ``stereo_depth`` op and the
Stereo Depth node. Methods: ``sgbm`` (OpenCV semi-global matching with a left-right check and a
guided fill), ``learned`` (a StereoNet-style network) and ``refined`` (SGBM corrected by a
StereoNet-style refinement network). Depth needs Blender's stereo camera: the interocular
distance (the baseline), the convergence and the lens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..contract import Input, OpSpec, Output, check_range, param
from ..errors import check
from . import ProgressFn, Result
from .checks import SENSOR_FITS, check_device, check_sensor

MAX_DISPARITY_PX = 4096  # beyond any image we read: a larger range is a typo


@dataclass(frozen=True)
class StereoDepthParams:
    """The method, its search range and the stereo camera (for metric depth)."""

    method: Literal["sgbm", "learned", "refined"] = param(
        "sgbm", help="sgbm, learned (StereoNet) or refined (SGBM + learned refinement)")
    max_disparity_px: int | None = param(
        None, unit="px", help="largest disparity searched (SGBM: a multiple of 16, default width/8; learned: "
                              "the model's)")
    min_disparity_px: int = param(0, unit="px", help="smallest disparity searched (SGBM; negative for OFFAXIS pairs)")
    weights: str | None = param(None, help="network weights for learned or refined (default: the shipped ones)")
    interocular_distance_m: float | None = param(
        None, unit="m", cli="baseline", help="interocular distance (the baseline): needed for metric depth")
    convergence_mode: Literal["PARALLEL", "OFFAXIS", "TOE"] = param("PARALLEL", help="Blender's stereo convergence mode")
    convergence_distance_m: float = param(1.95, unit="m", help="OFFAXIS/TOE convergence distance")
    pivot: Literal["LEFT", "RIGHT", "CENTER"] = param("CENTER", help="Blender's stereo pivot")
    focal_length_mm: float | None = param(None, unit="mm", help="focal length: needed for metric depth")
    sensor_width_mm: float = param(36.0, unit="mm", help="sensor width")
    sensor_height_mm: float | None = param(None, unit="mm", help="sensor height (VERTICAL fit)")
    sensor_fit: Literal["AUTO", "HORIZONTAL", "VERTICAL"] = param("AUTO", help="Blender's sensor fit")
    device: str = param("auto", help="cpu, cuda, cuda:N, mps or auto (the networks; SGBM runs on the CPU)")

    def __post_init__(self) -> None:
        check(self.method in ("sgbm", "learned", "refined"), f"unknown stereo method {self.method!r}")
        check(self.max_disparity_px is None or self.max_disparity_px > 0,
              f"the max disparity must be positive, got {self.max_disparity_px}")
        check_range("the max disparity (px)", self.max_disparity_px, None, MAX_DISPARITY_PX)
        check_range("the min disparity (px)", self.min_disparity_px, -MAX_DISPARITY_PX, MAX_DISPARITY_PX)
        check(self.method == "sgbm" or self.min_disparity_px == 0,
              f"the {self.method} method searches from disparity 0; use sgbm for negative disparities")
        check(self.method != "sgbm" or self.weights is None, "weights are for the learned and refined methods")
        check_range("the interocular distance (m)", self.interocular_distance_m, 0.0, 1000.0, low_open=True)
        check_range("the convergence distance (m)", self.convergence_distance_m, 0.0, 1e6, low_open=True)
        check_sensor(self.focal_length_mm, self.sensor_width_mm, self.sensor_height_mm)
        check(self.sensor_fit in SENSOR_FITS, f"unknown sensor fit {self.sensor_fit!r}")
        check_device(self.device)

    @property
    def metric(self) -> bool:
        """Whether depth in metres can be computed (the baseline and the focal length are known)."""
        return self.interocular_distance_m is not None and self.focal_length_mm is not None

    def camera(self):  # -> core.stereo.StereoCamera
        from ..stereo import StereoCamera

        check(self.metric, "metric depth needs the baseline (interocular distance, metres) and the focal length (mm)")
        assert self.interocular_distance_m is not None and self.focal_length_mm is not None
        return StereoCamera(interocular_distance=self.interocular_distance_m,
                            convergence_distance=self.convergence_distance_m,
                            convergence_mode=self.convergence_mode, pivot=self.pivot,
                            focal_length_mm=self.focal_length_mm, sensor_width_mm=self.sensor_width_mm,
                            sensor_height_mm=self.sensor_height_mm, sensor_fit=self.sensor_fit)


SPEC = OpSpec(
    name="stereo_depth", title="Stereo Depth", params_type=StereoDepthParams, command="stereo-depth",
    inputs=(Input("left", "Left", "color", "Left view, scene-linear"),
            Input("right", "Right", "color", "Right view, scene-linear, rectified with the left one, the same size")),
    outputs=(Output("depth", "Depth", "value", "Planar depth of the left view, metres (10 km at or beyond infinity)"),
             Output("disparity", "Disparity", "value", "Disparity of the left view, pixels (x left - x right)"),
             Output("confidence", "Confidence", "value", "How likely the disparity is right, 0 to 1")),
)


def run(left: np.ndarray, right: np.ndarray, params: StereoDepthParams, progress: ProgressFn | None = None,
        depth: bool = False) -> Result:
    """Disparity of ``left`` against ``right`` ((H, W, C) scene-linear, the same size).

    Returns ``outputs``: ``disparity`` (H, W, 1) pixels, ``confidence`` (H, W, 1) in [0, 1], and
    with ``depth`` ``depth`` (H, W, 1) planar metres (``inf`` at or beyond infinity). ``info``:
    the method and the disparity range searched; ``warnings``: a rounded range, an unrectified pair.
    """
    from ..devices import pick_device
    from ..stereo import estimate_disparity
    from ..stereo.rectification import row_alignment
    from ..stereo.sgbm import check_pair, default_max_disparity, round_disparity_range
    from ..tensors import image_to_tensor

    step = progress or (lambda done, total: None)
    camera = params.camera() if depth else None
    check_pair(left, right)
    check(left.shape[2] == right.shape[2] or min(left.shape[2], right.shape[2]) >= 3,
          f"the left image has {left.shape[-1]} channel(s) but the right one {right.shape[-1]}; give two colour "
          f"views or two grey ones")
    height, width = left.shape[:2]
    device = pick_device(params.device)
    warnings: list[str] = []
    max_disparity = params.max_disparity_px
    if params.method == "sgbm":
        requested = max_disparity if max_disparity is not None else default_max_disparity(width)
        num, rounded = round_disparity_range(requested, params.min_disparity_px)
        max_disparity = params.min_disparity_px + num
        if rounded:
            warnings.append(f"SGBM searches a multiple of 16 disparities: the max disparity {requested} is rounded "
                            f"up to {max_disparity}")
    check(max_disparity is None or max_disparity - params.min_disparity_px <= 2 * width,
          f"the disparity range {params.min_disparity_px}..{max_disparity} is far wider than the {width}-pixel image")
    from ..stereo.strips import matching_image

    alignment = row_alignment(matching_image(left), matching_image(right))  # banded: no full-frame floats
    if not alignment.rectified():
        warnings.append(f"the pair does not look rectified: matched features differ by "
                        f"{alignment.vertical_px:.1f} px vertically (median of {alignment.matches}); rectify "
                        f"it first, or expect a poor disparity")
    if params.method == "sgbm":  # on the arrays as they are, in strips on large frames (bounded memory)
        from ..stereo.sgbm import SGBMParams
        from ..stereo.strips import sgbm_disparity_strips, strip_rows

        assert max_disparity is not None
        sgbm = SGBMParams(min_disparity=params.min_disparity_px, num_disparities=max_disparity - params.min_disparity_px)
        strips = -(-height // strip_rows(width, num_disparities=sgbm.num_disparities))
        step(1, strips + 2)
        result = sgbm_disparity_strips(left, right, sgbm, progress=lambda done, n: step(1 + done, n + 2))
        return _stereo_result(result, camera, params, max_disparity, "cpu", warnings,
                              lambda: step(strips + 2, strips + 2))
    step(1, 4)
    model = None
    if params.method in ("learned", "refined"):
        from ..stereo import learned
        from .networks import network

        model = network(learned, device, params.weights, refined=params.method == "refined")
    step(2, 4)
    result = estimate_disparity(image_to_tensor(left, device), image_to_tensor(right, device), params.method,
                                max_disparity, params.min_disparity_px, model)
    step(3, 4)
    return _stereo_result(result, camera, params, max_disparity, str(device), warnings, lambda: step(4, 4))


def _stereo_result(result, camera, params: StereoDepthParams, max_disparity: int | None, device: str,
                   warnings: list[str], finish) -> Result:
    """The pipeline's arrays from a (1, 1, H, W) StereoResult, with depth when ``camera`` is given."""
    import torch

    disparity = result.disparity.detach().cpu()
    outputs = {"disparity": disparity[0, 0].numpy()[..., None],
               "confidence": result.confidence[0, 0].detach().cpu().numpy()[..., None]}
    if camera is not None:
        with torch.no_grad():
            outputs["depth"] = camera.to_depth(disparity)[0, 0].numpy()[..., None]
    finish()
    return Result(outputs, {"method": params.method, "max_disparity_px": max_disparity,
                            "min_disparity_px": params.min_disparity_px, "device": device}, warnings)
