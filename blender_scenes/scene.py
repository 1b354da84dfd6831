"""Scenes for Cycles as plain data, and the few bpy calls that build and render them.

A recipe reads top to bottom, as in BlenderProc::

    from blender_scenes import scene as bs
    spec = bs.SceneSpec(objects=(bs.Plane(distance=4.0, size=(6, 4), material=bs.Material(bs.Texture("brick"))),),
                        world=(0.8, 0.85, 0.9))
    scn = bs.build(spec, bs.RenderSettings(width=256, height=192, samples=64), Lens(50, 2.0, 4.0))
    aif = bs.render(scn, "out/aif.exr", dof=False)      # all-in-focus colour + Z pass
    dof = bs.render(scn, "out/dof.exr", dof=True)       # Cycles' own depth of field

Conventions:

* World axes: x right, y forward, z up. The default camera sits at the origin looking along +y,
  so a point's planar depth (Blender's Z pass) is its y coordinate; other poses use ``look_at``.
* Sizes and distances in metres; focal length and sensor in millimetres (``core.optics.Lens``).
* Colours are scene-linear RGB; textures are procedural and sized in metres (features per metre),
  so a brick wall reads as bricks at any distance.
* Everything is seeded: the same spec and settings render the same pixels.

Nothing here knows what a scene is for: the agreement bench, the demo and the dataset generator
pass their own :class:`SceneSpec`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence, Union

import bpy
import numpy as np
from mathutils import Vector

from core.imageio import atomic_write, read_image, read_map
from core.optics import Lens

RGB = tuple[float, float, float]
Vec3 = tuple[float, float, float]
TextureKind = Literal["flat", "checker", "noise", "voronoi", "brick"]
PrimitiveKind = Literal["cube", "sphere", "ico_sphere", "cylinder", "cone", "torus"]


# ------------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class Texture:
    """A procedural pattern between two colours.

    Attributes:
        kind: ``flat`` (colour ``a`` only), ``checker``, ``noise``, ``voronoi`` (cells tinted by
            random colours) or ``brick``. All but brick are solid (3-D/4-D) patterns; brick is
            drawn in the object's local x-y plane, so it suits planes and the ground and streaks
            along the sides of primitives.
        a, b: scene-linear colours the pattern mixes.
        scale: features per metre (checker squares, bricks, noise blobs).
        seed: varies the noise and voronoi patterns (W coordinate of the 4D texture).
    """

    kind: TextureKind = "checker"
    a: RGB = (0.8, 0.8, 0.8)
    b: RGB = (0.1, 0.1, 0.1)
    scale: float = 4.0
    seed: float = 0.0


@dataclass(frozen=True)
class Material:
    """Principled BSDF with a procedural base colour and optional emission.

    Attributes:
        texture: the base colour pattern.
        roughness: 0 mirror .. 1 matte.
        emission: emission strength (W/m^2-ish, Blender's units); 0 for none. The emitted colour
            is ``emission_colour``, so an HDR highlight is a small emissive object.
    """

    texture: Texture = Texture()
    roughness: float = 0.6
    emission: float = 0.0
    emission_colour: RGB = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Plane:
    """A rectangle facing the camera at planar distance ``distance`` (metres).

    ``offset`` shifts it in the camera's right/up directions (metres); ``size`` is (width, height).
    Its Z pass reads exactly ``distance`` everywhere, which makes it the test object of choice.
    """

    distance: float
    size: tuple[float, float] = (4.0, 3.0)
    offset: tuple[float, float] = (0.0, 0.0)
    material: Material = Material()


@dataclass(frozen=True)
class Primitive:
    """A mesh primitive at a world position.

    Attributes:
        kind: cube, sphere (UV), ico_sphere, cylinder, cone or torus.
        location: world position of its centre, metres.
        size: its extent along each local axis, metres (a sphere of diameter 1: ``(1, 1, 1)``).
        rotation: Euler XYZ, radians.
        smooth: smooth shading (spheres, cylinders).
    """

    kind: PrimitiveKind
    location: Vec3
    size: Vec3 = (1.0, 1.0, 1.0)
    rotation: Vec3 = (0.0, 0.0, 0.0)
    material: Material = Material()
    smooth: bool = True


@dataclass(frozen=True)
class Ground:
    """A horizontal textured plane at height ``z`` (metres), ``size`` metres square, centred at ``centre``."""

    z: float = 0.0
    size: float = 60.0
    centre: tuple[float, float] = (0.0, 20.0)
    material: Material = Material()


@dataclass(frozen=True)
class Sun:
    """A sun lamp: ``rotation`` Euler XYZ radians (default shines straight down), ``strength`` W/m^2."""

    rotation: Vec3 = (0.6, 0.0, 0.4)
    strength: float = 3.0
    colour: RGB = (1.0, 1.0, 1.0)
    angle: float = 0.05  # angular diameter, radians: soft shadow edges


@dataclass(frozen=True)
class PointLight:
    """A point lamp of ``power`` watts and ``radius`` metres at ``location``."""

    location: Vec3
    power: float = 100.0
    radius: float = 0.1
    colour: RGB = (1.0, 1.0, 1.0)


SceneObject = Union[Plane, Primitive, Ground, Sun, PointLight]


@dataclass(frozen=True)
class CameraPose:
    """Where the camera is and where it looks: ``location`` and ``look_at`` in world metres."""

    location: Vec3 = (0.0, 0.0, 0.0)
    look_at: Vec3 = (0.0, 1.0, 0.0)


@dataclass(frozen=True)
class SceneSpec:
    """Everything that is rendered, as data.

    Attributes:
        objects: planes, primitives, ground, lamps.
        world: background colour (scene-linear), or ``None`` for a black world that emits nothing.
        world_strength: background emission strength.
        pose: camera placement.
    """

    objects: tuple[SceneObject, ...] = ()
    world: RGB | None = (0.05, 0.05, 0.05)
    world_strength: float = 1.0
    pose: CameraPose = CameraPose()


@dataclass(frozen=True)
class RenderSettings:
    """Cycles CPU settings, tuned for speed by default.

    Attributes:
        width, height: pixels.
        samples: maximum samples per pixel.
        adaptive_threshold: noise level at which adaptive sampling stops a pixel; 0 disables
            adaptive sampling (every pixel gets ``samples``).
        denoise: run OpenImageDenoise on the result.
        max_bounces: total light-path bounces (diffuse/glossy capped by it); 0 for direct light.
        threads: render threads, 0 for all cores.
        seed: sampling seed.
        pixel_filter: ``BLACKMAN_HARRIS``, ``GAUSSIAN`` or ``BOX``; ``filter_width`` in pixels.
            Compare renders only when both used the same filter.
    """

    width: int = 256
    height: int = 192
    samples: int = 64
    adaptive_threshold: float = 0.02
    denoise: bool = False
    max_bounces: int = 4
    threads: int = 0
    seed: int = 0
    pixel_filter: str = "BLACKMAN_HARRIS"
    filter_width: float = 1.5
    clamp_indirect: float = 10.0


@dataclass(frozen=True)
class Frame:
    """A render read back: ``image`` (H, W, 3) scene-linear RGB, ``depth`` (H, W) planar metres."""

    image: np.ndarray
    depth: np.ndarray


# ---------------------------------------------------------------------------------------- scene
def reset() -> bpy.types.Scene:
    """Empty factory state (no cube, lamp or camera) and its one scene."""
    with quiet():
        bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def configure_render(scene: bpy.types.Scene, settings: RenderSettings) -> None:
    """Cycles on the CPU with ``settings``; Z pass on; colour management that leaves EXR linear."""
    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x, r.resolution_y, r.resolution_percentage = settings.width, settings.height, 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.threads_mode = "FIXED" if settings.threads > 0 else "AUTO"
    if settings.threads > 0:
        r.threads = settings.threads
    r.film_transparent = False
    c = scene.cycles
    c.device = "CPU"
    c.samples = settings.samples
    c.use_adaptive_sampling = settings.adaptive_threshold > 0.0
    if settings.adaptive_threshold > 0.0:
        c.adaptive_threshold = settings.adaptive_threshold
    c.use_denoising = settings.denoise
    c.seed, c.use_animated_seed = settings.seed, False
    c.max_bounces = settings.max_bounces
    c.diffuse_bounces = c.glossy_bounces = min(settings.max_bounces, 4)
    c.transmission_bounces = c.volume_bounces = c.transparent_max_bounces = min(settings.max_bounces, 8)
    c.caustics_reflective = c.caustics_refractive = False
    c.sample_clamp_indirect = settings.clamp_indirect
    c.pixel_filter_type = settings.pixel_filter
    c.filter_width = settings.filter_width
    scene.view_layers[0].use_pass_z = True
    # Standard view, no look: only matters for 8-bit files; EXR stays scene-linear either way.
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"


def set_world(scene: bpy.types.Scene, colour: RGB | None, strength: float = 1.0) -> None:
    """Uniform background light of ``colour``; ``None`` removes the world (black, emits nothing)."""
    if colour is None:
        scene.world = None
        return
    world = bpy.data.worlds.new("World")
    scene.world = world
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (*colour, 1.0)
    background.inputs["Strength"].default_value = strength


# --------------------------------------------------------------------------------------- camera
def apply_lens(camera: bpy.types.Object, lens: Lens, dof: bool = True) -> None:
    """Set a Blender camera to ``lens``: focal length, sensor and fit, focus, f-stop and aperture shape."""
    lens.validate()
    data = camera.data
    data.type = "PERSP"
    data.lens = lens.focal_length_mm
    data.sensor_width = lens.sensor_width_mm
    if lens.sensor_height_mm is not None:
        data.sensor_height = lens.sensor_height_mm
    data.sensor_fit = lens.sensor_fit
    data.shift_x = data.shift_y = 0.0
    data.clip_start, data.clip_end = 0.01, 1000.0
    data.dof.use_dof = dof
    data.dof.focus_object = None
    data.dof.focus_distance = lens.focus_distance
    data.dof.aperture_fstop = lens.f_stop
    data.dof.aperture_blades = lens.blades
    data.dof.aperture_rotation = lens.rotation
    data.dof.aperture_ratio = lens.ratio


def lens_of(camera: bpy.types.Object) -> Lens:
    """The :class:`core.optics.Lens` a Blender camera describes (inverse of :func:`apply_lens`)."""
    data = camera.data
    return Lens(
        focal_length_mm=data.lens, f_stop=data.dof.aperture_fstop, focus_distance=data.dof.focus_distance,
        sensor_width_mm=data.sensor_width, sensor_height_mm=data.sensor_height, sensor_fit=data.sensor_fit,
        blades=data.dof.aperture_blades, rotation=data.dof.aperture_rotation, ratio=data.dof.aperture_ratio,
    )


def add_camera(scene: bpy.types.Scene, lens: Lens, pose: CameraPose = CameraPose(), dof: bool = True) -> bpy.types.Object:
    """A camera at ``pose`` with ``lens``, made the scene's active camera."""
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = pose.location
    forward = Vector(pose.look_at) - Vector(pose.location)
    camera.rotation_euler = forward.to_track_quat("-Z", "Y").to_euler()
    apply_lens(camera, lens, dof)
    scene.camera = camera
    return camera


def set_dof(scene: bpy.types.Scene, on: bool, focus_distance: float | None = None) -> None:
    """Switch the active camera's depth of field, optionally moving its focus (metres)."""
    data = scene.camera.data
    data.dof.use_dof = on
    if focus_distance is not None:
        data.dof.focus_distance = focus_distance


# ------------------------------------------------------------------------------------ materials
def make_material(spec: Material, name: str = "Material") -> bpy.types.Material:
    """A Principled BSDF material whose base colour is ``spec.texture`` in object space (metres)."""
    mat = bpy.data.materials.new(name)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = spec.roughness
    if spec.emission > 0.0:
        bsdf.inputs["Emission Color"].default_value = (*spec.emission_colour, 1.0)
        bsdf.inputs["Emission Strength"].default_value = spec.emission
    colour = _texture_output(nodes, links, spec.texture)
    if colour is None:
        bsdf.inputs["Base Color"].default_value = (*spec.texture.a, 1.0)
    else:
        links.new(colour, bsdf.inputs["Base Color"])
    return mat


def _texture_output(nodes: bpy.types.Nodes, links: bpy.types.NodeLinks, tex: Texture) -> bpy.types.NodeSocket | None:
    """Build ``tex`` and return its colour socket; ``None`` for a flat colour."""
    if tex.kind == "flat":
        return None
    coords = nodes.new("ShaderNodeTexCoord").outputs["Object"]
    a, b = (*tex.a, 1.0), (*tex.b, 1.0)
    if tex.kind == "checker":
        node = nodes.new("ShaderNodeTexChecker")
        node.inputs["Color1"].default_value, node.inputs["Color2"].default_value = a, b
        node.inputs["Scale"].default_value = tex.scale
        links.new(coords, node.inputs["Vector"])
        return node.outputs["Color"]
    if tex.kind == "brick":
        node = nodes.new("ShaderNodeTexBrick")
        node.inputs["Color1"].default_value, node.inputs["Color2"].default_value = a, b
        node.inputs["Mortar"].default_value = (0.02, 0.02, 0.02, 1.0)
        node.inputs["Scale"].default_value = tex.scale / 2.0  # a brick is 0.5 texture units wide
        node.offset_frequency, node.squash_frequency = 2, 2
        links.new(coords, node.inputs["Vector"])
        return node.outputs["Color"]
    if tex.kind not in ("noise", "voronoi"):
        raise ValueError(f"unknown texture kind {tex.kind!r}")
    node = nodes.new("ShaderNodeTexNoise" if tex.kind == "noise" else "ShaderNodeTexVoronoi")
    if tex.kind == "noise":
        node.noise_dimensions = "4D"
    else:
        node.voronoi_dimensions = "4D"
    node.inputs["W"].default_value = tex.seed
    node.inputs["Scale"].default_value = tex.scale
    links.new(coords, node.inputs["Vector"])
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    if tex.kind == "noise":
        # Stretch the noise's mid-grey factor into the full a..b range for contrast.
        ramp = nodes.new("ShaderNodeMapRange")
        ramp.inputs["From Min"].default_value, ramp.inputs["From Max"].default_value = 0.3, 0.7
        links.new(node.outputs["Fac"], ramp.inputs["Value"])
        links.new(ramp.outputs["Result"], mix.inputs["Factor"])
        mix.inputs["A"].default_value, mix.inputs["B"].default_value = a, b
    else:
        # Random colour per cell, tinted towards the a..b gradient across the cells.
        links.new(node.outputs["Distance"], mix.inputs["Factor"])
        tint = nodes.new("ShaderNodeMix")
        tint.data_type, tint.blend_type = "RGBA", "MULTIPLY"
        tint.inputs["Factor"].default_value = 0.6
        links.new(node.outputs["Color"], tint.inputs["A"])
        tint.inputs["B"].default_value = a
        links.new(tint.outputs["Result"], mix.inputs["A"])
        mix.inputs["B"].default_value = b
    return mix.outputs["Result"]


# -------------------------------------------------------------------------------------- objects
_PRIMITIVE_OPS = {
    "cube": lambda: bpy.ops.mesh.primitive_cube_add(size=1.0),
    "sphere": lambda: bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, segments=48, ring_count=24),
    "ico_sphere": lambda: bpy.ops.mesh.primitive_ico_sphere_add(radius=0.5, subdivisions=3),
    "cylinder": lambda: bpy.ops.mesh.primitive_cylinder_add(radius=0.5, depth=1.0, vertices=48),
    "cone": lambda: bpy.ops.mesh.primitive_cone_add(radius1=0.5, depth=1.0, vertices=48),
    "torus": lambda: bpy.ops.mesh.primitive_torus_add(major_radius=0.35, minor_radius=0.15),
}


