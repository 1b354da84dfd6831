"""The ``track`` dataset kind: a subject walks towards a panning camera past an occluder (bpy).

What a focus puller faces (issue 18): a subject that walks from far to near (2.2-3x closer by the
end) and drifts sideways while the camera pans to keep it roughly framed; an occluder (a tall pole)
crossing in front of it for a few frames; clutter at many depths behind and beside it, kept out of
the subject's line of sight so that only the occluder hides it. The subject is a textured body
(cylinder) with a head (sphere), so its depth varies a little across its pixels, as a person's does.

Files per frame t (all in focus: Focus Track samples depth, the defocus comes after):
``frame_TTT.exr`` RGB (half float, scene-linear), ``depth_TTT.exr`` Z (planar metres, float32) and
``subject_TTT.png`` (8-bit mask: 255 where Cycles' object-index pass shows the subject).

The record's ``frames[t]`` holds the ground truth: ``subject_depth_m`` (median planar depth over
the subject's visible pixels; its centre's planar depth while it is hidden), ``visible_pixels``,
``box`` (x0, y0, x1, y1 pixels, top-left origin, end-exclusive: the visible pixels' box, or the
projected box while hidden), ``projected_box`` (its bounding box projected, occluder ignored),
``centre_depth_m``, ``occluded_fraction`` (share of its projected box area the occluder covers,
measured on the index pass), and ``pan_rad``. ``fps`` is the clip's frame rate, ``camera`` the lens.

Splits: ``dev`` (tune on it) and ``test`` (held out: report once); there is nothing to train.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from core.imageio import read_exr_channels
from core.optics import Lens

from . import scene as bs
from .dataset_render import CameraState, DatasetRenderer
from .dataset_scenes import DatasetScene, Placed, _lighting, backdrop, inverse_uniform, random_material, TRAIN_LOOK

FPS = 24.0
SUBJECT_INDEX, OCCLUDER_INDEX = 1, 2
SUBJECT_PARTS = ("Subject.Body", "Subject.Head")
OCCLUDER = "Occluder"
# Below this many visible pixels the subject counts as hidden (its median depth would be noise).
MIN_VISIBLE_PIXELS = 12
_LOOK_TEXTURES = ("checker", "noise")  # voronoi shades four times slower (see dataset_scenes.backdrop)


def _path(rng: np.random.Generator, frames: int, lens: Lens, width: int, height: int) -> dict:
    """The subject's walk, the camera's pan and the occluder's crossing, per frame, as plain numbers."""
    f_px = lens.focal_length_pixels(width, height)
    t_half = width / (2.0 * f_px)  # tan of half the horizontal field of view
    near = float(rng.uniform(2.0, 4.0))
    far = near * float(rng.uniform(2.2, 3.0))
    s = np.linspace(0.0, 1.0, frames)
    ease = float(rng.uniform(0.0, 0.6))
    s = (1.0 - ease) * s + ease * (3 * s**2 - 2 * s**3)  # some walks speed up, then slow down
    depth = far + (near - far) * s  # subject centre's distance along world y, metres
    # Sideways drift in the world, and where the subject should appear (normalised image x in -0.5..0.5).
    drift = float(rng.uniform(-1.0, 1.0)) * 0.35 * far * t_half
    x_world = drift * (1.0 - s) - drift * 0.3 * s
    u0, u1 = rng.uniform(-0.25, 0.25, 2)
    u = u0 + (u1 - u0) * s
    # Pan about world z so that the subject's image offset follows u: psi = subject azimuth + pan.
    azimuth = np.arctan2(x_world, depth)
    psi = np.arctan(2.0 * u * t_half)
    pan = psi - azimuth
    height_m = 0.7 * height / f_px * near  # the subject fills ~70% of the frame height at its nearest
    z_centre = float(rng.uniform(-0.08, 0.08)) * height / f_px * near
    # Occluder: a pole at 45-70% of the subject's distance when it crosses (frames 30-70% into the clip).
    t_cross = int(rng.integers(int(0.3 * frames), int(0.7 * frames) + 1))
    d_occ = float(rng.uniform(0.45, 0.7)) * float(depth[t_cross])
    subject_width = 0.4 * height_m
    occ_width = float(rng.uniform(0.8, 1.4)) * subject_width * d_occ / float(depth[t_cross])
    half_angles = 0.5 * subject_width / depth[t_cross] + 0.5 * occ_width / d_occ
    overlap_frames = float(rng.uniform(5.0, 9.0))
    omega = 2.0 * half_angles / overlap_frames * (1.0 if rng.uniform() < 0.5 else -1.0)
    occ_azimuth = azimuth[t_cross] + omega * (np.arange(frames) - t_cross)
    x_occ = d_occ * np.tan(occ_azimuth)
    return {"near": near, "far": far, "depth": depth, "x": x_world, "z": z_centre, "pan": pan,
            "height_m": height_m, "width_m": subject_width, "t_cross": t_cross, "occluder_depth": d_occ,
            "occluder_width": occ_width, "occluder_x": x_occ, "t_half": t_half}


