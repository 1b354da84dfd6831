"""Render one dataset scene many ways without rebuilding it (bpy, Cycles on the CPU).

A :class:`DatasetRenderer` builds a :class:`~blender_scenes.dataset_scenes.DatasetScene` once and
then renders what a sample needs by changing only the camera or visibility between renders:
the all-in-focus image with its Z pass, focal-stack slices (focus, f-stop, focus breathing, camera
shake), Blender's stereo pair, DeepLens layers, and frames of an animation. Cycles keeps the
scene's BVH and shaders between these renders (``use_persistent_data``).

Throughput settings (256 x 256, measured on a shared 2-core machine; see the generator's notes):
few samples with OpenImageDenoise beat many samples without it (4 spp + OIDN scores 39 dB PSNR
against a 256-spp render of a defocused slice, 16 spp without it 38.6 dB at three times the
cost); the denoiser runs at its fast quality on colour alone; no adaptive sampling (fixed cost,
and the sample count stays part of the record); two bounces; no light tree (a handful of lamps).

Depth always comes from an all-in-focus render: with depth of field the Z pass holds the depth
of lens-sampled rays, not of the pixel's surface.
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from core.imageio import read_image
from core.optics import Lens

from . import scene as bs
from .dataset_meshes import Shape, add_shape
from .dataset_scenes import DatasetScene

# Blender's Z pass for rays that hit nothing (never happens with a backdrop, checked by validate).
_NO_HIT = 1e9


@dataclass(frozen=True)
class Quality:
    """Cycles settings for dataset renders.

    Attributes:
        samples: samples per pixel (fixed: no adaptive stop).
        denoise: OpenImageDenoise on the colour (fast quality).
        max_bounces: light-path bounces.
        threads: CPU threads, 0 for all cores.
    """

    samples: int = 4
    denoise: bool = True
    max_bounces: int = 2
    threads: int = 0


@dataclass(frozen=True)
class CameraState:
    """The camera of one render, relative to the scene's lens.

    Attributes:
        focus_distance: planar focus distance, metres (``None``: all in focus, no depth of field).
        f_stop: f-number N; the aperture diameter is focal_length / N.
        breathing: move the sensor to s = F f / (F - f) as a real lens does (seed 004), which
            narrows the field of view by f / s relative to focus at infinity; Cycles models that
            as a focal length of s with an f-stop of N s / f (the same aperture diameter).
        shake_location: camera offset in metres along world x, y, z.
        shake_rotation: camera rotation offset, Euler XYZ radians.
    """

    focus_distance: float | None = None
    f_stop: float | None = None
    breathing: bool = False
    shake_location: bs.Vec3 = (0.0, 0.0, 0.0)
    shake_rotation: bs.Vec3 = (0.0, 0.0, 0.0)


def sensor_distance_mm(focal_length_mm: float, focus_distance: float) -> float:
    """Lens-to-sensor distance s = F f / (F - f) of a thin lens focused at ``focus_distance`` metres."""
    f = focal_length_mm * 1e-3
    return focus_distance * f / (focus_distance - f) * 1e3


class DatasetRenderer:
    """A dataset scene built once in Blender, ready to render many views of it.

    Args:
        scene: what to build.
        width, height: pixels.
        quality: Cycles settings.
        seed: Cycles' sampling seed (the sample's seed: same seed, same noise).
        scratch: folder for Blender's raw renders (created; the caller removes it).
    """

    def __init__(self, scene: DatasetScene, width: int, height: int, quality: Quality, seed: int,
                 scratch: Path) -> None:
        self.spec, self.width, self.height, self.quality = scene, width, height, quality
        self.lens = scene.lens
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        settings = bs.RenderSettings(width=width, height=height, samples=quality.samples, adaptive_threshold=0.0,
                                     denoise=quality.denoise, max_bounces=quality.max_bounces,
                                     threads=quality.threads, seed=seed % 2**31)
        self.scene = bs.build(bs.SceneSpec(objects=scene.lamps, world=scene.world,
                                           world_strength=scene.world_strength), settings, scene.lens)
        self.objects: dict[str, bpy.types.Object] = {}
        for placed in scene.objects:
            if isinstance(placed.item, Shape):
                self.objects[placed.name] = add_shape(self.scene, placed.item, placed.name)
            else:
                self.objects[placed.name] = bs.add(self.scene, placed.item, placed.name)
        self._tune()
        camera = self.scene.camera
        self._base_location = tuple(camera.location)
        self._base_rotation = tuple(camera.rotation_euler)

    def _tune(self) -> None:
        self.scene.render.use_persistent_data = True
        c = self.scene.cycles
        c.use_light_tree = False
        if self.quality.denoise:
            c.denoiser = "OPENIMAGEDENOISE"
            c.denoising_input_passes = "RGB"
            c.denoising_prefilter = "NONE"
            c.denoising_quality = "FAST"

    # ------------------------------------------------------------------------------------ camera
    def set_camera(self, state: CameraState) -> dict:
        """Point the camera at ``state`` and return its record (what a reader needs to redo the optics).

        Record keys: focus_distance (m, or null), f_stop, focal_length_mm (effective: the sensor
        distance when breathing), blender_f_stop, focal_length_px (effective, horizontal),
        coc_px_per_dioptre (A f_px: CoC = that * (1/F - 1/D)), relative_fov (f / s, 1 without
        breathing), shake_location (m), shake_rotation (rad).
        """
        camera, lens = self.scene.camera, self.lens
        data = camera.data
        f_stop = lens.f_stop if state.f_stop is None else state.f_stop
        focal = lens.focal_length_mm
        if state.focus_distance is not None and state.breathing:
            focal = sensor_distance_mm(lens.focal_length_mm, state.focus_distance)
        data.lens = focal
        # Cycles' aperture diameter is lens / f-stop: keep the real one, f / N, while breathing.
        data.dof.aperture_fstop = f_stop * focal / lens.focal_length_mm
        data.dof.use_dof = state.focus_distance is not None
        if state.focus_distance is not None:
            data.dof.focus_distance = state.focus_distance
        camera.location = tuple(b + d for b, d in zip(self._base_location, state.shake_location))
        camera.rotation_euler = tuple(b + d for b, d in zip(self._base_rotation, state.shake_rotation))
        f_px = Lens(focal, f_stop, lens.focus_distance, lens.sensor_width_mm, lens.sensor_height_mm,
                    lens.sensor_fit).focal_length_pixels(self.width, self.height)
        aperture_m = lens.focal_length_mm / f_stop * 1e-3
        return {
            "focus_distance": state.focus_distance,
            "f_stop": f_stop,
            "focal_length_mm": focal,
            "blender_f_stop": data.dof.aperture_fstop,
            "focal_length_px": f_px,
            "coc_px_per_dioptre": aperture_m * f_px,
            "relative_fov": lens.focal_length_mm / focal,
            "shake_location": list(state.shake_location),
            "shake_rotation": list(state.shake_rotation),
        }

    def camera_record(self) -> dict:
        """The scene's nominal camera: lens, sensor, image size, pose (the all-in-focus view)."""
        lens = self.lens
        return {
            "focal_length_mm": lens.focal_length_mm,
            "f_stop": lens.f_stop,
            "sensor_width_mm": lens.sensor_width_mm,
            "sensor_height_mm": lens.sensor_height_mm,
            "sensor_fit": lens.sensor_fit,
            "blades": lens.blades,
            "width": self.width,
            "height": self.height,
            "focal_length_px": lens.focal_length_pixels(self.width, self.height),
            "location": list(self._base_location),
            "rotation_euler": list(self._base_rotation),
            "samples": self.quality.samples,
            "denoise": self.quality.denoise,
        }

    # ----------------------------------------------------------------------------------- renders
    def render(self, state: CameraState = CameraState(), name: str = "render") -> tuple[bs.Frame, dict]:
        """Render with camera ``state``: the frame (colour (H, W, 3) linear, Z (H, W) metres) and the
        camera record."""
        record = self.set_camera(state)
        frame = bs.render(self.scene, self.scratch / f"{name}.exr")
        return frame, record

    def render_rgba(self, name: str = "rgba") -> tuple[np.ndarray, np.ndarray]:
        """Render on a transparent film: colour with alpha (H, W, 4) linear premultiplied, and the
        Z pass (H, W) in metres with 0 where nothing was hit."""
        self.scene.render.film_transparent = True
        try:
            path = self.scratch / f"{name}.exr"
            frame = bs.render(self.scene, path)
            rgba = read_image(path)
        finally:
            self.scene.render.film_transparent = False
        depth = np.where(rgba[..., 3] > 0.0, frame.depth, 0.0).astype(np.float32)
        depth[depth >= _NO_HIT] = 0.0
        return rgba.astype(np.float32), depth

    def show_only(self, names: set[str] | None) -> None:
        """Render only the named objects (``None``: all of them); lamps stay."""
        for name, obj in self.objects.items():
            obj.hide_render = names is not None and name not in names

    def cast_no_shadows(self, names: set[str]) -> None:
        for name in names:
            self.objects[name].visible_shadow = False

    def render_stereo(self, baseline_m: float, name: str = "stereo") -> tuple[bs.Frame, bs.Frame]:
        """Blender's stereo camera, parallel (rectified) with ``baseline_m`` between the two views,
        centred on the nominal camera: the left and right frames, all in focus."""
        self.set_camera(CameraState())
        r = self.scene.render
        stereo = self.scene.camera.data.stereo
        stereo.convergence_mode, stereo.pivot = "PARALLEL", "CENTER"
        stereo.interocular_distance = baseline_m
        r.use_multiview, r.views_format = True, "STEREO_3D"
        r.use_compositing = False
        r.image_settings.media_type = "MULTI_LAYER_IMAGE"
        r.image_settings.color_depth = "32"
        r.image_settings.exr_codec = "ZIP"
        r.image_settings.views_format = "INDIVIDUAL"
        base = self.scratch / f"{name}.exr"
        for stale in glob.glob(str(self.scratch / f"{name}_*.exr")):
            os.unlink(stale)
        r.filepath, r.use_file_extension = str(base), False
        try:
            with bs.quiet():
                bpy.ops.render.render(write_still=True, scene=self.scene.name)
        finally:
            r.use_multiview = False
        # Blender names the two files by inserting its view suffixes before the extension.
        left, right = (self.scratch / f"{name}_{side}.exr" for side in ("L", "R"))
        return bs.read_frame(left), bs.read_frame(right)

    # --------------------------------------------------------------------------------- animation
    def animate(self, frames: int, focus_distances: list[float]) -> None:
        """Keyframe a sweep: each object drifts by its velocity per frame, the focus follows
        ``focus_distances`` (one per frame, frames numbered from 0)."""
        scene = self.scene
        scene.frame_start, scene.frame_end = 0, frames - 1
        for placed in self.spec.objects:
            if not any(placed.velocity):
                continue
            obj = self.objects[placed.name]
            start = np.array(obj.location)
            for t in range(frames):
                obj.location = tuple(start + t * np.array(placed.velocity))
                obj.keyframe_insert("location", frame=t)
        dof = scene.camera.data.dof
        for t, focus in enumerate(focus_distances):
            dof.focus_distance = focus
            dof.keyframe_insert("focus_distance", frame=t)

    def frame_set(self, t: int) -> None:
        self.scene.frame_set(t)


def shake(rng: np.random.Generator, translation_m: float, rotation_deg: float) -> tuple[bs.Vec3, bs.Vec3]:
    """A small random camera shake: offsets uniform in +-``translation_m`` and +-``rotation_deg``."""
    loc = tuple(float(v) for v in rng.uniform(-translation_m, translation_m, 3))
    rot = tuple(float(v) for v in rng.uniform(-1.0, 1.0, 3) * math.radians(rotation_deg))
    return loc, rot  # type: ignore[return-value]