def _new_mesh_object(make: Callable[[], object], material: Material, name: str) -> bpy.types.Object:
    make()
    obj = bpy.context.active_object
    obj.name = name
    obj.data.materials.append(make_material(material, name))
    return obj


def add_plane(scene: bpy.types.Scene, plane: Plane, name: str = "Plane") -> bpy.types.Object:
    """A rectangle perpendicular to the camera's view axis at planar depth ``plane.distance``."""
    pose = scene.camera.matrix_basis  # from location and rotation; no depsgraph update needed
    rotation = pose.to_quaternion()
    centre = pose @ Vector((plane.offset[0], plane.offset[1], -plane.distance))
    obj = _new_mesh_object(lambda: bpy.ops.mesh.primitive_plane_add(size=1.0), plane.material, name)
    _apply_size(obj, (plane.size[0], plane.size[1], 1.0))
    obj.location = centre
    obj.rotation_euler = rotation.to_euler()  # the plane's normal (+z) then points at the camera
    return obj


def add_primitive(scene: bpy.types.Scene, prim: Primitive, name: str = "Primitive") -> bpy.types.Object:
    """A primitive of ``prim.size`` metres at ``prim.location``."""
    obj = _new_mesh_object(_PRIMITIVE_OPS[prim.kind], prim.material, name)
    _apply_size(obj, prim.size)
    obj.location = prim.location
    obj.rotation_euler = prim.rotation
    if prim.smooth and prim.kind != "cube":
        for poly in obj.data.polygons:
            poly.use_smooth = True
    return obj


