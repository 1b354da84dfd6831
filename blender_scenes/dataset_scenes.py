"""Random scenes for the datasets, as plain data drawn from a seeded generator.

Each ``*_scene(rng, ...)`` function draws one scene: what it holds (objects, lamps, world), the
lens it is seen through, and for each object the layer it belongs to and how it moves. The same
generator state gives the same scene; nothing here renders (see :mod:`dataset_render`).

The camera sits at the origin looking along +y (scene.py's convention), so an object's planar
depth is its y coordinate. Objects are scattered through the camera's frustum with depths drawn
uniformly in inverse depth (defocus is linear in 1/depth, so every CoC is equally likely) and sizes
proportional to depth (every object covers a like share of the frame wherever it stands). A
textured backdrop, tilted at random, fills the whole frame, so every pixel has a finite depth.

Splits of ``defocusnet`` follow DefocusNet's held-out tests (seed 002): ``test-shape`` uses shapes
training never sees, ``test-appearance`` textures, glossiness and lighting training never sees,
``test-wide-dof`` and ``test-medium-dof`` a larger f-number than training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Union

import numpy as np

from core.optics import Lens

from . import scene as bs
from .dataset_meshes import Shape

Item = Union[bs.Plane, bs.Primitive, Shape]

# DefocusNet / FoD500 (seed 002): a 2.9 mm lens at f/1, five slices focused at these distances.
FOD_FOCUS_DISTANCES = (0.1, 0.15, 0.3, 0.7, 1.5)
FOD_LENS = Lens(focal_length_mm=2.9, f_stop=1.0, focus_distance=0.3, sensor_width_mm=3.1)
# Wide and medium depth of field for the held-out tests: "significantly" and "slightly" bigger f-numbers.
SPLIT_F_STOPS = {"test-wide-dof": 4.0, "test-medium-dof": 2.0}

TRAIN_PRIMITIVES = ("cube", "sphere", "cylinder", "cone", "torus")
TRAIN_SHAPES = ("blob", "prism")
HELD_OUT_SHAPES = ("monkey", "star", "crystal")
TRAIN_TEXTURES = ("checker", "noise", "voronoi")
HELD_OUT_TEXTURES = ("brick",)


@dataclass(frozen=True)
class Placed:
    """One object of a dataset scene.

    Attributes:
        name: its Blender name.
        item: what it is (scene.py plane or primitive, or a procedural :class:`Shape`).
        layer: DeepLens layer (0 background, 1 middle, 2 foreground); 0 elsewhere.
        velocity: metres per frame along world x, y, z (sweep videos); zero elsewhere.
    """

    name: str
    item: Item
    layer: int = 0
    velocity: bs.Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class DatasetScene:
    """A scene to render: objects, lamps, world (``None``: black) and the lens (its focus distance is
    a default); ``extra`` holds what a kind adds (stereo baseline, sweep backdrop distance)."""

    objects: tuple[Placed, ...]
    lamps: tuple[Union[bs.Sun, bs.PointLight], ...]
    world: bs.RGB | None
    world_strength: float
    lens: Lens
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> list[dict[str, Any]]:
        """What the scene holds, for the sample's JSON record."""
        out = []
        for placed in self.objects:
            entry = {"name": placed.name, "type": type(placed.item).__name__, **asdict(placed.item)}
            if placed.layer:
                entry["layer"] = placed.layer
            if any(placed.velocity):
                entry["velocity"] = placed.velocity
            out.append(entry)
        for lamp in self.lamps:
            out.append({"type": type(lamp).__name__, **asdict(lamp)})
        return out


# ------------------------------------------------------------------------------------ appearance
def _colour(rng: np.random.Generator, low: float = 0.03, high: float = 0.85) -> bs.RGB:
    return tuple(float(c) for c in rng.uniform(low, high, 3))  # type: ignore[return-value]


def random_material(rng: np.random.Generator, size: float, textures: tuple[str, ...],
                    roughness: tuple[float, float]) -> bs.Material:
    """A textured material whose pattern has 2..12 features across an object of ``size`` metres."""
    kind = textures[int(rng.integers(len(textures)))]
    a = _colour(rng)
    # Half the patterns pair a colour with a dark shade of itself: strong contrast, which defocus needs.
    b = tuple(float(c) for c in np.array(a) * rng.uniform(0.05, 0.4)) if rng.uniform() < 0.5 else _colour(rng)
    texture = bs.Texture(kind, a, b, scale=float(rng.uniform(2.0, 12.0) / size),
                         seed=float(rng.uniform(0.0, 100.0)))
    return bs.Material(texture, roughness=float(rng.uniform(*roughness)))


