"""Focal Stack Depth: depth, an all-in-focus image and confidence from a focal stack or a sweep.

The one pipeline behind ``python -m core focal-stack-depth``, the worker's ``focal_stack_depth``
op and the Focal Stack Depth node. Slices are aligned first (focus breathing undone from the focal
length and focus distances, then a translation, affine or homography refinement for hand-held
stacks), then read by the classical focus measures, the physical cost volume of the camera's own
blur, the learned FocalStackNet, or CameraNet over that cost volume (any camera).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

import numpy as np

from ..contract import Input, OpSpec, Output, check_range, param
from ..errors import check
from . import ProgressFn, Result
from .checks import check_device, check_sensor

if TYPE_CHECKING:
    import torch

MAX_SLICES = 8  # the node's Slice sockets; the command line takes any number
MAX_WINDOW_PX = 255
BANDED_BYTES = 512 * 2**20  # unaligned classical stacks larger than this (float32) run band by band
CAMERA_METHODS = ("physical", "learned-camera")  # the methods that compute the camera's blur
LEARNED_METHODS = ("learned", "learned-camera")


@dataclass(frozen=True)
class FocalStackDepthParams:
    """The stack's focus distances and camera, the method and the alignment."""

    focus_distances_m: tuple[float, ...] | None = param(
        None, unit="m", help="focus distance of each slice (inf for infinity); without them depth is a "
                             "fractional slice index (classical method only)")
    focal_length_mm: float | None = param(None, unit="mm", help="lens focal length: enables the focus-breathing "
                                                                "correction")
    f_stop: float | None = param(None, help="aperture f-number (reports how well the stack resolves depth)")
    sensor_width_mm: float = param(36.0, unit="mm", help="sensor width")
    method: Literal["classical", "physical", "learned", "learned-camera"] = param(
        "classical", help="classical (focus measures, fast), physical (a cost volume from the camera's own blur: "
                          "needs the focal length and f-stop), learned (FocalStackNet, trained on one phone-like "
                          "camera) or learned-camera (CameraNet over the physical cost volume: any camera, needs "
                          "the focal length and f-stop)")
    weights: str | None = param(None, help="network weights for the learned methods (default: the shipped ones)")
    align: Literal["auto", "none", "breathing", "translation", "affine", "homography"] = param(
        "auto", help="alignment: auto = breathing + translation with the focal length, none without; "
                     "affine/homography for hand-held stacks")
    measure: Literal["modified-laplacian", "variance-of-laplacian", "tenengrad"] = param(
        "modified-laplacian", help="focus measure of the classical method")
    window_px: int = param(9, unit="px", help=f"focus-measure window, 1 to {MAX_WINDOW_PX}")
    frames_window: int | None = param(None, help="video: use frames within K of each frame (default: its whole "
                                                 "focus ramp)")
    temporal: bool = param(True, help="video, physical method: fuse each pixel's depth over the frames by its "
                                      "uncertainty (less flicker; the all-in-focus frames follow the fused depth)")
    device: str = param("auto", help="cpu, cuda, cuda:N, mps or auto")

    def __post_init__(self) -> None:
        check(1 <= self.window_px <= MAX_WINDOW_PX, f"the focus-measure window must be 1 to {MAX_WINDOW_PX} "
                                                    f"pixels, got {self.window_px}")
        check_sensor(self.focal_length_mm, self.sensor_width_mm, None)
        check_range("the f-stop", self.f_stop, 0.0, 1000.0, low_open=True)
        check(self.frames_window is None or self.frames_window >= 1,
              f"the frames window must be at least 1, got {self.frames_window}")
        check(self.method in LEARNED_METHODS or self.weights is None, "weights are for the learned methods")
        if self.focus_distances_m is not None:
            for d in self.focus_distances_m:
                check(d == d, "focus distances must be numbers, got NaN")
                check(d > 0, f"focus distances must be positive, got {d:g} m")
                check(d == float("inf") or d < 1e7, f"a focus distance of {d:g} m is not a distance")
        check(self.focus_distances_m is not None or self.method == "classical"
              or getattr(self, "focus_file", None) is not None,  # a clip's focus file is read by the worker
              f"the {self.method} method needs focus distances")
        check(self.method not in CAMERA_METHODS or (self.focal_length_mm is not None and self.f_stop is not None),
              f"the {self.method} method needs the camera: give the focal length and the f-stop (and the sensor "
              "width)")
        check(self.align != "breathing" or (self.focal_length_mm is not None and self.focus_distances_m is not None),
              "breathing alignment needs the focal length and focus distances")
        check_device(self.device)

    def distances(self, count: int) -> list[float] | None:
        """The focus distances checked against ``count`` slices (one each, no two alike)."""
        from ..focal_stack.slices import check_focus_distances

        if self.focus_distances_m is None:
            return None
        return check_focus_distances(list(self.focus_distances_m), count).tolist()