def add_ground(scene: bpy.types.Scene, ground: Ground, name: str = "Ground") -> bpy.types.Object:
    obj = _new_mesh_object(lambda: bpy.ops.mesh.primitive_plane_add(size=1.0), ground.material, name)
    _apply_size(obj, (ground.size, ground.size, 1.0))
    obj.location = (ground.centre[0], ground.centre[1], ground.z)
    return obj


def _apply_size(obj: bpy.types.Object, size: Sequence[float]) -> None:
    """Scale the mesh itself, so that object-space textures stay in metres."""
    obj.data.transform(np.diag([*size, 1.0]).tolist())
    obj.data.update()


def _add_lamp(scene: bpy.types.Scene, name: str, kind: str, **settings: object) -> bpy.types.Object:
    data = bpy.data.lights.new(name, kind)
    for key, value in settings.items():
        setattr(data, key, value)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    return obj


def add_sun(scene: bpy.types.Scene, sun: Sun, name: str = "Sun") -> bpy.types.Object:
    obj = _add_lamp(scene, name, "SUN", energy=sun.strength, color=sun.colour, angle=sun.angle)
    obj.rotation_euler = sun.rotation
    return obj


def add_point_light(scene: bpy.types.Scene, light: PointLight, name: str = "Point") -> bpy.types.Object:
    obj = _add_lamp(scene, name, "POINT", energy=light.power, color=light.colour, shadow_soft_size=light.radius)
    obj.location = light.location
    return obj


