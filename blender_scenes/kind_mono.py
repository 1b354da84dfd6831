"""The ``mono`` dataset kind: single images with planar depth and a foreground mask (issue 17, bpy).

Training data for the built-in Mono Depth network (DeepLens, seed 003, section 3.1). Each sample
is one all-in-focus Cycles render of a randomly laid out scene, so the network learns geometry
(floors receding to a horizon, walls, objects standing on surfaces), not one arrangement:

``room``       a closed box room (floor, ceiling, four walls) with furniture-sized objects on the floor
``tabletop``   a room with a table; small objects rest on the table top, the camera looks down at it
``ground``     an open ground plane to a far backdrop (the horizon), objects standing on the ground
``walls``      panels at depths spread uniformly in inverse depth (0.4-40 m) before a tilted back wall

Surfaces carry photographs that scikit-image ships (tiled over UVs, tinted when grey) or, for a
quarter of them, the project's procedural patterns. The test split holds out its own photographs
(:data:`TEST_PHOTOS`) and draws the layouts in other proportions (:data:`LAYOUT_WEIGHTS`). Cameras
are 18-135 mm full-frame equivalents (log-uniform), at a random height, tilt, yaw and roll; lights
are a sun, lamps or both, with a world of random colour and strength. A sky box that only camera
rays see (glowing with the world's colour, :data:`SKY_M` from the camera) gives every pixel a depth.

Files per sample: ``image.exr`` (RGB, scene-linear half float; the network takes it sRGB-encoded),
``depth.exr`` (Z, planar metres, float32) and ``mask.exr`` (channel Y, 1 on objects, 0 on the
room, table, ground and backdrops: the segmentation head's target, from Cycles' object-index pass).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from core.imageio import read_exr_channels
from core.optics import Lens

from . import scene as bs

SPLITS = ("train", "val", "test")
LAYOUTS = ("room", "tabletop", "ground", "walls")
LAYOUT_WEIGHTS = {"train": (0.3, 0.25, 0.25, 0.2), "val": (0.3, 0.25, 0.25, 0.2), "test": (0.2, 0.2, 0.3, 0.3)}
# scikit-image's bundled pictures (no download). The test split's photographs are never on a training
# or validation surface; models.mono.evaluate also shows them as real photographs.
TRAIN_PHOTOS = ("astronaut", "brick", "camera", "coins", "colorwheel", "grass", "immunohistochemistry", "moon",
                "page", "retina", "text", "clock", "cell", "hubble_deep_field")
TEST_PHOTOS = ("coffee", "chelsea", "rocket", "gravel")
PROCEDURAL = ("checker", "noise", "brick")  # voronoi shades four times slower (see dataset_scenes.backdrop)
PRIMITIVES = ("cube", "sphere", "cylinder", "cone", "torus", "ico_sphere")
FOREGROUND_INDEX = 1  # Cycles pass_index of foreground objects; structure stays 0
SKY_M = 480.0  # half-size of the sky box: its corners (831 m) stay inside the camera's 1000 m clip
_TEXTURE_SIDE = 256  # photographs are reduced to this many pixels on their long side


@dataclass(frozen=True)
class Surface:
    """What a surface looks like: a photograph (``photo``) tiled ``repeat`` times over its UVs and
    multiplied by ``tint``, or a procedural pattern (``pattern``, a scene.py Texture)."""

    photo: str | None
    repeat: float = 1.0
    tint: bs.RGB = (1.0, 1.0, 1.0)
    pattern: bs.Texture | None = None
    roughness: float = 0.6


@dataclass(frozen=True)
class Solid:
    """One mesh: a scene.py primitive kind at ``location`` (metres), ``size`` along its local axes,
    Euler ``rotation``; ``foreground`` objects are 1 in the mask."""

    name: str
    kind: str
    location: bs.Vec3
    size: bs.Vec3
    rotation: bs.Vec3
    surface: Surface
    foreground: bool = False


@dataclass(frozen=True)
class MonoScene:
    """A layout to render: solids, lamps, world colour and strength, the lens and the camera pose."""

    layout: str
    solids: tuple[Solid, ...]
    lamps: tuple[bs.Sun | bs.PointLight, ...]
    world: bs.RGB
    world_strength: float
    lens: Lens
    pose: bs.CameraPose
    roll: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"layout": self.layout, "solids": [asdict(s) for s in self.solids],
                "lamps": [{"type": type(lamp).__name__, **asdict(lamp)} for lamp in self.lamps],
                "world": list(self.world), "world_strength": self.world_strength,
                "pose": asdict(self.pose), "roll": self.roll, **self.extra}


# ------------------------------------------------------------------------------------ appearance
def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _colour(rng: np.random.Generator, low: float, high: float) -> bs.RGB:
    return tuple(float(c) for c in rng.uniform(low, high, 3))  # type: ignore[return-value]


def random_surface(rng: np.random.Generator, photos: tuple[str, ...], extent_m: float) -> Surface:
    """A surface about ``extent_m`` metres across: a photograph tiled every 0.3-3 m (three in four) or
    a procedural pattern."""
    roughness = _u(rng, 0.3, 0.95)
    if rng.uniform() < 0.75:
        photo = photos[int(rng.integers(len(photos)))]
        tile = math.exp(rng.uniform(math.log(0.3), math.log(3.0)))
        grey = photo_array(photo).shape[-1] == 1
        tint = _colour(rng, 0.25, 1.0) if grey else _colour(rng, 0.75, 1.0)
        return Surface(photo, max(extent_m / tile, 1.0), tint, None, roughness)
    a = _colour(rng, 0.03, 0.85)
    b = tuple(float(c) for c in np.array(a) * rng.uniform(0.05, 0.5))
    pattern = bs.Texture(PROCEDURAL[int(rng.integers(len(PROCEDURAL)))], a, b,  # type: ignore[arg-type]
                         scale=_u(rng, 1.0, 10.0), seed=_u(rng, 0.0, 100.0))
    return Surface(None, 1.0, (1.0, 1.0, 1.0), pattern, roughness)


@lru_cache(maxsize=None)
def photo_array(name: str) -> np.ndarray:
    """scikit-image's picture ``name`` as (H, W, 1 or 3) float32 sRGB in [0, 1], long side <= 256 px."""
    import cv2
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    image = image.astype(np.float32) / (255.0 if image.dtype != np.float32 and image.max() > 1.0 else 1.0)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    scale = _TEXTURE_SIDE / max(image.shape[:2])
    if scale < 1.0:
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    return image.reshape(*image.shape[:2], -1)


