"""Layered Defocus: shallow depth of field from an all-in-focus image and its depth (SteReFo Alg. 1).

The one pipeline behind ``python -m core defocus``, the worker's ``layered_defocus`` op and the
Layered Defocus node::

    from core.pipelines.defocus import LayeredDefocusParams, run
    result = run(image, depth, LayeredDefocusParams(focal_length_mm=50, f_stop=2, focus_distance_m=3))
    result.outputs["image"]          # (H, W, C) scene-linear
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..contract import Input, OpSpec, Output, check_finite, check_range, param
from ..errors import check
from . import ProgressFn, Result
from .checks import SENSOR_FITS, check_device, check_sensor

if TYPE_CHECKING:
    import torch

DEFAULT_K_MAX = 15  # core.defocus.DEFAULT_K_MAX (a test keeps them equal)
MAX_BLADES = 100  # beyond this a polygon is a disc to the pixel
MIN_STEP_PX = 0.05  # layers closer than this in CoC multiply work and change nothing


@dataclass(frozen=True)
class LayeredDefocusParams:
    """The camera and the renderer's settings. Focus: ``focus_distance_m``, or one of
    ``focus_point`` (x, y in 0..1 of the frame from the top-left), ``focus_pixel`` (x, y pixels) or
    ``focus_box`` (x0, y0, x1, y1 pixels), which focus on the median depth there and win over
    ``focus_distance_m`` (the node sends its camera's distance and, with a picker, a point)."""

    focal_length_mm: float = param(unit="mm", help="lens focal length")
    f_stop: float = param(help="aperture f-number")
    focus_distance_m: float | None = param(None, unit="m", help="focus distance")
    focus_point: tuple[float, float] | None = param(
        None, help="focus on the median depth around this point, x y in 0..1 from the top-left")
    focus_pixel: tuple[float, float] | None = param(
        None, unit="px", help="focus on the median depth around this pixel (5x5 window)")
    focus_box: tuple[float, float, float, float] | None = param(
        None, unit="px", help="focus on the median depth inside this box, x0 y0 x1 y1")
    sensor_width_mm: float = param(36.0, unit="mm", help="sensor width")
    sensor_height_mm: float | None = param(None, unit="mm", help="sensor height (VERTICAL fit)")
    sensor_fit: Literal["AUTO", "HORIZONTAL", "VERTICAL"] = param("AUTO", help="Blender's sensor fit")
    breathing: bool = param(False, help="real-lens focus breathing (Eq. 1 exactly) instead of Blender's camera")
    blades: int = param(0, help=f"aperture blades: 0 for a round aperture, else 3 to {MAX_BLADES}")
    rotation_deg: float = param(0.0, unit="deg", help="blade rotation")
    ratio: float = param(1.0, help="anamorphic aperture ratio (Blender's)")
    pixel_aspect: float = param(1.0, help="pixel aspect ratio x / y (Blender's)")
    k_max: int = param(DEFAULT_K_MAX, unit="px", help="largest kernel before downsampling, 5 to 255")
    step_px: float = param(1.0, unit="px", help=f"layer spacing in CoC, at least {MIN_STEP_PX}")
    mask: Literal["linear", "tanh"] = param(
        "linear", help="layer masks: linear (blur follows CoC continuously) or tanh (SteReFo's window)")
    alpha: float = param(1e3, help="sharpness of tanh masks (SteReFo: 1e3)")
    depth_type: Literal["metres", "normalised", "inverse", "disparity"] = param(
        "metres", help="what the depth holds: planar metres, 0..1 between near and far, normalised inverse depth "
                       "(1 = near), or disparity in pixels with a baseline")
    near_m: float | None = param(None, unit="m", help="nearest distance, for normalised and inverse depth")
    far_m: float | None = param(None, unit="m", help="farthest distance, for normalised and inverse depth")
    baseline_m: float | None = param(None, unit="m", help="stereo baseline, for disparity depth")
    max_blur_error_px: float = param(
        1.0, unit="px", help="layers away from focus are merged while no pixel's blur is off by more than this (0: none)")
    edge_split: bool = param(True, help="split mixed edge pixels between the near and far layers (clean silhouettes)")
    near_blur: float = param(1.0, help="multiplier of the blur in front of the focus (0 keeps it sharp)")
    far_blur: float = param(1.0, help="multiplier of the blur behind the focus (0 keeps it sharp)")
    sharp_near_m: float | None = param(None, unit="m", help="depth of field: keep sharp from this distance ...")
    sharp_far_m: float | None = param(None, unit="m", help="... to this one (with --sharp-near; inf for infinity)")
    highlight_threshold: float = param(0.9, help="luminance above which LDR highlights are boosted")
    highlight_gain: float = param(1.0, help="energy given to highlights before the blur (1: off)")
    cat_eye: float = param(0.0, help="optical vignetting: bokeh clipped towards the corners, 0 (off) to 2")
    preview_scale: int = param(1, help="fast preview: render at 1/scale and restore in-focus detail (1: off, 2-8)")
    device: str = param("auto", help="cpu, cuda, cuda:N, mps or auto")

    def __post_init__(self) -> None:
        check_sensor(self.focal_length_mm, self.sensor_width_mm, self.sensor_height_mm)
        check_range("the f-stop", self.f_stop, 0.0, 1000.0, low_open=True)
        check(self.sensor_fit in SENSOR_FITS, f"unknown sensor fit {self.sensor_fit!r}")
        pickers = [n for n in ("focus_point", "focus_pixel", "focus_box") if getattr(self, n) is not None]
        check(len(pickers) <= 1, f"give one way to focus, not {' and '.join(pickers)}")
        check(pickers or self.focus_distance_m is not None,
              "give a focus distance, a focus point, a focus pixel or a focus box")
        check_range("the focus distance (m)", self.focus_distance_m, 0.0, low_open=True)
        for name in pickers:
            check_finite(name.replace("_", " "), *getattr(self, name))
        if self.focus_point is not None:
            check(all(0.0 <= v <= 1.0 for v in self.focus_point), f"the focus point must lie in 0..1, got "
                                                                    f"{self.focus_point}")
        check(self.blades == 0 or 3 <= self.blades <= MAX_BLADES,
              f"blades must be 0 (a round aperture) or 3 to {MAX_BLADES}, got {self.blades}")
        check_range("the blade rotation (degrees)", self.rotation_deg, -36000.0, 36000.0)
        check_range("the aperture ratio", self.ratio, 0.01, 100.0)
        check_range("the pixel aspect", self.pixel_aspect, 0.01, 100.0)
        check(5 <= self.k_max <= 255, f"k_max must be 5 to 255 pixels, got {self.k_max}")
        check_range("the layer step (px)", self.step_px, MIN_STEP_PX, 100.0)
        check(self.mask in ("linear", "tanh"), f"unknown mask {self.mask!r}")
        check_range("the tanh sharpness", self.alpha, 0.0, 1e9, low_open=True)
        check(self.depth_type in ("metres", "normalised", "inverse", "disparity"),
              f"unknown depth type {self.depth_type!r}")
        if self.depth_type in ("normalised", "inverse"):
            check(self.near_m is not None and self.far_m is not None,
                  f"{self.depth_type} depth needs the near and far distances")
            check_range("the near distance (m)", self.near_m, 0.0, low_open=True)
            check(self.near_m < self.far_m, f"near ({self.near_m:g} m) must be closer than far ({self.far_m:g} m)")
        if self.depth_type == "disparity":
            check(self.baseline_m is not None, "disparity depth needs the baseline")
            check_range("the baseline (m)", self.baseline_m, 0.0, 1000.0, low_open=True)
        check_range("the largest blur error (px)", self.max_blur_error_px, 0.0, 8.0)
        check_range("the near blur multiplier", self.near_blur, 0.0, 100.0)
        check_range("the far blur multiplier", self.far_blur, 0.0, 100.0)
        check((self.sharp_near_m is None) == (self.sharp_far_m is None),
              "give both ends of the sharp band (--sharp-near and --sharp-far), or neither")
        if self.sharp_near_m is not None and self.sharp_far_m is not None:
            check(0.0 < self.sharp_near_m <= self.sharp_far_m,
                  f"the sharp band must run from near to far, got {self.sharp_near_m} to {self.sharp_far_m} m")
        check_range("the highlight threshold", self.highlight_threshold, 0.0, 1e6)
        check_range("the highlight gain", self.highlight_gain, 0.0, 1e4, low_open=True)
        check_range("the cat's eye amount", self.cat_eye, 0.0, 2.0)
        check(1 <= self.preview_scale <= 8, f"the preview scale must be 1 to 8, got {self.preview_scale}")
        check_device(self.device)

    def effects(self, bokeh_image=None):
        """The renderer's :class:`core.defocus.LensEffects` for these settings (imports torch)."""
        from ..defocus import LensEffects, default_edge_split

        band = None if self.sharp_near_m is None else (self.sharp_near_m, self.sharp_far_m)
        return LensEffects(near_blur=self.near_blur, far_blur=self.far_blur, sharp_band_m=band,
                           highlight_threshold=self.highlight_threshold, highlight_gain=self.highlight_gain,
                           cat_eye=self.cat_eye, bokeh_image=bokeh_image,
                           edge_split=default_edge_split() if self.edge_split else None,
                           preview_scale=self.preview_scale)


SPEC = OpSpec(
    name="layered_defocus", title="Layered Defocus", params_type=LayeredDefocusParams, command="defocus",
    inputs=(Input("image", "Image", "color", "All-in-focus image, scene-linear"),
            Input("depth", "Depth", "value", "Planar depth, metres (the Z pass)"),
            Input("focus_distance", "Focus Distance", "value",
                  "Optional: a focus distance in metres per frame (Focus Track), overriding the node's",
                  required=False),
            Input("bokeh_image", "Bokeh Image", "color",
                  "Optional: the aperture's shape as an image (Blender's Bokeh Image node, or any image); its "
                  "luminance is the kernel", required=False)),
    outputs=(Output("image", "Image", "color", "Refocused image, scene-linear", passthrough="image"),
             Output("focus_map", "Focus Map", "color",
                    "The signed circle of confusion as a heat map: blue in front, red behind, the in-focus band "
                    "white")),
)


def depth_in_metres(depth: np.ndarray, params: LayeredDefocusParams, device=None):  # -> (1, 1, H, W) tensor
    """``depth`` (H, W) of ``params.depth_type`` as planar metres, (1, 1, H, W) on ``device``."""
    from ..depth_types import to_metres
    from ..optics import focal_length_pixels
    from ..tensors import map_to_tensor

    h, w = depth.shape
    f_px = None
    if params.depth_type == "disparity":
        f_px = focal_length_pixels(params.focal_length_mm, w, h, params.sensor_width_mm, params.sensor_height_mm,
                                   params.sensor_fit, params.pixel_aspect)
    return to_metres(map_to_tensor(depth, device or "cpu"), params.depth_type, params.near_m, params.far_m,
                     params.baseline_m, f_px)


def focus_distance(depth: "torch.Tensor", params: LayeredDefocusParams, focus_input_m: float | None = None) -> float:
    """The focus distance the render uses, metres: a linked value, else a picker on ``depth``
    (1, 1, H, W) planar metres (already converted from the depth type), else ``params.focus_distance_m``."""
    from ..optics import focus_distance_at, focus_distance_in_box

    if focus_input_m is not None:
        check_range("the linked focus distance (m)", focus_input_m, 0.0, low_open=True)
        return float(focus_input_m)
    d = depth
    h, w = depth.shape[-2:]
    if params.focus_point is not None:
        fx, fy = params.focus_point
        return focus_distance_at(d, min(int(fx * w), w - 1), min(int(fy * h), h - 1), radius=2)
    if params.focus_pixel is not None:
        x, y = (int(round(v)) for v in params.focus_pixel)
        check(0 <= x < w and 0 <= y < h, f"the focus pixel ({x}, {y}) is outside the {w}x{h} depth map")
        return focus_distance_at(d, x, y, radius=2)
    if params.focus_box is not None:
        return focus_distance_in_box(d, params.focus_box)
    assert params.focus_distance_m is not None
    return params.focus_distance_m


def run(image: np.ndarray, depth: np.ndarray, params: LayeredDefocusParams, progress: ProgressFn | None = None,
        focus_input_m: float | None = None, bokeh_image: np.ndarray | None = None,
        focus_map: bool = False) -> Result:
    """Refocus ``image`` (H, W, C) scene-linear with ``depth`` (H, W) planar metres.

    ``focus_input_m``: a focus distance wired in (Focus Track), overriding the parameters' focus.
    ``bokeh_image``: (h, w) or (h, w, C) kernel image for the bokeh shape (:class:`core.bokeh.ImageBokeh`).
    ``focus_map``: also return ``outputs["focus_map"]``, (H, W, 3) scene-linear (:mod:`core.focus_map`).
    Returns ``outputs["image"]`` (H, W, C) scene-linear and ``info["focus_distance_m"]``.
    """
    import math

    import torch

    from ..defocus import refocus
    from ..devices import pick_device
    from ..errors import check_depth
    from ..optics import Lens
    from ..tensors import image_to_tensor, tensor_to_image

    check(image.ndim == 3 and depth.ndim == 2, "the image must be (H, W, C) and the depth (H, W)")
    check(image.shape[:2] == depth.shape,
          f"the image is {image.shape[1]}x{image.shape[0]} but the depth is {depth.shape[1]}x{depth.shape[0]}")
    device = pick_device(params.device)
    depth_t = depth_in_metres(depth, params, device)
    check_depth(depth_t)
    focus = focus_distance(depth_t, params, focus_input_m)
    lens = Lens(focal_length_mm=params.focal_length_mm, f_stop=params.f_stop, focus_distance=focus,
                sensor_width_mm=params.sensor_width_mm, sensor_height_mm=params.sensor_height_mm,
                sensor_fit=params.sensor_fit, breathing=params.breathing, blades=params.blades,
                rotation=math.radians(params.rotation_deg), ratio=params.ratio)
    kernel = None
    if bokeh_image is not None:
        kernel = torch.from_numpy(np.ascontiguousarray(np.asarray(bokeh_image, dtype=np.float32)))
        kernel = kernel.permute(2, 0, 1) if kernel.dim() == 3 else kernel
    effects = params.effects(kernel)
    with torch.no_grad():
        out = refocus(image_to_tensor(image, device), depth_t, lens, k_max=params.k_max, step=params.step_px,
                      mask=params.mask, alpha=params.alpha, pixel_aspect=params.pixel_aspect, progress=progress,
                      merge_px=params.max_blur_error_px, effects=effects)
        outputs = {"image": tensor_to_image(out)}
        if focus_map:
            from ..defocus import shaped_coc
            from ..focus_map import focus_map as heat_map

            coc = shaped_coc(depth_t, lens, None, params.pixel_aspect, effects)
            outputs["focus_map"] = tensor_to_image(heat_map(coc))
    return Result(outputs, {"focus_distance_m": focus, "device": str(device)})
