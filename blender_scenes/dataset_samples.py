"""What one sample of each dataset kind holds, and how it is rendered into a folder (bpy).

Every sample is drawn from its own seed (see :func:`dataset_io.sample_seed`): the scene first,
then the per-sample choices (focus distances, shake, apertures) from the same generator. Files:

``defocusnet`` (DefocusNet / FoD500, seeds 002 and 004)
    ``image.exr`` all-in-focus RGB, ``depth.exr`` Z (planar metres), ``slice_XX.exr`` RGB with
    Cycles' depth of field, one per focus distance (record: ``slices``).
``deeplens`` (seed 003)
    ``image.exr``, ``depth.exr``, ``inverse_depth.exr`` (channel V: 1 nearest, 0 farthest),
    ``layer_K.exr`` RGBA (premultiplied; K = 0 background, 1 middle, 2 foreground) with
    ``layer_K_depth.exr`` (Z, 0 where the layer is empty), ``dof_XX.exr`` RGB renders at random
    focus distances and f-stops (record: ``dof``).
``stereo``
    ``left.exr``, ``right.exr`` RGB, ``depth_left.exr``/``depth_right.exr`` Z, and
    ``disparity_left.exr``/``disparity_right.exr`` (channel D, pixels, d = B f_px / Z; a left pixel
    at x shows what the right image shows at x - d).
``sweep`` (seed 001)
    per frame t: ``frame_TTT.exr`` RGB with depth of field, ``aif_TTT.exr`` RGB all in focus,
    ``depth_TTT.exr`` Z (record: ``frames`` with each focus distance).

Colour files are half-float scene-linear; depth and disparity float32.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.imageio import write_exr
from core.optics import depth_to_disparity

from .dataset_io import FORMAT_VERSION, kind_info, load_renderer
from .dataset_render import CameraState, DatasetRenderer, Quality, shake
from .dataset_scenes import (CAMERAS, FOD_FOCUS_DISTANCES, DatasetScene, camera_scene, defocusnet_scene,
                             deeplens_scene, inverse_uniform, random_camera_for, stereo_scene, sweep_scene)

FOCUS_MODES = ("fod", "even", "random")


@dataclass(frozen=True)
class Options:
    """Everything that shapes a dataset besides its seed, kind and split.

    Attributes:
        width, height: pixels.
        quality: Cycles settings.
        slices: focal-stack slices (``defocusnet``); with ``focus="fod"`` at most 5.
        focus: ``fod`` FoD500's 0.1, 0.15, 0.3, 0.7, 1.5 m (the first ``slices``); ``even`` evenly
            spaced in inverse depth over 0.1-1.5 m (DfF in the Wild); ``random`` uniform in inverse
            depth over that range, sorted (DefocusNet's own data).
        f_stop: override the split's f-number (``defocusnet``).
        breathing: focus breathing per slice (seed 004's s_n = F f / (F - f)).
        shake_mm, shake_deg: camera shake per slice, uniform in +-mm and +-degrees (0: none).
        dof_renders: depth-of-field renders per ``deeplens`` sample.
        frames, ramps: frames per ``sweep`` video and focus ramps across it.
        camera: ``defocusnet`` camera: ``fod`` FoD500's 2.9 mm lens; a name of
            :data:`dataset_scenes.CAMERAS` (issue 21's unseen cameras); ``random`` a camera drawn per
            sample (:func:`dataset_scenes.random_camera_for`: redrawn until it blurs its focus
            range apart by 3 px) with 3..``slices`` slices. Other than ``fod``, focus ``fod``
            means ``even`` over the camera's focus range.
        independent_noise: every render of a ``defocusnet`` sample with its own Cycles seed. With
            one seed the denoised noise pattern is the same, unblurred, in every slice and reads as
            sharpness everywhere; a camera's noise is independent per exposure.
    """

    width: int = 256
    height: int = 256
    quality: Quality = field(default_factory=Quality)
    slices: int = 5
    focus: str = "fod"
    f_stop: float | None = None
    breathing: bool = False
    shake_mm: float = 0.0
    shake_deg: float = 0.0
    dof_renders: int = 2
    frames: int = 16
    ramps: int = 2
    camera: str = "fod"
    independent_noise: bool = False

    def describe(self, kind: str) -> dict[str, Any]:
        """The options that matter for ``kind``, for dataset.json."""
        # Threads change the speed, not the pixels: shards on machines of any size make one dataset.
        quality = {k: v for k, v in asdict(self.quality).items() if k != "threads"}
        common = {"width": self.width, "height": self.height, "quality": quality}
        per_kind = {
            "defocusnet": ("slices", "focus", "f_stop", "breathing", "shake_mm", "shake_deg"),
            "deeplens": ("dof_renders",),
            "stereo": (),
            "sweep": ("frames", "ramps"),
            "track": ("frames",),
            "mono": (),
        }.get(kind, kind_info(kind).options)  # or what its registration in dataset_io names
        described = {**common, **{name: getattr(self, name) for name in per_kind}}
        if kind == "defocusnet" and self.camera != "fod":  # absent for fod: older datasets stay resumable
            described["camera"] = self.camera
        if kind == "defocusnet" and self.independent_noise:  # likewise absent when off
            described["independent_noise"] = True
        return described


def write_colour(path: Path, image: np.ndarray) -> None:
    """(H, W, 3 or 4) scene-linear colour as half-float EXR (channels R, G, B[, A])."""
    write_exr(path, {c: image[..., i] for i, c in enumerate("RGBA"[: image.shape[-1]])}, half=True)


def write_plane(path: Path, values: np.ndarray, channel: str = "Z") -> None:
    """(H, W) depth (metres) or disparity (pixels) as float32 EXR: half floats would lose 1e-3 precision."""
    write_exr(path, {channel: values.astype(np.float32)})


def _checked_depth(depth: np.ndarray, what: str) -> np.ndarray:
    """A depth map that hit a surface at every pixel (the backdrop guarantees it)."""
    if not (np.isfinite(depth).all() and depth.min() > 0.0 and depth.max() < 1e6):
        raise RuntimeError(f"{what}: depth has pixels that hit nothing; the backdrop does not fill the frame")
    return depth


def focus_distances(options: Options, rng: np.random.Generator, near: float = 0.1, far: float = 1.5,
                    slices: int | None = None) -> list[float]:
    """The focal stack's focus distances in metres, nearest first (``slices`` overrides the options')."""
    n = options.slices if slices is None else slices
    if options.focus == "fod" and options.camera == "fod":
        return list(FOD_FOCUS_DISTANCES[:n])
    if options.focus in ("even", "fod"):  # fod with another camera: even over its focus range
        return [float(1.0 / v) for v in np.linspace(1.0 / near, 1.0 / far, n)]
    return sorted(float(d) for d in inverse_uniform(rng, near, far, n))


# -------------------------------------------------------------------------------------- kinds
SCRATCH = ".render"  # Blender's raw renders, inside the sample's temporary folder, removed before commit


def _renderer(scene: DatasetScene, options: Options, seed: int, out: Path) -> DatasetRenderer:
    return DatasetRenderer(scene, options.width, options.height, options.quality, seed, out / SCRATCH)


def render_defocusnet(rng: np.random.Generator, split: str, seed: int, options: Options, out: Path) -> dict:
    near, far, count = 0.1, 1.5, options.slices
    if options.camera == "fod":
        scene = defocusnet_scene(rng, split, options.f_stop)
    else:
        setup = (random_camera_for(rng, options.width, options.height) if options.camera == "random"
                 else CAMERAS[options.camera])
        if options.f_stop is not None:
            setup = replace(setup, lens=replace(setup.lens, f_stop=options.f_stop))
        if options.camera == "random" and options.slices >= 3:
            count = int(rng.integers(3, options.slices + 1))
        near, far = setup.focus_near_m, setup.focus_far_m
        scene = camera_scene(rng, split, setup)
    renderer = _renderer(scene, options, seed, out)
    frame, _ = renderer.render(CameraState(), "aif")
    write_colour(out / "image.exr", frame.image)
    write_plane(out / "depth.exr", _checked_depth(frame.depth, "all-in-focus render"))
    slices = []
    for k, focus in enumerate(focus_distances(options, rng, near, far, count)):
        location, rotation = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        if options.shake_mm or options.shake_deg:
            location, rotation = shake(rng, options.shake_mm * 1e-3, options.shake_deg)
        state = CameraState(focus, None, options.breathing, location, rotation)
        if options.independent_noise:
            renderer.scene.cycles.seed = (seed + 1 + k) % 2**31
        view, record = renderer.render(state, f"slice_{k}")
        name = f"slice_{k:02d}.exr"
        write_colour(out / name, view.image)
        slices.append({"file": name, **record})
    return {"camera": renderer.camera_record(), "scene": scene.describe(), "slices": slices,
            "focus_distances": [s["focus_distance"] for s in slices], "breathing": options.breathing,
            "depth_range": [float(frame.depth.min()), float(frame.depth.max())]}


def render_deeplens(rng: np.random.Generator, split: str, seed: int, options: Options, out: Path) -> dict:
    scene = deeplens_scene(rng, split)
    renderer = _renderer(scene, options, seed, out)
    renderer.cast_no_shadows({p.name for p in scene.objects if p.layer > 0})
    frame, _ = renderer.render(CameraState(), "aif")
    depth = _checked_depth(frame.depth, "all-in-focus render")
    near, far = float(depth.min()), float(depth.max())
    inverse = (1.0 / depth - 1.0 / far) / (1.0 / near - 1.0 / far)
    write_colour(out / "image.exr", frame.image)
    write_plane(out / "depth.exr", depth)
    write_plane(out / "inverse_depth.exr", inverse, "V")
    layers = []
    for layer in range(3):
        names = {p.name for p in scene.objects if p.layer == layer}
        renderer.show_only(names)
        rgba, layer_depth = renderer.render_rgba(f"layer_{layer}")
        write_colour(out / f"layer_{layer}.exr", rgba)
        write_plane(out / f"layer_{layer}_depth.exr", layer_depth)
        covered = layer_depth[layer_depth > 0]
        layers.append({"file": f"layer_{layer}.exr", "depth_file": f"layer_{layer}_depth.exr", "objects": sorted(names),
                       "median_depth": float(np.median(covered)) if covered.size else 0.0})
    renderer.show_only(None)
    dof = []
    for k in range(options.dof_renders):
        focus = float(inverse_uniform(rng, near, far))
        f_stop = float(math.exp(rng.uniform(math.log(1.4), math.log(8.0))))
        view, record = renderer.render(CameraState(focus, f_stop), f"dof_{k}")
        name = f"dof_{k:02d}.exr"
        write_colour(out / name, view.image)
        dof.append({"file": name, **record})
    return {"camera": renderer.camera_record(), "scene": scene.describe(), "layers": layers, "dof": dof,
            "inverse_depth": {"file": "inverse_depth.exr", "near": near, "far": far},
            "depth_range": [near, far]}


def render_stereo(rng: np.random.Generator, split: str, seed: int, options: Options, out: Path) -> dict:
    scene = stereo_scene(rng, split)
    renderer = _renderer(scene, options, seed, out)
    baseline = scene.extra["baseline_m"]
    left, right = renderer.render_stereo(baseline)
    f_px = renderer.lens.focal_length_pixels(options.width, options.height)
    ranges = []
    for side, frame in (("left", left), ("right", right)):
        depth = _checked_depth(frame.depth, f"{side} view")
        write_colour(out / f"{side}.exr", frame.image)
        write_plane(out / f"depth_{side}.exr", depth)
        write_plane(out / f"disparity_{side}.exr", depth_to_disparity(depth, baseline, f_px), "D")
        ranges.append([float(depth.min()), float(depth.max())])
    return {"camera": renderer.camera_record(), "scene": scene.describe(), "baseline_m": baseline,
            "focal_length_px": f_px, "depth_range": ranges[0],
            "disparity_range": [baseline * f_px / ranges[0][1], baseline * f_px / ranges[0][0]]}


def sweep_focus(frames: int, ramps: int, near: float, far: float) -> list[float]:
    """Focus distances of a sweep: ``ramps`` linear ramps in inverse depth, near to far then back."""
    per = max(frames / ramps, 1.0)
    out = []
    for t in range(frames):
        phase = (t % per) / max(per - 1.0, 1.0)
        if int(t // per) % 2 == 1:
            phase = 1.0 - phase
        out.append(float(1.0 / (1.0 / near + phase * (1.0 / far - 1.0 / near))))
    return out


def render_sweep(rng: np.random.Generator, split: str, seed: int, options: Options, out: Path) -> dict:
    scene = sweep_scene(rng, split, options.frames)
    renderer = _renderer(scene, options, seed, out)
    focus = sweep_focus(options.frames, options.ramps, 1.0, 0.8 * scene.extra["backdrop_m"])
    renderer.animate(options.frames, focus)
    frames = []
    for t, distance in enumerate(focus):
        renderer.frame_set(t)
        aif, _ = renderer.render(CameraState(), "aif")
        view, record = renderer.render(CameraState(distance), "frame")
        names = {"file": f"frame_{t:03d}.exr", "aif_file": f"aif_{t:03d}.exr", "depth_file": f"depth_{t:03d}.exr"}
        write_colour(out / names["file"], view.image)
        write_colour(out / names["aif_file"], aif.image)
        write_plane(out / names["depth_file"], _checked_depth(aif.depth, f"frame {t}"))
        frames.append({"frame": t, **names, **record})
    return {"camera": renderer.camera_record(), "scene": scene.describe(), "frames": frames,
            "focus_distances": focus, "ramps": options.ramps}


RENDERERS: dict[str, Callable[[np.random.Generator, str, int, Options, Path], dict]] = {
    "defocusnet": render_defocusnet,
    "deeplens": render_deeplens,
    "stereo": render_stereo,
    "sweep": render_sweep,
}


def render_sample(kind: str, split: str, index: int, seed: int, options: Options, out: Path) -> dict:
    """Render sample ``index`` (whose own seed is ``seed``) into folder ``out``; its record (no files yet)."""
    rng = np.random.default_rng(seed)
    render = RENDERERS.get(kind) or load_renderer(kind)  # or the renderer its registration names
    record = render(rng, split, seed, options, out)
    shutil.rmtree(out / SCRATCH, ignore_errors=True)
    return {"format": FORMAT_VERSION, "kind": kind, "split": split, "index": index, "seed": seed, **record}