# ----------------------------------------------------------------------------------------- cameras
def random_lens(rng: np.random.Generator, low_mm: float = 18.0, high_mm: float = 135.0) -> Lens:
    """A full-frame (36 mm) lens of 18-135 mm, log-uniform; all in focus (depth of field off)."""
    focal = math.exp(rng.uniform(math.log(low_mm), math.log(high_mm)))
    return Lens(focal_length_mm=float(focal), f_stop=8.0, focus_distance=10.0, sensor_width_mm=36.0)


def _pose(height: float, tilt_deg: float, yaw_deg: float, x: float = 0.0, y: float = 0.0) -> bs.CameraPose:
    """A camera at (x, y, height) looking along +y turned by ``yaw_deg`` and pitched by ``tilt_deg`` (up +)."""
    tilt, yaw = math.radians(tilt_deg), math.radians(yaw_deg)
    look = (x + math.cos(tilt) * math.sin(yaw), y + math.cos(tilt) * math.cos(yaw), height + math.sin(tilt))
    return bs.CameraPose((x, y, height), tuple(float(v) for v in look))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- lights
def _lights(rng: np.random.Generator, indoor: bool, box: tuple[float, float, float] | None = None
            ) -> tuple[tuple[bs.Sun | bs.PointLight, ...], bs.RGB, float]:
    """A sun and/or lamps and a world; indoors the lamps hang under the ceiling of ``box`` (w, d, h)."""
    lamps: list[bs.Sun | bs.PointLight] = []
    if indoor:
        width, depth, height = box  # type: ignore[misc]
        for _ in range(int(rng.integers(1, 4))):
            lamps.append(bs.PointLight(location=(_u(rng, -0.4, 0.4) * width, _u(rng, 0.1, 0.9) * depth,
                                                 height * _u(rng, 0.6, 0.92)),
                                       power=_u(rng, 150.0, 900.0) * max(width * depth / 20.0, 0.5),
                                       radius=_u(rng, 0.05, 0.4), colour=_colour(rng, 0.6, 1.0)))
        if rng.uniform() < 0.3:  # daylight through the walls is not modelled; a weak sun adds hard shadows
            lamps.append(bs.Sun(rotation=(_u(rng, 0.2, 1.0), 0.0, _u(rng, -math.pi, math.pi)),
                                strength=_u(rng, 0.5, 2.0)))
        return tuple(lamps), _colour(rng, 0.1, 0.5), _u(rng, 0.2, 0.8)
    elevation = _u(rng, 0.15, 1.3)
    lamps.append(bs.Sun(rotation=(float(math.pi / 2 - elevation), 0.0, _u(rng, -math.pi, math.pi)),
                        strength=_u(rng, 1.5, 5.0), colour=_colour(rng, 0.8, 1.0), angle=_u(rng, 0.01, 0.2)))
    return tuple(lamps), _colour(rng, 0.2, 0.8), _u(rng, 0.4, 1.5)