@dataclass(frozen=True)
class Appearance:
    """What objects look like and how they are lit in one split."""

    primitives: tuple[str, ...] = TRAIN_PRIMITIVES
    shapes: tuple[str, ...] = TRAIN_SHAPES
    textures: tuple[str, ...] = TRAIN_TEXTURES
    roughness: tuple[float, float] = (0.35, 0.9)
    point_lights: bool = False  # sun and sky, or a few coloured lamps in a darker world


TRAIN_LOOK = Appearance()
APPEARANCES = {
    "test-shape": Appearance(primitives=(), shapes=HELD_OUT_SHAPES),
    "test-appearance": Appearance(textures=HELD_OUT_TEXTURES, roughness=(0.05, 0.3), point_lights=True),
}


def _lighting(rng: np.random.Generator, look: Appearance, scale: float) -> tuple[tuple, bs.RGB, float]:
    """Lamps, world colour and strength; ``scale`` is the scene's typical depth in metres."""
    if look.point_lights:
        lamps = tuple(
            bs.PointLight(location=(float(rng.uniform(-0.6, 0.6) * scale), float(rng.uniform(0.1, 0.8) * scale),
                                    float(rng.uniform(0.2, 0.8) * scale)),
                          power=float(rng.uniform(20.0, 60.0) * scale * scale), radius=0.05 * scale,
                          colour=_colour(rng, 0.4, 1.0))
            for _ in range(int(rng.integers(2, 4))))
        return lamps, _colour(rng, 0.02, 0.08), 1.0
    elevation, azimuth = rng.uniform(0.35, 1.2), rng.uniform(-math.pi, math.pi)
    sun = bs.Sun(rotation=(float(math.pi / 2 - elevation), 0.0, float(azimuth)),
                 strength=float(rng.uniform(2.0, 4.5)), colour=_colour(rng, 0.85, 1.0))
    return (sun,), _colour(rng, 0.15, 0.45), 1.0


# ------------------------------------------------------------------------------------ placement
def _half_fov_tan(lens: Lens) -> float:
    """tan of half the horizontal field of view (square frames, or the wider side)."""
    return lens.sensor_width_mm / (2.0 * lens.focal_length_mm)


def inverse_uniform(rng: np.random.Generator, near: float, far: float, size: Any = None) -> Any:
    """Depths in [near, far] drawn uniformly in 1/depth."""
    return 1.0 / rng.uniform(1.0 / far, 1.0 / near, size)


def backdrop(rng: np.random.Generator, distance: float, lens: Lens, look: Appearance,
             tilt: float = 0.5, name: str = "Backdrop", layer: int = 0) -> Placed:
    """A textured slab at planar ``distance`` on the optical axis, tilted up to ``tilt`` radians
    about a random axis in the frame, large enough to fill the frame at every tilt and shake."""
    t = _half_fov_tan(lens)
    width = 6.0 * distance * t / math.cos(tilt)
    axis = rng.uniform(0.0, 2.0 * math.pi)
    angle = rng.uniform(0.0, tilt)
    # A slab thin along its local z (scene.py draws bricks in the local x-y plane), stood up to face
    # the camera (+90 degrees about x), then tilted about x (up-down) and z (left-right).
    rotation = (float(math.pi / 2 + angle * math.cos(axis)), 0.0, float(angle * math.sin(axis)))
    # Voronoi (4D in scene.py) shades four times slower than the other patterns; on the backdrop,
    # which fills most of the frame, it would triple a sample's render time.
    textures = tuple(k for k in look.textures if k != "voronoi") or look.textures
    material = random_material(rng, width / 4.0, textures, look.roughness)
    slab = bs.Primitive("cube", (0.0, float(distance), 0.0), (width, width, 0.01 * distance), rotation, material,
                        smooth=False)
    return Placed(name, slab, layer)


def scatter(rng: np.random.Generator, count: int, near: float, far: float, lens: Lens, look: Appearance,
            coverage: tuple[float, float] = (0.08, 0.35), prefix: str = "Object", spread: float = 0.9) -> list[Placed]:
    """``count`` random objects in the frustum between ``near`` and ``far`` metres, their centres
    within ``spread`` of the half-frame from the centre, each ``coverage`` of the frame width wide."""
    t = _half_fov_tan(lens)
    kinds = [("primitive", k) for k in look.primitives] + [("shape", k) for k in look.shapes]
    out = []
    for i in range(count):
        depth = float(inverse_uniform(rng, near, far))
        extent = float(rng.uniform(*coverage)) * 2.0 * t * depth
        size = tuple(float(s) for s in extent * rng.uniform(0.6, 1.0, 3))
        u, v = rng.uniform(-spread, spread, 2)
        location = (float(u * t * depth), depth, float(v * t * depth))
        rotation = tuple(float(r) for r in rng.uniform(0.0, 2.0 * math.pi, 3))
        material = random_material(rng, extent, look.textures, look.roughness)
        family, kind = kinds[int(rng.integers(len(kinds)))]
        name = f"{prefix}.{i:03d}"
        if family == "primitive":
            item: Item = bs.Primitive(kind, location, size, rotation, material)  # type: ignore[arg-type]
        else:
            item = Shape(kind, location, size, rotation, material, seed=int(rng.integers(2**31)))  # type: ignore[arg-type]
        out.append(Placed(name, item))
    return out