def _clutter(rng: np.random.Generator, path: dict, lens: Lens, back: float, count: int) -> list[Placed]:
    """Objects at many depths (0.6 x nearest .. 0.9 x backdrop) that never stand between the camera and
    the subject, so that only the occluder hides it."""
    t = path["t_half"] * 2.2  # over the widest view the pan reaches
    out: list[Placed] = []
    tries = 0
    while len(out) < count and tries < 50 * count:
        tries += 1
        y = float(inverse_uniform(rng, 0.6 * path["near"], 0.9 * back))
        extent = float(rng.uniform(0.05, 0.25)) * 2.0 * path["t_half"] * y
        x = float(rng.uniform(-1.0, 1.0)) * t * y
        z = float(rng.uniform(-0.6, 0.6)) * path["t_half"] * y
        in_front = y - 0.5 * extent < path["depth"] + 0.5 * path["width_m"]
        gap = np.abs(np.arctan2(x, y) - np.arctan2(path["x"], path["depth"]))
        reach = 0.5 * extent / y + 0.5 * path["width_m"] / path["depth"] + 0.02
        if np.any(in_front & (gap < reach)):
            continue
        kind = ("cube", "sphere", "cylinder", "cone", "torus")[int(rng.integers(5))]
        size = tuple(float(v) for v in extent * rng.uniform(0.6, 1.0, 3))
        rotation = tuple(float(r) for r in rng.uniform(0.0, 2.0 * math.pi, 3))
        material = random_material(rng, extent, _LOOK_TEXTURES, TRAIN_LOOK.roughness)
        item = bs.Primitive(kind, (x, y, z), size, rotation, material)  # type: ignore[arg-type]
        out.append(Placed(f"Clutter.{len(out):03d}", item))
    return out


def track_scene(rng: np.random.Generator, frames: int, width: int, height: int) -> tuple[DatasetScene, dict]:
    """One clip's scene (objects at frame 0) and its per-frame path."""
    lens = Lens(focal_length_mm=float(rng.choice([35.0, 50.0, 85.0])), f_stop=float(rng.choice([1.4, 2.0, 2.8])),
                focus_distance=3.0, sensor_width_mm=36.0)
    path = _path(rng, frames, lens, width, height)
    back = float(path["far"] * rng.uniform(1.8, 2.6))
    objects = [backdrop(rng, back, lens, TRAIN_LOOK, tilt=0.3)]
    objects += _clutter(rng, path, lens, back, int(rng.integers(8, 16)))
    h, w = path["height_m"], path["width_m"]
    body_h = 0.78 * h
    body = random_material(rng, w, _LOOK_TEXTURES, (0.4, 0.9))
    head = random_material(rng, 0.3 * w, _LOOK_TEXTURES, (0.4, 0.9))
    x0, y0, z0 = float(path["x"][0]), float(path["depth"][0]), float(path["z"])
    objects.append(Placed(SUBJECT_PARTS[0], bs.Primitive("cylinder", (x0, y0, z0 - 0.5 * h + 0.5 * body_h),
                                                         (w, w, body_h), material=body)))
    objects.append(Placed(SUBJECT_PARTS[1], bs.Primitive("sphere", (x0, y0, z0 + 0.5 * h - 0.11 * h),
                                                         (0.22 * h, 0.22 * h, 0.22 * h), material=head)))
    d_occ = path["occluder_depth"]
    occ_h = 4.0 * path["t_half"] * d_occ  # taller than the frame at its distance
    objects.append(Placed(OCCLUDER, bs.Primitive("cube", (float(path["occluder_x"][0]), d_occ, 0.0),
                                                 (path["occluder_width"], 0.1 * path["occluder_width"], occ_h),
                                                 material=random_material(rng, path["occluder_width"],
                                                                          _LOOK_TEXTURES, (0.4, 0.9)),
                                                 smooth=False)))
    lamps, world, strength = _lighting(rng, TRAIN_LOOK, path["far"])
    return DatasetScene(tuple(objects), lamps, world, strength, lens, extra={"backdrop_m": back}), path