# ----------------------------------------------------------------------------------------- layouts
def _resting(rng: np.random.Generator, name: str, x: float, y: float, floor_z: float, extent: float,
             photos: tuple[str, ...]) -> Solid:
    """A random primitive of about ``extent`` metres standing on the surface at ``floor_z``."""
    kind = PRIMITIVES[int(rng.integers(len(PRIMITIVES)))]
    size = tuple(float(extent * s) for s in rng.uniform(0.5, 1.3, 3))
    if kind in ("sphere", "ico_sphere"):
        size = (size[0], size[0], size[0])
    if kind == "torus":
        size = (size[0], size[0], size[0] * 0.7)
    yaw = _u(rng, 0.0, 2.0 * math.pi)
    # A torus lies flat (its 0.3-unit thickness along local z); everything else stands upright.
    height = size[2] * (0.3 if kind == "torus" else 1.0)
    return Solid(name, kind, (x, y, floor_z + height / 2.0), size, (0.0, 0.0, yaw),  # type: ignore[arg-type]
                 random_surface(rng, photos, max(size)), foreground=True)


def _box_room(rng: np.random.Generator, photos: tuple[str, ...], width: float, depth: float, height: float,
              behind: float) -> list[Solid]:
    """Floor, ceiling and four walls (thin boxes) enclosing x in +-width/2, y in -behind..depth, z 0..height."""
    t = 0.05
    cy = (depth - behind) / 2.0
    length = depth + behind
    floor = random_surface(rng, photos, max(width, length))
    wall = random_surface(rng, photos, max(width, height))
    side = wall if rng.uniform() < 0.6 else random_surface(rng, photos, max(length, height))
    return [
        Solid("Floor", "cube", (0.0, cy, -t / 2), (width + 2 * t, length + 2 * t, t), (0.0, 0.0, 0.0), floor),
        Solid("Ceiling", "cube", (0.0, cy, height + t / 2), (width + 2 * t, length + 2 * t, t), (0.0, 0.0, 0.0),
              random_surface(rng, photos, width)),
        Solid("WallBack", "cube", (0.0, depth + t / 2, height / 2), (width + 2 * t, t, height), (0.0, 0.0, 0.0), wall),
        Solid("WallFront", "cube", (0.0, -behind - t / 2, height / 2), (width + 2 * t, t, height), (0.0, 0.0, 0.0), wall),
        Solid("WallLeft", "cube", (-width / 2 - t / 2, cy, height / 2), (t, length, height), (0.0, 0.0, 0.0), side),
        Solid("WallRight", "cube", (width / 2 + t / 2, cy, height / 2), (t, length, height), (0.0, 0.0, 0.0), side),
    ]


def room_scene(rng: np.random.Generator, photos: tuple[str, ...], lens: Lens) -> MonoScene:
    width, depth, height, behind = _u(rng, 3.0, 9.0), _u(rng, 3.0, 12.0), _u(rng, 2.4, 4.0), _u(rng, 0.5, 1.5)
    solids = _box_room(rng, photos, width, depth, height, behind)
    for i in range(int(rng.integers(2, 8))):
        extent = _u(rng, 0.2, 1.4)
        x = _u(rng, -0.5, 0.5) * (width - extent)
        y = _u(rng, 0.6, depth - extent / 2)
        solids.append(_resting(rng, f"Object.{i:03d}", x, y, 0.0, extent, photos))
    lamps, world, strength = _lights(rng, True, (width, depth, height))
    pose = _pose(_u(rng, 0.3, min(2.0, height - 0.3)), _u(rng, -30.0, 12.0), _u(rng, -25.0, 25.0),
                 _u(rng, -0.25, 0.25) * width, 0.0)
    return MonoScene("room", tuple(solids), lamps, world, strength, lens, pose, _u(rng, -0.08, 0.08))