@dataclass(frozen=True)
class FocalStackDepthClipParams(FocalStackDepthParams):
    """The worker op's parameters: the stack's, plus a focus-sweep clip read by path (the
    compositor hands a node one frame at a time, so the op reads the clip itself, as the command
    line does, and answers one frame of it).

    ``stack``: as ``--stack`` on the command line, with ``frame`` set: one image file per frame of
    the clip (an image sequence) or one movie file; ``focus_distances_m`` then holds one distance
    per frame of the clip, or ``focus_file`` names a file of them (``--focus-file``'s format).
    ``frame``: the clip frame to answer (a 0-based index; the command line also takes ``all``).
    Without ``stack`` the request's own Slice inputs are the focal stack."""

    stack: Any = param(None, help="the slice files, a folder, or a focus-sweep video (the worker: a clip's "
                                  "frame files or movie, read by path)")
    frame: str | None = param(None, help="video: frame index, or 'all' (default: the middle frame)")
    focus_file: str | None = param(None, help="text file of focus distances: one per slice (or video frame), "
                                              "or a video's 'FRAME METRES' pairs, interpolated in dioptres")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.focus_file is None or self.focus_distances_m is None,
              "give the focus distances or a focus file, not both")
        if self.stack is None:
            check(self.focus_file is None, "a focus file is read with a clip (stack); give focus_distances_m")
            return
        check(isinstance(self.stack, (list, tuple)) and len(self.stack) > 0
              and all(isinstance(s, str) and s for s in self.stack),
              "stack must list the clip's frame files (or one movie file)")
        check(self.frame is not None and str(self.frame).isdigit(),
              f"a clip needs the frame to answer (0-based), got {self.frame!r}")
        check(self.focus_distances_m is not None or self.focus_file is not None,
              "a focus sweep needs its focus distances (one per frame, or a focus file)")

    def stack_params(self, focus_distances_m: Sequence[float]) -> FocalStackDepthParams:
        """The parameters less the clip, with the clip's per-frame focus distances (metres)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(FocalStackDepthParams)}
        return FocalStackDepthParams(**{**values, "focus_distances_m": tuple(float(d) for d in focus_distances_m)})


SPEC = OpSpec(
    name="focal_stack_depth", title="Focal Stack Depth", params_type=FocalStackDepthClipParams,
    command="focal-stack-depth",
    inputs=(Input("slice", "Slice", "color", "One slice of the focal stack, scene-linear", required=False,
                  repeat=MAX_SLICES),),
    outputs=(Output("depth", "Depth", "value", "Planar depth, metres"),
             Output("all_in_focus", "All in Focus", "color", "All-in-focus image, scene-linear", passthrough="slice_1"),
             Output("confidence", "Confidence", "value", "How clearly one slice is sharpest, 0 to 1")),
)


def stack_tensor(slices: Sequence[np.ndarray], method: str, device: "torch.device") -> "torch.Tensor":
    """(N, C, H, W) from (H, W, C) slices of one size: colour slices keep RGB (alpha out), grey ones
    their one channel (repeated for the network, which reads colour)."""
    import torch

    check(len(slices) >= 2, f"a focal stack needs at least 2 slices, got {len(slices)}")
    first = slices[0]
    for k, s in enumerate(slices[1:], 2):
        check(s.shape[:2] == first.shape[:2], f"Slice {k} is {s.shape[1]}x{s.shape[0]} but Slice 1 is "
                                              f"{first.shape[1]}x{first.shape[0]}")
    channels = min(min(s.shape[2] for s in slices), 3)
    stack = torch.stack([torch.from_numpy(np.ascontiguousarray(s[..., :channels].transpose(2, 0, 1),
                                                               dtype=np.float32)) for s in slices]).to(device)
    return stack.expand(-1, 3, -1, -1) if channels == 1 and method == "learned" else stack


def align(stack: "torch.Tensor", distances: list[float] | None, params: FocalStackDepthParams) -> "torch.Tensor":
    """The stack aligned as ``params.align`` says (see the module docstring)."""
    from ..focal_stack.alignment import align_stack

    mode = params.align
    if mode == "auto":
        mode = "translation" if params.focal_length_mm and distances else "none"
    if mode == "none":
        return stack
    breathing = params.focal_length_mm is not None and distances is not None
    return align_stack(stack, distances if breathing else None, params.focal_length_mm if breathing else None,
                       refine=None if mode == "breathing" else mode).images


def estimate(stack: "torch.Tensor", distances: list[float] | None, params: FocalStackDepthParams,
             device: "torch.device"):  # -> core.focal_stack.depth_from_focus.FocusResult
    """Depth, all-in-focus and confidence of an aligned (N, C, H, W) stack."""
    import torch

    from ..focal_stack.depth_from_focus import depth_from_focus

    with torch.no_grad():
        if params.method == "learned":
            from ..focal_stack import learned
            from .networks import network

            return learned.learned_depth(stack, distances, network(learned, device, params.weights))
        if params.method == "learned-camera":
            from ..focal_stack import camera_learned
            from .networks import network

            model = network(camera_learned, device, params.weights)
            return camera_learned.camera_learned_depth(stack, distances, camera_lens(params), model)
        if params.method == "physical":
            from ..focal_stack.defocus_volume import physical_depth

            return physical_depth(stack, distances, camera_lens(params))
        return depth_from_focus(stack, distances, measure=params.measure, window=params.window_px)


def camera_lens(params: FocalStackDepthParams):  # -> core.optics.Lens | None
    """The camera the parameters describe, when the focal length and f-stop are both given."""
    from ..optics import Lens

    if params.focal_length_mm is None or params.f_stop is None:
        return None
    return Lens(focal_length_mm=params.focal_length_mm, f_stop=params.f_stop, focus_distance=1e6,
                sensor_width_mm=params.sensor_width_mm)


def check_camera(params: FocalStackDepthParams, distances: list[float] | None, width: int, height: int) -> None:
    """With a known camera and focus distances: InputError when the camera cannot blur the focus
    range apart (under a pixel between the nearest and farthest slice), whatever the method."""
    import torch

    from ..focal_stack.defocus_volume import check_blur_apart, coc_per_dioptre

    lens = camera_lens(params)
    if lens is None or distances is None:
        return
    d = torch.tensor(distances, dtype=torch.float64)
    check_blur_apart(coc_per_dioptre(lens, d, width, height), 1.0 / d, lens.focal_length_mm, d)


def _result(focus, distances: list[float] | None, device: "torch.device") -> Result:
    from ..tensors import tensor_to_image

    outputs = {"depth": tensor_to_image(focus.depth), "all_in_focus": tensor_to_image(focus.all_in_focus),
               "confidence": tensor_to_image(focus.confidence)}
    if focus.uncertainty is not None:  # one standard deviation of depth, in depth's unit
        outputs["uncertainty"] = tensor_to_image(focus.uncertainty)
    return Result(outputs,
                  {"depth_unit": "m" if distances is not None else "slice index", "focus_distances_m": distances,
                   "device": str(device)})


def run(slices: Sequence[np.ndarray], params: FocalStackDepthParams, progress: ProgressFn | None = None) -> Result:
    """Depth from a focal stack: ``slices`` (H, W, C) scene-linear, in any order of focus.

    Returns ``outputs``: ``depth`` (H, W, 1) planar metres (a fractional slice index without focus
    distances), ``all_in_focus`` (H, W, C<=3) scene-linear, ``confidence`` (H, W, 1) in [0, 1].
    """
    from ..devices import pick_device

    step = progress or (lambda done, total: None)
    device = pick_device(params.device)
    distances = params.distances(len(slices))
    stack = stack_tensor(slices, params.method, device)
    check_camera(params, distances, stack.shape[-1], stack.shape[-2])
    step(1, 4)
    stack = align(stack, distances, params)
    step(2, 4)
    focus = estimate(stack, distances, params, device)
    step(3, 4)
    result = _result(focus, distances, device)
    step(4, 4)
    return result


def alignment_mode(params: FocalStackDepthParams) -> str:
    """The alignment ``params.align`` resolves to: ``auto`` is translation with a focal length and
    focus distances, else none."""
    if params.align == "auto":
        return "translation" if params.focal_length_mm and params.focus_distances_m else "none"
    return params.align


def runs_banded(params: FocalStackDepthParams, count: int, height: int, width: int, channels: int = 3) -> bool:
    """Whether a stack of this size runs in bands of rows (:func:`run_banded`): the classical
    method, unaligned, and more than :data:`BANDED_BYTES` of slices."""
    big = count * height * width * min(channels, 3) * 4 > BANDED_BYTES
    return params.method == "classical" and alignment_mode(params) == "none" and big


def run_banded(store, params: FocalStackDepthParams, progress: ProgressFn | None = None) -> Result:
    """:func:`run` for slices already in a :class:`core.focal_stack.banded.SliceStore`: the classical
    method band by band, so memory is one band's work and the outputs whatever the slice count."""
    import torch

    from ..focal_stack.banded import depth_from_focus_banded

    distances = params.distances(store.shape[0])
    with torch.no_grad():
        focus = depth_from_focus_banded(store, distances, measure=params.measure, window=params.window_px,
                                        progress=progress, uncertainty=False)
    return _result(focus, distances, torch.device("cpu"))