# ----------------------------------------------------------------------------------------- kinds
def defocusnet_scene(rng: np.random.Generator, split: str = "train", f_stop: float | None = None) -> DatasetScene:
    """A DefocusNet / FoD500-style scene: many objects between 0.1 m and the backdrop (1.2-3 m),
    seen through the 2.9 mm lens at f/1 (or the split's f-number, or ``f_stop``)."""
    look = APPEARANCES.get(split, TRAIN_LOOK)
    stop = f_stop if f_stop is not None else SPLIT_F_STOPS.get(split, FOD_LENS.f_stop)
    lens = Lens(FOD_LENS.focal_length_mm, stop, FOD_LENS.focus_distance, FOD_LENS.sensor_width_mm)
    back = float(rng.uniform(1.2, 3.0))
    objects = [backdrop(rng, back, lens, look)]
    objects += scatter(rng, int(rng.integers(8, 20)), 0.1, 0.9 * back, lens, look)
    lamps, world, strength = _lighting(rng, look, 1.0)
    return DatasetScene(tuple(objects), lamps, world, strength, lens)


def stereo_scene(rng: np.random.Generator, split: str = "train") -> DatasetScene:
    """A street-scale scene (1 m to a 15-30 m backdrop) for a 35 mm lens on a 36 mm sensor, with a
    random baseline of 0.1-0.3 m in ``extra['baseline_m']``."""
    lens = Lens(focal_length_mm=35.0, f_stop=8.0, focus_distance=10.0, sensor_width_mm=36.0)
    back = float(rng.uniform(15.0, 30.0))
    objects = [backdrop(rng, back, lens, TRAIN_LOOK)]
    objects += scatter(rng, int(rng.integers(10, 24)), 1.0, 0.9 * back, lens, TRAIN_LOOK, coverage=(0.05, 0.3))
    lamps, world, strength = _lighting(rng, TRAIN_LOOK, 10.0)
    return DatasetScene(tuple(objects), lamps, world, strength, lens,
                        extra={"baseline_m": float(rng.uniform(0.1, 0.3))})


def deeplens_scene(rng: np.random.Generator, split: str = "train") -> DatasetScene:
    """DeepLens' three planes (seed 003): a background slab, tilted so its depth ramps across the
    frame or stands constant, and one object each in a middle and a foreground layer, seen through
    a 50 mm full-frame lens. Objects cast no shadows on other layers, so the layers composite
    back to front into the all-in-focus image."""
    lens = Lens(focal_length_mm=50.0, f_stop=2.0, focus_distance=3.0, sensor_width_mm=36.0)
    back = float(rng.uniform(5.0, 12.0))
    tilt = 0.0 if rng.uniform() < 0.3 else 0.7
    objects = [backdrop(rng, back, lens, TRAIN_LOOK, tilt=tilt, name="Layer0.Background", layer=0)]
    middle = float(rng.uniform(2.5, 0.8 * back))
    front = float(rng.uniform(1.0, 0.7 * middle))
    for layer, (depth, name) in enumerate(((middle, "Layer1.Middle"), (front, "Layer2.Front")), start=1):
        [placed] = scatter(rng, 1, depth, depth, lens, TRAIN_LOOK, coverage=(0.25, 0.5), prefix=name, spread=0.45)
        objects.append(Placed(name, placed.item, layer))
    lamps, world, strength = _lighting(rng, TRAIN_LOOK, 5.0)
    return DatasetScene(tuple(objects), lamps, world, strength, lens)


def sweep_scene(rng: np.random.Generator, split: str = "train", frames: int = 16) -> DatasetScene:
    """A focus-sweep video scene (seed 001): objects 1-8 m away drifting slowly (under 1% of their
    depth per frame) in front of a backdrop, seen through a 50 mm lens at f/1.4-2.8."""
    lens = Lens(focal_length_mm=50.0, f_stop=float(rng.choice([1.4, 2.0, 2.8])), focus_distance=3.0,
                sensor_width_mm=36.0)
    back = float(rng.uniform(8.0, 12.0))
    objects = [backdrop(rng, back, lens, TRAIN_LOOK, tilt=0.3)]
    for placed in scatter(rng, int(rng.integers(6, 14)), 1.0, 0.8 * back, lens, TRAIN_LOOK):
        depth = placed.item.location[1]
        velocity = tuple(float(v) for v in rng.uniform(-1.0, 1.0, 3) * 0.006 * depth)
        objects.append(Placed(placed.name, placed.item, 0, velocity))  # type: ignore[arg-type]
    lamps, world, strength = _lighting(rng, TRAIN_LOOK, 5.0)
    return DatasetScene(tuple(objects), lamps, world, strength, lens, extra={"frames": frames, "backdrop_m": back})