def tabletop_scene(rng: np.random.Generator, photos: tuple[str, ...], lens: Lens) -> MonoScene:
    width, depth, height, behind = _u(rng, 3.0, 7.0), _u(rng, 2.0, 7.0), _u(rng, 2.4, 3.5), _u(rng, 0.5, 1.0)
    solids = _box_room(rng, photos, width, depth, height, behind)
    top_z = _u(rng, 0.5, 0.95)
    tw, td = _u(rng, 0.8, 2.2), _u(rng, 0.6, 1.4)
    ty = _u(rng, 0.5, 1.0) + td / 2
    solids.append(Solid("Table", "cube", (0.0, ty, top_z - 0.03), (tw, td, 0.06), (0.0, 0.0, _u(rng, -0.3, 0.3)),
                        random_surface(rng, photos, tw)))
    leg = random_surface(rng, photos, top_z)
    for k, (sx, sy) in enumerate(((-1, -1), (-1, 1), (1, -1), (1, 1))):
        solids.append(Solid(f"Leg.{k}", "cube", (sx * (tw / 2 - 0.08), ty + sy * (td / 2 - 0.08), top_z / 2),
                            (0.05, 0.05, top_z), (0.0, 0.0, 0.0), leg))
    for i in range(int(rng.integers(2, 7))):
        extent = _u(rng, 0.04, 0.3)
        x = _u(rng, -0.4, 0.4) * tw
        y = ty + _u(rng, -0.4, 0.4) * td
        solids.append(_resting(rng, f"Object.{i:03d}", x, y, top_z, extent, photos))
    for i in range(int(rng.integers(0, 3)) if ty + td < depth else 0):  # furniture on the floor behind the table
        extent = _u(rng, 0.3, 1.0)
        solids.append(_resting(rng, f"Floor.{i:03d}", _u(rng, -0.45, 0.45) * width, _u(rng, ty + td, depth),
                               0.0, extent, photos))
    lamps, world, strength = _lights(rng, True, (width, depth, height))
    cam_z = top_z + _u(rng, 0.1, 0.8)
    # Look down at the table centre, give or take.
    drop = math.degrees(math.atan2(cam_z - top_z, ty))
    pose = _pose(cam_z, -drop + _u(rng, -12.0, 8.0), _u(rng, -12.0, 12.0), _u(rng, -0.2, 0.2) * tw, 0.0)
    return MonoScene("tabletop", tuple(solids), lamps, world, strength, lens, pose, _u(rng, -0.08, 0.08),
                     {"table_top_z": top_z})


def ground_scene(rng: np.random.Generator, photos: tuple[str, ...], lens: Lens) -> MonoScene:
    far = _u(rng, 120.0, 300.0)  # the horizon: a backdrop where the ground ends
    ground_size = 2.5 * far
    solids = [Solid("Ground", "cube", (0.0, 0.0, -0.05), (ground_size, ground_size, 0.1), (0.0, 0.0, 0.0),
                    random_surface(rng, photos, ground_size)),
              Solid("Horizon", "cube", (0.0, far, far * 0.4), (far * 6.0, 1.0, far * 0.9), (0.0, 0.0, 0.0),
                    random_surface(rng, photos, far))]
    for i in range(int(rng.integers(2, 10))):
        distance = float(1.0 / rng.uniform(1.0 / 60.0, 1.0 / 2.0))
        # Objects cover a like share of the frame whatever the lens: up to about a third of its width.
        extent = min(_u(rng, 0.3, 4.0), 0.7 * distance * lens.sensor_width_mm / lens.focal_length_mm)
        angle = math.radians(_u(rng, -35.0, 35.0))
        solids.append(_resting(rng, f"Object.{i:03d}", distance * math.sin(angle), distance * math.cos(angle), 0.0,
                               extent, photos))
    if rng.uniform() < 0.5:  # a building-sized wall somewhere in the middle distance
        d = _u(rng, 8.0, 60.0)
        w, h = _u(rng, 5.0, 40.0), _u(rng, 3.0, 20.0)
        solids.append(Solid("Building", "cube", (_u(rng, -0.6, 0.6) * d, d, h / 2), (w, _u(rng, 2.0, 10.0), h),
                            (0.0, 0.0, _u(rng, -0.8, 0.8)), random_surface(rng, photos, w)))
    lamps, world, strength = _lights(rng, False)
    height = math.exp(rng.uniform(math.log(0.4), math.log(12.0)))
    pose = _pose(height, _u(rng, -25.0, 6.0), _u(rng, -20.0, 20.0))
    return MonoScene("ground", tuple(solids), lamps, world, strength, lens, pose, _u(rng, -0.1, 0.1),
                     {"horizon_m": far})