def run_video(frames: Sequence[np.ndarray], focus_distances_m: Sequence[float], params: FocalStackDepthParams,
              which: Sequence[int]) -> Iterator[tuple[int, Result]]:
    """Depth of each frame ``which`` of a focus-sweep video: ``frames`` (H, W, 3) scene-linear, one
    focus distance (metres) per frame. Each frame's stack gathers its focus ramp (or the frames
    within ``params.frames_window``), aligned to it.

    The physical method runs core.focal_stack.video.video_depth over the whole clip: per-frame
    depth from the camera's blur, fused over time by its uncertainty (``params.temporal``), and
    all-in-focus frames by layered Wiener deconvolution at that depth. The other methods read each
    frame's stack alone."""
    from ..devices import pick_device
    from ..focal_stack.video import focal_stacks

    check(len(focus_distances_m) == len(frames), f"got {len(focus_distances_m)} focus distance(s) for a "
                                                 f"{len(frames)}-frame video; give one per frame")
    device = pick_device(params.device)
    if frames:
        check_camera(params, [float(d) for d in focus_distances_m], frames[0].shape[1], frames[0].shape[0])
    refine = None if params.align in ("none", "breathing") else ("translation" if params.align == "auto"
                                                                 else params.align)
    focal = params.focal_length_mm if params.align != "none" else None
    if params.method == "physical":
        yield from _video_physical(frames, focus_distances_m, params, which, refine, focal, device)
        return
    for fs in focal_stacks(frames, list(focus_distances_m), window=params.frames_window, focal_length_mm=focal,
                           refine=refine, which=which, device=device):
        yield fs.frame, _result(estimate(fs.alignment.images, fs.focus_distances, params, device),
                                fs.focus_distances, device)