def add(scene: bpy.types.Scene, item: SceneObject, name: str) -> bpy.types.Object:
    """Add one scene object of any kind."""
    if isinstance(item, Plane):
        return add_plane(scene, item, name)
    if isinstance(item, Primitive):
        return add_primitive(scene, item, name)
    if isinstance(item, Ground):
        return add_ground(scene, item, name)
    if isinstance(item, Sun):
        return add_sun(scene, item, name)
    if isinstance(item, PointLight):
        return add_point_light(scene, item, name)
    raise TypeError(f"not a scene object: {item!r}")


def build(spec: SceneSpec, settings: RenderSettings, lens: Lens) -> bpy.types.Scene:
    """Reset Blender and build ``spec`` seen through ``lens``, ready to :func:`render`."""
    scene = reset()
    configure_render(scene, settings)
    set_world(scene, spec.world, spec.world_strength)
    add_camera(scene, lens, spec.pose, dof=False)
    for index, item in enumerate(spec.objects):
        add(scene, item, f"{type(item).__name__}.{index:03d}")
    return scene


# --------------------------------------------------------------------------------------- render
def render(scene: bpy.types.Scene, path: str | os.PathLike[str], dof: bool | None = None) -> Frame:
    """Render with Cycles to a multilayer EXR at ``path`` (atomically) and read it back.

    Args:
        dof: switch the camera's depth of field first (``None``: leave it as it is).

    Returns:
        The frame: colour (H, W, 3) scene-linear and the Z pass (H, W), planar metres. With depth
        of field on, the Z pass is of the lens-sampled rays; take depth from an all-in-focus render.
    """
    if dof is not None:
        set_dof(scene, dof)
    r = scene.render
    r.use_compositing = False  # write the raw passes, not a composite
    r.image_settings.media_type = "MULTI_LAYER_IMAGE"
    r.image_settings.color_depth = "32"
    r.image_settings.exr_codec = "ZIP"
    target = Path(path)
    with atomic_write(target) as tmp:
        r.filepath = str(tmp.resolve())
        r.use_file_extension = False
        with quiet():
            bpy.ops.render.render(write_still=True, scene=scene.name)
    return read_frame(target)


def read_frame(path: str | os.PathLike[str]) -> Frame:
    """A frame written by :func:`render`: colour and Z pass through ``core.imageio``."""
    image = read_image(path)[..., :3]
    depth = read_map(path)
    return Frame(np.ascontiguousarray(image), depth)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Blender's per-tile progress lines, which C code prints straight to stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (some embedded uses): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