def walls_scene(rng: np.random.Generator, photos: tuple[str, ...], lens: Lens) -> MonoScene:
    back = float(1.0 / rng.uniform(1.0 / 40.0, 1.0 / 3.0))
    t = lens.sensor_width_mm / (2.0 * lens.focal_length_mm)
    span = 8.0 * back * t + 4.0
    tilt = _u(rng, -0.7, 0.7)
    solids = [Solid("WallBack", "cube", (0.0, back, 0.0), (span, 0.05, span), (_u(rng, -0.4, 0.4), 0.0, tilt),
                    random_surface(rng, photos, span / 3.0))]
    if rng.uniform() < 0.5:  # a floor under the panels
        z = -_u(rng, 0.3, 2.0)
        solids.append(Solid("Floor", "cube", (0.0, back / 2, z - 0.05), (span * 2, back * 2.2, 0.1), (0.0, 0.0, 0.0),
                            random_surface(rng, photos, back)))
    for i in range(int(rng.integers(2, 7))):
        d = float(1.0 / rng.uniform(1.0 / (0.9 * back), 1.0 / 0.4))
        w = _u(rng, 0.08, 0.45) * 2.0 * t * d
        h = w * _u(rng, 0.4, 2.5)
        u, v = rng.uniform(-0.9, 0.9, 2)
        solids.append(Solid(f"Panel.{i:03d}", "cube", (float(u * t * d), d, float(v * t * d)), (w, 0.02 * d + 0.01, h),
                            (_u(rng, -0.5, 0.5), _u(rng, -0.3, 0.3), _u(rng, -1.0, 1.0)),
                            random_surface(rng, photos, w), foreground=True))
    lamps, world, strength = _lights(rng, bool(rng.uniform() < 0.4), (span / 4, back, back / 2))
    pose = _pose(0.0, _u(rng, -8.0, 8.0), _u(rng, -8.0, 8.0))
    return MonoScene("walls", tuple(solids), lamps, world, strength, lens, pose, _u(rng, -0.1, 0.1))


BUILDERS = {"room": room_scene, "tabletop": tabletop_scene, "ground": ground_scene, "walls": walls_scene}


def mono_scene(rng: np.random.Generator, split: str) -> MonoScene:
    """One random layout of the split's mix, with the split's photographs and a random camera."""
    layout = LAYOUTS[int(rng.choice(len(LAYOUTS), p=LAYOUT_WEIGHTS[split]))]
    photos = TEST_PHOTOS if split == "test" else TRAIN_PHOTOS
    lens = random_lens(rng)
    return BUILDERS[layout](rng, photos, lens)


# ----------------------------------------------------------------------------------------- render
def _photo_image(name: str) -> bpy.types.Image:
    """The Blender image of photograph ``name`` (made once per Blender session's data)."""
    key = f"photo_{name}"
    if key in bpy.data.images:
        return bpy.data.images[key]
    pixels = photo_array(name)
    h, w = pixels.shape[:2]
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = pixels if pixels.shape[-1] == 3 else pixels[..., :1]
    image = bpy.data.images.new(key, w, h, alpha=False)
    image.colorspace_settings.name = "sRGB"  # the stored values are sRGB-encoded: Cycles linearises them
    image.pixels.foreach_set(rgba[::-1].ravel())  # Blender's rows run bottom-up
    image.pack()
    return image


def _photo_material(surface: Surface, name: str) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = surface.roughness
    coords = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (surface.repeat, surface.repeat, 1.0)
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = _photo_image(surface.photo)  # type: ignore[arg-type]
    tex.extension = "MIRROR"  # no seams where tiles meet
    tint = nodes.new("ShaderNodeMix")
    tint.data_type, tint.blend_type = "RGBA", "MULTIPLY"
    tint.inputs["Factor"].default_value = 1.0
    tint.inputs["B"].default_value = (*surface.tint, 1.0)
    links.new(coords.outputs["UV"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], tint.inputs["A"])
    links.new(tint.outputs["Result"], bsdf.inputs["Base Color"])
    return mat


