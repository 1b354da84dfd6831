"""Mono Depth: depth from a single image (DeepLens, seed 003, section 3.1), with the built-in network or an ONNX model.

The one pipeline behind ``python -m core mono-depth``, the worker's ``mono_depth`` op and the Mono
Depth node::

    from core.pipelines.mono_depth import MonoDepthParams, run
    result = run(image, MonoDepthParams(near_m=1.5, far_m=30))
    result.outputs["inverse_depth"]   # (H, W, 1) normalised, 1 = nearest
    result.outputs["depth"]           # (H, W, 1) planar metres

Steps: the backend predicts normalised inverse depth at its processing size
(:mod:`core.mono.backends`); a :class:`~core.mono.sequence.SequenceAligner`, when a sequence is
being processed, maps it into the previous frame's gauge; the fast guided filter upsamples it to
the image's size, edges on the image's edges (:mod:`core.mono.upsample`); and, when the scene's
scale is known, it becomes planar depth in metres (:mod:`core.mono.metric`): near/far distances, or a
least-squares fit to known distances (``fit_points``: picked pixels, or the node's focus object
with ``far_m``). Without either, only the relative inverse depth comes out, which Layered Defocus's
optics can take as it is (:func:`core.optics.coc_from_inverse_depth`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..contract import Input, OpSpec, Output, check_finite, check_range, param
from ..errors import check
from . import ProgressFn, Result
from .checks import check_device

if TYPE_CHECKING:
    import torch

    from ..mono.sequence import SequenceAligner

MIN_SIZE_PX = 32
MAX_SIZE_PX = 4096  # a processing size beyond this is a typo (the network's cost grows with its square)
MODEL_SUFFIXES = (".onnx", ".pt", ".pth")


@dataclass(frozen=True)
class MonoDepthParams:
    """The model, its processing size and how relative depth becomes metres.

    Metric depth: ``near_m`` and ``far_m`` together (n = 1 at near, n = 0 at far, linear in inverse
    depth), or known distances: ``fit_points``, x y metres per point (pixels of the full image from
    the top-left), and/or ``focus_distance_m`` at ``focus_point`` (x, y in 0..1 of the frame from
    the top-left: the node's focus object). Two or more known points are fitted by least squares
    in inverse depth; a single one needs ``far_m`` too and keeps n = 0 at far. Neither: inverse
    depth only.
    """

    model: str = param("builtin", help="builtin (the shipped network), a .onnx depth model, or a .pt weights "
                                       "file of the built-in network")
    size_px: int | None = param(None, unit="px", help="processing size, the longer side (default: the built-in "
                                                      "network's own, 518 for ONNX; a fixed-size ONNX model "
                                                      "keeps its own)")
    size_multiple_px: int | None = param(None, unit="px", help="ONNX: sides are rounded to multiples of this "
                                                               "(default 14, ViT patch models; 32 for CNNs)")
    normalisation: Literal["imagenet", "unit"] = param(
        "imagenet", help="ONNX input: imagenet (mean/std, Depth Anything and MiDaS) or unit ([0, 1] sRGB)")
    model_output: Literal["inverse_depth", "depth"] = param(
        "inverse_depth", help="ONNX output: inverse_depth (larger is nearer: Depth Anything, MiDaS) or depth")
    near_m: float | None = param(None, unit="m", help="distance of the nearest point (with far: metric depth)")
    far_m: float | None = param(None, unit="m", help="distance of the farthest point")
    fit_points: tuple[float, ...] | None = param(
        None, cli="fit", help="known distances, x y metres per point (pixels from the top-left): fit scale and "
                              "shift in inverse depth to them (one point needs far as well)")
    focus_distance_m: float | None = param(None, unit="m", help="a known distance at the focus point (the focus "
                                                                "object), fitted as the fit points are")
    focus_point: tuple[float, float] | None = param(
        None, help="where the focus distance is, x y in 0..1 of the frame from the top-left")
    upsample: Literal["guided", "bilinear"] = param(
        "guided", help="to the image's size: guided (edges on the image's edges) or bilinear")
    device: str = param("auto", help="cpu, cuda, cuda:N, mps or auto")

    def __post_init__(self) -> None:
        check(bool(self.model), "the model must be 'builtin' or a model file")
        onnx = self.kind == "onnx"
        check(self.model == "builtin" or Path(self.model).suffix.lower() in MODEL_SUFFIXES,
              f"the model must be 'builtin', a .onnx file or a .pt weights file, got {self.model!r}")
        if self.size_px is not None:
            low = (self.size_multiple_px or 14) if onnx else MIN_SIZE_PX
            check(low <= self.size_px <= MAX_SIZE_PX,
                  f"the processing size must be {low} to {MAX_SIZE_PX} pixels, got {self.size_px}")
        if self.size_multiple_px is not None:
            check(onnx, "the size multiple is for ONNX models (the built-in network takes multiples of 32)")
            check(1 <= self.size_multiple_px <= 256, f"the size multiple must be 1 to 256 pixels, got "
                                                     f"{self.size_multiple_px}")
        check(onnx or (self.normalisation == "imagenet" and self.model_output == "inverse_depth"),
              "normalisation and model output are for ONNX models; the built-in network knows its own")
        check(self.normalisation in ("imagenet", "unit"), f"unknown normalisation {self.normalisation!r}")
        check(self.model_output in ("inverse_depth", "depth"), f"unknown model output {self.model_output!r}")
        check_range("near (m)", self.near_m, 0.0, low_open=True)
        check_range("far (m)", self.far_m, 0.0, low_open=True)
        check((self.focus_distance_m is None) == (self.focus_point is None),
              "give the focus distance and the focus point together")
        check_range("the focus distance (m)", self.focus_distance_m, 0.0, low_open=True)
        if self.focus_point is not None:
            check_finite("the focus point", *self.focus_point)
            check(all(0.0 <= v <= 1.0 for v in self.focus_point), f"the focus point must lie in 0..1, got "
                                                                    f"{self.focus_point}")
        points = self.points
        known = len(points) + (self.focus_distance_m is not None)
        if not known:
            check((self.near_m is None) == (self.far_m is None), "give near and far together (or fit points)")
        elif known == 1:
            check(self.far_m is not None and self.near_m is None,
                  "one known distance (the focus object) needs far, and no near: the fit sets the scale")
            distance = points[0][2] if points else self.focus_distance_m
            assert distance is not None and self.far_m is not None
            check(distance < self.far_m, f"the known distance ({distance:g} m) must be nearer than far "
                                         f"({self.far_m:g} m)")
        else:
            check(self.near_m is None and self.far_m is None,
                  "with two or more known distances, leave near and far unset: the fit sets both")
        if self.near_m is not None and self.far_m is not None:
            check(self.near_m < self.far_m, f"near ({self.near_m:g} m) must be closer than far ({self.far_m:g} m)")
        check_device(self.device)

    @property
    def kind(self) -> str:
        """``builtin`` (the shipped network or a .pt file of it) or ``onnx``."""
        return "onnx" if Path(self.model).suffix.lower() == ".onnx" else "builtin"

    @property
    def points(self) -> list[tuple[float, float, float]]:
        """``fit_points`` as (x, y, metres) triples (checked)."""
        if self.fit_points is None:
            return []
        values = self.fit_points
        check(len(values) > 0 and len(values) % 3 == 0,
              f"fit points come as x y metres triples; got {len(values)} numbers")
        check_finite("a fit point", *values)
        triples = [(values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3)]
        for x, y, d in triples:
            check(d > 0, f"a fit point's distance must be positive, got {d:g} m")
            check(x >= 0 and y >= 0, f"a fit point's pixel must not be negative, got ({x:g}, {y:g})")
        return triples

    def known_points(self, width: int, height: int) -> list[tuple[float, float, float]]:
        """Every known distance as (x, y pixels, metres) in a ``width`` x ``height`` image: the fit
        points, then the focus point (checked to lie in the image)."""
        points = list(self.points)
        for x, y, _ in points:
            check(x < width and y < height, f"the fit point ({x:g}, {y:g}) lies outside the {width}x{height} image")
        if self.focus_point is not None and self.focus_distance_m is not None:
            fx, fy = self.focus_point
            # 0..1 spans the frame's edges; pixel coordinates count from the first pixel's centre.
            points.append((min(max(fx * width - 0.5, 0.0), width - 1.0), min(max(fy * height - 0.5, 0.0), height - 1.0),
                           self.focus_distance_m))
        return points

    @property
    def metric(self) -> bool:
        """Whether planar depth in metres comes out."""
        return (bool(self.points) or self.focus_distance_m is not None
                or (self.near_m is not None and self.far_m is not None))


SPEC = OpSpec(
    name="mono_depth", title="Mono Depth", params_type=MonoDepthParams, command="mono-depth",
    inputs=(Input("image", "Image", "color", "Image, scene-linear"),),
    outputs=(Output("depth", "Depth", "value", "Planar depth, metres (from near and far, or the fit to the focus "
                                               "object)"),
             Output("inverse_depth", "Inverse Depth", "value", "Normalised inverse depth, 1 = nearest, 0 = farthest")),
)


@lru_cache(maxsize=4)
def _onnx_backend(path: str, mtime_ns: int, device: str, size: int | None, multiple: int | None,
                  normalisation: str, output: str) -> Any:
    from ..mono.backends import ONNX_MULTIPLE, ONNX_SIZE, OnnxBackend

    return OnnxBackend(path, size or ONNX_SIZE, multiple or ONNX_MULTIPLE, normalisation, output, device)


def backend(params: MonoDepthParams, device: "torch.device") -> Any:
    """The :class:`~core.mono.backends.DepthBackend` for ``params``, loaded once per process (again if its file changes)."""
    from ..mono import network as mono_network
    from ..mono.backends import NetworkBackend
    from .networks import network

    if params.kind == "onnx":
        p = Path(params.model)
        check(p.is_file(), f"ONNX model not found: {p}")
        return _onnx_backend(str(p.resolve()), p.stat().st_mtime_ns, str(device), params.size_px,
                             params.size_multiple_px, params.normalisation, params.model_output)
    # The shipped file is looked up here, so that its absence says how to train it.
    path = mono_network.default_weights() if params.model == "builtin" else params.model
    model = network(mono_network, device, str(path))
    return NetworkBackend(model, params.size_px)


def run(image: np.ndarray, params: MonoDepthParams, progress: ProgressFn | None = None,
        aligner: "SequenceAligner | None" = None) -> Result:
    """Depth of ``image`` (H, W, C) scene-linear, C in 1, 3 or 4.

    ``aligner``: for a sequence, the :class:`~core.mono.sequence.SequenceAligner` that carries the
    previous frame (fed in frame order).

    Returns ``outputs``: ``inverse_depth`` (H, W, 1) normalised (1 = nearest), and when
    ``params.metric`` ``depth`` (H, W, 1) planar metres. ``info``: the backend, the processing size,
    the distances n = 1 and n = 0 stand for, the device.
    """
    import torch
    import torch.nn.functional as F

    from ..devices import pick_device
    from ..mono.backends import min_max_normalise, network_image
    from ..mono.metric import KnownPoint, depth_from_inverse, fit_to_points, near_far_scale_shift
    from ..mono.upsample import guided_upsample
    from ..tensors import image_to_tensor, tensor_to_image

    check(image.ndim == 3 and image.shape[2] in (1, 3, 4), f"the image must be (H, W, 1|3|4), got {image.shape}")
    check(image.shape[0] > 0 and image.shape[1] > 0, "the image is empty")
    step = progress or (lambda done, total: None)
    height, width = image.shape[:2]
    points = params.known_points(width, height)
    device = pick_device(params.device)
    model = backend(params, device)
    step(1, 4)
    with torch.no_grad():
        # NaN or infinite pixels (EXR) must not poison a whole map through the network's convolutions.
        x = network_image(torch.nan_to_num(image_to_tensor(image, device), nan=0.0, posinf=1.0, neginf=0.0))
        low = model.predict(x).to(device)
        step(2, 4)
        if aligner is not None:
            low = aligner(low)
        if params.upsample == "guided":
            n = guided_upsample(low, x)
        else:
            n = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
        if aligner is None:
            # Resampling rounds off the extremes; renormalise so that 1 is the nearest pixel, as near and
            # far mean. A sequence keeps its first frame's gauge instead (renormalising would flicker).
            n = min_max_normalise(n)
        step(3, 4)
        outputs = {"inverse_depth": tensor_to_image(n)}
        warnings: list[str] = []
        info: dict[str, Any] = {"backend": model.name, "model": params.model, "device": str(device),
                                "processing_size_px": list(low.shape[-2:][::-1])}
        if params.size_px is not None and params.kind == "onnx" and model.info.fixed_size is not None:
            warnings.append(f"the ONNX model takes only {model.info.fixed_size[1]}x{model.info.fixed_size[0]} "
                            f"input; the size {params.size_px} is ignored")
        if params.metric:
            if points:
                gauge = fit_to_points(n.cpu(), [KnownPoint(*p) for p in points],
                                      far_m=params.far_m if len(points) == 1 else None)
            else:
                assert params.near_m is not None and params.far_m is not None
                gauge = near_far_scale_shift(params.near_m, params.far_m)
            inverse = gauge.inverse_depth(n)
            beyond = int((inverse <= 0).sum())
            if beyond:
                warnings.append(f"{beyond} pixel(s) fall beyond infinity with this fit; their depth is clamped to "
                                f"10 km")
            outputs["depth"] = tensor_to_image(depth_from_inverse(inverse))
            nearest = gauge.scale + gauge.shift  # inverse depth at n = 1, 1/m
            info.update(scale_per_m=gauge.scale, shift_per_m=gauge.shift,
                        near_m=1.0 / nearest if nearest > 0 else math.inf,
                        far_m=1.0 / gauge.shift if gauge.shift > 0 else math.inf)
    step(4, 4)
    return Result(outputs, info, warnings)