# ---------------------------------------------------------------------------- other cameras
@dataclass(frozen=True)
class CameraSetup:
    """A ``defocusnet`` camera other than FoD500's (issue 21): the lens, the range its focus
    distances span, and where the scene's objects and backdrop stand.

    Attributes:
        lens: focal length, f-number and sensor (its focus distance is a default).
        focus_near_m, focus_far_m: nearest and farthest focus distance of the stack, metres.
        objects_m: nearest object depth, and the farthest as a fraction of the backdrop's.
        backdrop_m: the backdrop's distance range, metres.
    """

    lens: Lens
    focus_near_m: float
    focus_far_m: float
    objects_m: tuple[float, float]
    backdrop_m: tuple[float, float]

    def describe(self) -> dict[str, Any]:
        return {"focal_length_mm": self.lens.focal_length_mm, "f_stop": self.lens.f_stop,
                "sensor_width_mm": self.lens.sensor_width_mm, "focus_range_m": [self.focus_near_m, self.focus_far_m],
                "objects_m": list(self.objects_m), "backdrop_m": list(self.backdrop_m)}


# The "unseen cameras" of issue 21: a full-frame 50 mm at f/2 focused over 0.8-10 m (scenes about
# 1.4-9 m deep) and a phone-like 4.3 mm at f/1.8 on a 5.6 mm sensor focused over 0.1-2 m.
CAMERAS = {
    "unseen-50mm": CameraSetup(Lens(50.0, 2.0, 3.0, 36.0), 0.8, 10.0, (1.4, 0.9), (5.0, 9.0)),
    "unseen-phone": CameraSetup(Lens(4.3, 1.8, 0.5, 5.6), 0.1, 2.0, (0.12, 0.9), (0.8, 1.9)),
}
CAMERA_CHOICES = ("fod", "random", *CAMERAS)


def random_camera(rng: np.random.Generator) -> CameraSetup:
    """A camera drawn at random (issue 21's training cameras): sensor 5.6-36 mm wide (phone to full
    frame), focal length 4-85 mm within a 35 mm-equivalent 20-135 mm, f/1.4-f/8, and a focus range
    from 0.1-1.5 m up to 1-20 m (both ends log-uniform along one draw, jittered)."""
    sensor = float(math.exp(rng.uniform(math.log(5.6), math.log(36.0))))
    lo, hi = max(4.0, 20.0 * sensor / 36.0), min(85.0, 135.0 * sensor / 36.0)
    focal = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    stop = float(math.exp(rng.uniform(math.log(1.4), math.log(8.0))))
    t = float(rng.uniform())
    near = max(0.1 * 10.0 ** t * float(rng.uniform(0.9, 1.1)), 2.5 * focal * 1e-3)
    far = max(1.5 * (20.0 / 1.5) ** t * float(rng.uniform(0.9, 1.1)), 4.0 * near)
    return CameraSetup(Lens(focal, stop, near, sensor), near, far, (1.2 * near, 0.9), (0.5 * far, 1.2 * far))


def blur_span_px(setup: CameraSetup, width: int, height: int) -> float:
    """Pixels of blur that separate the stack's nearest and farthest focus: A f_px (1/near - 1/far)."""
    return setup.lens.coc_scale(width, height) * (1.0 / setup.focus_near_m - 1.0 / setup.focus_far_m)


def random_camera_for(rng: np.random.Generator, width: int, height: int, min_span_px: float = 3.0,
                      tries: int = 50) -> CameraSetup:
    """:func:`random_camera`, redrawn until it blurs its focus range apart by ``min_span_px`` at this
    image size: a stack whose slices all look alike teaches nothing (and core refuses it)."""
    for _ in range(tries):
        setup = random_camera(rng)
        if blur_span_px(setup, width, height) >= min_span_px:
            return setup
    return setup


def camera_scene(rng: np.random.Generator, split: str, setup: CameraSetup) -> DatasetScene:
    """A ``defocusnet`` scene for ``setup``: a backdrop in its range and 8-20 objects between its
    nearest object depth and 0.9 of the backdrop's, in the split's look."""
    look = APPEARANCES.get(split, TRAIN_LOOK)
    back = float(rng.uniform(*setup.backdrop_m))
    objects = [backdrop(rng, back, setup.lens, look)]
    objects += scatter(rng, int(rng.integers(8, 20)), setup.objects_m[0], setup.objects_m[1] * back, setup.lens, look)
    lamps, world, strength = _lighting(rng, look, back / 2.0)
    return DatasetScene(tuple(objects), lamps, world, strength, setup.lens, extra={"camera": setup.describe()})