def build(spec: MonoScene, width: int, height: int, samples: int, denoise: bool, bounces: int, threads: int,
          seed: int) -> bpy.types.Scene:
    """Reset Blender and build ``spec``: solids with their surfaces and object indices, lamps, camera."""
    settings = bs.RenderSettings(width=width, height=height, samples=samples, adaptive_threshold=0.0,
                                 denoise=denoise, max_bounces=bounces, threads=threads, seed=seed % 2**31)
    scene = bs.build(bs.SceneSpec(objects=spec.lamps, world=spec.world, world_strength=spec.world_strength,
                                  pose=spec.pose), settings, spec.lens)
    camera = scene.camera
    camera.rotation_euler.rotate_axis("Z", spec.roll)  # roll about the viewing axis (local z)
    scene.cycles.use_light_tree = False
    if denoise:
        c = scene.cycles
        c.denoiser, c.denoising_input_passes = "OPENIMAGEDENOISE", "RGB"
        c.denoising_prefilter, c.denoising_quality = "NONE", "FAST"
    scene.view_layers[0].use_pass_object_index = True
    for solid in spec.solids:
        pattern = solid.surface.pattern or bs.Texture("flat")
        obj = bs.add_primitive(scene, bs.Primitive(solid.kind, solid.location, solid.size, solid.rotation,  # type: ignore[arg-type]
                                                   bs.Material(pattern, solid.surface.roughness), smooth=True),
                               solid.name)
        if solid.surface.photo is not None:
            obj.data.materials[0] = _photo_material(solid.surface, f"{solid.name}.photo")
        obj.pass_index = FOREGROUND_INDEX if solid.foreground else 0
    _add_sky(scene, spec)
    return scene


def _add_sky(scene: bpy.types.Scene, spec: MonoScene) -> None:
    """A box of half-size :data:`SKY_M` around the camera that only camera rays see, glowing with the
    world's colour: every pixel gets a finite depth (a grazing wall or an upward camera would
    otherwise look past the geometry), while the lighting stays the world's and the sun's."""
    x, y, z = spec.pose.location
    emission = bs.Material(bs.Texture("flat", (0.0, 0.0, 0.0)), roughness=1.0, emission=spec.world_strength,
                           emission_colour=spec.world)
    sky = bs.add_primitive(scene, bs.Primitive("cube", (x, y, z), (2 * SKY_M,) * 3, material=emission, smooth=False),
                           "Sky")
    sky.visible_diffuse = sky.visible_glossy = sky.visible_transmission = False
    sky.visible_shadow = sky.visible_volume_scatter = False
    sky.pass_index = 0


def render_mono_scene(spec: MonoScene, width: int, height: int, samples: int, denoise: bool, bounces: int,
                      threads: int, seed: int, scratch: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``spec``: colour (H, W, 3) scene-linear, planar depth (H, W) metres, mask (H, W) in {0, 1}."""
    scene = build(spec, width, height, samples, denoise, bounces, threads, seed)
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / "mono.exr"
    frame = bs.render(scene, path)
    channels = read_exr_channels(path)
    index = next(v for k, v in channels.items() if k.endswith("Object Index.X") or k.endswith("IndexOB.X"))
    mask = (np.rint(index) == FOREGROUND_INDEX).astype(np.float32)
    return frame.image, frame.depth, mask


def render_mono(rng: np.random.Generator, split: str, seed: int, options: Any, out: Path) -> dict:
    """Render one ``mono`` sample into ``out`` (dataset_samples' renderer signature); its record."""
    from .dataset_samples import SCRATCH, _checked_depth, write_colour, write_plane

    spec = mono_scene(rng, split)
    q = options.quality
    image, depth, mask = render_mono_scene(spec, options.width, options.height, q.samples, q.denoise,
                                           q.max_bounces, q.threads, seed, out / SCRATCH)
    depth = _checked_depth(depth, f"{spec.layout} render")
    write_colour(out / "image.exr", image)
    write_plane(out / "depth.exr", depth)
    write_plane(out / "mask.exr", mask, "Y")
    lens = spec.lens
    return {"camera": {"focal_length_mm": lens.focal_length_mm, "sensor_width_mm": lens.sensor_width_mm,
                       "sensor_height_mm": lens.sensor_height_mm, "sensor_fit": lens.sensor_fit,
                       "width": options.width, "height": options.height,
                       "focal_length_px": lens.focal_length_pixels(options.width, options.height),
                       "location": list(spec.pose.location), "look_at": list(spec.pose.look_at), "roll": spec.roll,
                       "samples": q.samples, "denoise": q.denoise},
            "layout": spec.layout, "scene": spec.describe(), "mask": {"file": "mask.exr", "foreground": float(mask.mean())},
            "depth_range": [float(depth.min()), float(depth.max())]}
