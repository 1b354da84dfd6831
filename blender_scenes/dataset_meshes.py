"""Procedural meshes beyond Blender's primitives, for varied dataset shapes (bpy).

:mod:`blender_scenes.scene` makes cubes, spheres, cylinders, cones and tori. Focal-stack training
wants more silhouettes, and DefocusNet's "unseen shapes" test split needs shapes that training
never shows, so this module adds a few seeded families, each about one metre across before
scaling:

* ``blob``: a sphere with smooth random bumps; ``prism``: a random polygon extruded (training);
* ``monkey``: Blender's Suzanne; ``star``: a star polygon extruded; ``crystal``: the convex hull of
  random points (held out for the shape test split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import bmesh
import bpy
import numpy as np

from . import scene as bs

ShapeKind = Literal["blob", "prism", "monkey", "star", "crystal"]
SHAPE_KINDS: tuple[str, ...] = ("blob", "prism", "monkey", "star", "crystal")


@dataclass(frozen=True)
class Shape:
    """A procedural mesh at a world position.

    Attributes:
        kind: one of :data:`SHAPE_KINDS`.
        location: world position of its centre, metres.
        size: extent along each local axis, metres.
        rotation: Euler XYZ, radians.
        seed: picks this shape among its family (bumps, polygon, hull points).
    """

    kind: ShapeKind
    location: bs.Vec3
    size: bs.Vec3 = (1.0, 1.0, 1.0)
    rotation: bs.Vec3 = (0.0, 0.0, 0.0)
    material: bs.Material = bs.Material()
    seed: int = 0


def _unit_vertices_faces(kind: str, rng: np.random.Generator) -> bmesh.types.BMesh:
    """A bmesh of ``kind`` fitting the unit cube centred on the origin."""
    bm = bmesh.new()
    if kind == "blob":
        bmesh.ops.create_icosphere(bm, subdivisions=4, radius=0.5)
        directions = rng.normal(size=(4, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        amplitudes, frequencies = rng.uniform(0.04, 0.12, 4), rng.uniform(1.5, 4.0, 4)
        phases = rng.uniform(0.0, 2.0 * math.pi, 4)
        for v in bm.verts:
            p = np.array(v.co)
            bump = float(np.sum(amplitudes * np.sin(frequencies * 2.0 * (directions @ p) + phases)))
            v.co = (p * (1.0 + bump)).tolist()
    elif kind in ("prism", "star"):
        if kind == "prism":
            n = int(rng.integers(3, 9))
            angles = np.sort(rng.uniform(0.0, 2.0 * math.pi, n))
            radii = rng.uniform(0.3, 0.5, n)
        else:
            points = int(rng.integers(4, 8))
            angles = np.arange(2 * points) * math.pi / points
            radii = np.where(np.arange(2 * points) % 2 == 0, 0.5, 0.5 * rng.uniform(0.35, 0.6))
        ring = [bm.verts.new((float(r * math.cos(a)), float(r * math.sin(a)), -0.5)) for a, r in zip(angles, radii)]
        face = bm.faces.new(ring)
        extruded = bmesh.ops.extrude_face_region(bm, geom=[face])
        top = [g for g in extruded["geom"] if isinstance(g, bmesh.types.BMVert)]
        bmesh.ops.translate(bm, verts=top, vec=(0.0, 0.0, 1.0))
    elif kind == "crystal":
        points = rng.normal(size=(int(rng.integers(8, 16)), 3))
        points = 0.5 * points / np.abs(points).max(axis=0)
        verts = [bm.verts.new(p.tolist()) for p in points]
        bmesh.ops.convex_hull(bm, input=verts)
        for v in [v for v in bm.verts if not v.link_faces]:
            bm.verts.remove(v)
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    bmesh.ops.recalc_face_normals(bm, faces=bm.faces)
    return bm


def _fit_unit_cube(mesh: bpy.types.Mesh) -> None:
    """Centre the mesh's bounding box on the origin and scale its longest side to 1."""
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    low, high = co.min(axis=0), co.max(axis=0)
    scale = 1.0 / float((high - low).max())
    centre = (low + high) / 2.0
    mesh.transform(((scale, 0, 0, -scale * centre[0]), (0, scale, 0, -scale * centre[1]),
                    (0, 0, scale, -scale * centre[2]), (0, 0, 0, 1)))


def add_shape(scene: bpy.types.Scene, shape: Shape, name: str) -> bpy.types.Object:
    """Build ``shape`` into ``scene``: mesh scaled in place so object-space textures stay in metres."""
    if shape.kind == "monkey":
        with bs.quiet():
            bpy.ops.mesh.primitive_monkey_add(size=1.0)
        obj = bpy.context.active_object
        mesh = obj.data
        # Suzanne faces -y; turn her to face the camera (+y looks away from it) before scaling.
        mesh.transform(((-1, 0, 0, 0), (0, -1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)))
    else:
        bm = _unit_vertices_faces(shape.kind, np.random.default_rng(shape.seed))
        mesh = bpy.data.meshes.new(name)
        bm.to_mesh(mesh)
        bm.free()
        obj = bpy.data.objects.new(name, mesh)
        scene.collection.objects.link(obj)
    obj.name = name
    _fit_unit_cube(mesh)
    mesh.transform(np.diag([*shape.size, 1.0]).tolist())
    mesh.update()
    smooth = shape.kind in ("blob", "monkey")
    for poly in mesh.polygons:
        poly.use_smooth = smooth
    obj.data.materials.append(bs.make_material(shape.material, name))
    obj.location = shape.location
    obj.rotation_euler = shape.rotation
    return obj