def _video_physical(frames, focus_distances_m, params: FocalStackDepthParams, which: Sequence[int], refine,
                    focal, device: "torch.device") -> Iterator[tuple[int, Result]]:
    import torch

    from ..focal_stack.video import video_depth
    from ..tensors import tensor_to_image

    for t in which:
        check(0 <= t < len(frames), f"frame {t} out of range for a {len(frames)}-frame video")
    lens = camera_lens(params)
    assert lens is not None  # FocalStackDepthParams checks the physical method has the camera
    height, width = frames[0].shape[:2]
    with torch.no_grad():
        video = video_depth(frames, [float(d) for d in focus_distances_m], lens.coc_scale(width, height),
                            window=params.frames_window, temporal=params.temporal, align=refine,
                            focal_length_mm=focal, device=device)
    for t in which:
        outputs = {"depth": tensor_to_image(video.depth[t:t + 1]), "all_in_focus": tensor_to_image(video.all_in_focus[t:t + 1]),
                   "confidence": tensor_to_image(video.confidence[t:t + 1]),
                   "uncertainty": tensor_to_image(video.uncertainty[t:t + 1])}
        yield t, Result(outputs, {"depth_unit": "m", "focus_distances_m": [float(d) for d in focus_distances_m],
                                  "frame_focus_distance_m": float(video.focus_distances[t]),
                                  "temporal": params.temporal, "device": str(device)})