def _index_pass(exr: Path) -> np.ndarray:
    """Cycles' object-index pass (H, W) from a multilayer EXR."""
    channels = read_exr_channels(exr)
    # Blender 5 names the pass "Object Index" in multilayer EXRs (older versions: "IndexOB").
    [name] = [k for k in channels if k.split(".")[-2] in ("Object Index", "IndexOB")]
    return np.rint(channels[name]).astype(np.int32)


def _projected_box(renderer: DatasetRenderer, names: tuple[str, ...]) -> list[float]:
    """Pixel box (x0, y0, x1, y1), top-left origin, of the named objects' bounding boxes projected."""
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    scene = renderer.scene
    bpy.context.view_layer.update()
    xs, ys = [], []
    for name in names:
        obj = renderer.objects[name]
        for corner in obj.bound_box:
            p = world_to_camera_view(scene, scene.camera, obj.matrix_world @ Vector(corner))
            xs.append(p.x * renderer.width)
            ys.append((1.0 - p.y) * renderer.height)
    return [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]


def render_track(rng: np.random.Generator, split: str, seed: int, options, out: Path) -> dict:
    """Render one clip of ``options.frames`` frames into ``out``; its record (no files yet)."""
    import cv2

    from .dataset_samples import _checked_depth, _renderer, write_colour, write_plane

    frames = options.frames
    scene, path = track_scene(rng, frames, options.width, options.height)
    renderer = _renderer(scene, options, seed, out)
    renderer.scene.view_layers[0].use_pass_object_index = True
    for name in SUBJECT_PARTS:
        renderer.objects[name].pass_index = SUBJECT_INDEX
    renderer.objects[OCCLUDER].pass_index = OCCLUDER_INDEX
    body, head = (renderer.objects[n] for n in SUBJECT_PARTS)
    offsets = [np.array(body.location) - np.array((path["x"][0], path["depth"][0], path["z"])),
               np.array(head.location) - np.array((path["x"][0], path["depth"][0], path["z"]))]
    occluder = renderer.objects[OCCLUDER]
    records = []
    for t in range(frames):
        centre = np.array((path["x"][t], path["depth"][t], path["z"]))
        body.location = tuple(centre + offsets[0])
        head.location = tuple(centre + offsets[1])
        occluder.location = (float(path["occluder_x"][t]), path["occluder_depth"], 0.0)
        state = CameraState(shake_rotation=(0.0, 0.0, float(path["pan"][t])))
        frame, _ = renderer.render(state, "frame")
        index = _index_pass(renderer.scratch / "frame.exr")
        depth = _checked_depth(frame.depth, f"frame {t}")
        mask = index == SUBJECT_INDEX
        projected = _projected_box(renderer, SUBJECT_PARTS)
        pan = float(path["pan"][t])
        centre_depth = float(centre[0] * -math.sin(pan) + centre[1] * math.cos(pan))  # along the view axis
        visible = int(mask.sum())
        px0, py0, px1, py1 = (int(round(v)) for v in projected)
        px0, py0 = max(px0, 0), max(py0, 0)
        px1, py1 = min(px1, options.width), min(py1, options.height)
        area = max(px1 - px0, 0) * max(py1 - py0, 0)
        occluded = float((index[py0:py1, px0:px1] == OCCLUDER_INDEX).sum() / max(area, 1))
        if visible >= MIN_VISIBLE_PIXELS:
            ys, xs = np.nonzero(mask)
            box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
            truth = float(np.median(depth[mask]))
        else:
            box, truth = [px0, py0, px1, py1], centre_depth
        names = {"file": f"frame_{t:03d}.exr", "depth_file": f"depth_{t:03d}.exr", "mask_file": f"subject_{t:03d}.png"}
        write_colour(out / names["file"], frame.image)
        write_plane(out / names["depth_file"], depth)
        cv2.imwrite(str(out / names["mask_file"]), mask.astype(np.uint8) * 255)
        records.append({"frame": t, **names, "subject_depth_m": truth, "centre_depth_m": centre_depth,
                        "visible_pixels": visible, "box": box, "projected_box": projected,
                        "occluded_fraction": occluded, "pan_rad": pan, "focus_distance": None})
    return {"camera": renderer.camera_record(), "scene": scene.describe(), "frames": records, "fps": FPS,
            "subject": {"near_m": path["near"], "far_m": path["far"], "height_m": path["height_m"],
                        "width_m": path["width_m"]},
            "occluder": {"depth_m": path["occluder_depth"], "cross_frame": path["t_cross"],
                         "width_m": path["occluder_width"]},
            "backdrop_m": scene.extra["backdrop_m"]}
