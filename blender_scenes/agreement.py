"""Agreement with Cycles: core's refocus and Blender's Defocus node against Cycles' own depth of field.

Each scene is rendered twice with the same seed, samples and pixel filter: once without depth of
field (the all-in-focus image and its Z pass, the inputs) and once with it (the ground truth).
Core refocuses the inputs with the scene's lens; Blender's compositor Defocus node gets the same
inputs, camera and f-stop, with ``blur_max`` just above the largest CoC. Both are scored against
the ground truth with PSNR and SSIM on display-referred sRGB (``core.metrics.display``).

The scenes span what a refocuser must get right, at 50 mm and f/1.4 to f/4 with everything
between 1 and 20 m: a defocused foreground over a sharp background (the node's known failure), an
in-focus foreground over a blurred background (no halo, no bleeding), a receding textured floor,
small HDR highlights that must become bright discs, and a six-bladed aperture.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import bpy
import numpy as np
import torch

from core.tensors import image_to_tensor, map_to_tensor, tensor_to_image
from core.defocus import refocus
from core.metrics import display, psnr, ssim
from core.optics import Lens

from . import scene as bs
from .defocus_node import BlenderDefocus

M, T = bs.Material, bs.Texture
CPU = torch.device("cpu")


@dataclass(frozen=True)
class AgreementScene:
    """A scene and the lens it is seen through (focus distance and f-stop included)."""

    name: str
    description: str
    spec: bs.SceneSpec
    lens: Lens


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float


@dataclass
class Comparison:
    """One scene's inputs, ground truth, both results and their scores; images (H, W, 3) linear."""

    scene: AgreementScene
    aif: np.ndarray
    depth: np.ndarray
    cycles: np.ndarray
    core: np.ndarray
    node: np.ndarray
    core_score: Score
    node_score: Score
    core_seconds: float
    node_seconds: float

    @property
    def margin_db(self) -> float:
        return self.core_score.psnr - self.node_score.psnr


# Quality settings for the bench: enough samples that noise sits well below the differences
# being measured (checked by rendering twice with two seeds).
# One render thread: the bench shares its machine; the renders are cached under the bench's folder.
BENCH_SETTINGS = bs.RenderSettings(width=384, height=256, samples=512, adaptive_threshold=0.004, max_bounces=4,
                                   threads=1)

_WALL = M(T("brick", (0.55, 0.22, 0.12), (0.42, 0.38, 0.33), scale=5.0))


def _highlight(location: tuple[float, float, float], colour: tuple[float, float, float], strength: float = 30.0,
               diameter: float = 0.08) -> bs.Primitive:
    """A small emissive ball: an HDR point that should become a bright bokeh disc."""
    return bs.Primitive("ico_sphere", location, (diameter,) * 3,
                        material=M(T("flat", (0.0, 0.0, 0.0)), emission=strength, emission_colour=colour))


def scenes() -> list[AgreementScene]:
    """The agreement scenes, all with a 50 mm lens on a 36 mm sensor."""
    sun = bs.Sun(rotation=(0.7, 0.0, 0.5), strength=3.0)
    return [
        AgreementScene(
            "foreground_blur",
            "a post at 1 m and a ball at 1.2 m, blurred, over a sharp brick wall and ball at 5 m (f/1.4, focus 5 m)",
            bs.SceneSpec(objects=(
                bs.Plane(5.0, (8.0, 5.0), material=_WALL),
                bs.Primitive("sphere", (0.8, 4.6, -0.2), (0.8, 0.8, 0.8),
                             material=M(T("voronoi", (0.9, 0.9, 0.8), (0.2, 0.3, 0.6), scale=8.0))),
                bs.Primitive("cube", (-0.12, 1.0, 0.0), (0.07, 0.07, 1.0),
                             material=M(T("checker", (0.9, 0.75, 0.1), (0.08, 0.15, 0.5), scale=40.0))),
                bs.Primitive("sphere", (0.16, 1.2, -0.08), (0.12, 0.12, 0.12),
                             material=M(T("noise", (0.85, 0.2, 0.1), (0.95, 0.9, 0.7), scale=40.0))),
                sun), world=(0.5, 0.55, 0.6)),
            Lens(50.0, 1.4, 5.0),
        ),
        AgreementScene(
            "background_blur",
            "sharp ball and box at 1.5 m over a wall at 15 m and a panel at 6 m, blurred (f/1.4, focus 1.5 m)",
            bs.SceneSpec(objects=(
                bs.Plane(15.0, (22.0, 15.0), material=M(T("brick", (0.3, 0.45, 0.6), (0.7, 0.7, 0.65), scale=3.0))),
                bs.Plane(6.0, (2.0, 3.0), offset=(1.6, -0.3), material=M(T("checker", (0.85, 0.2, 0.15), (0.95, 0.9, 0.85), scale=6.0))),
                bs.Primitive("sphere", (-0.12, 1.5, 0.0), (0.3, 0.3, 0.3),
                             material=M(T("voronoi", (0.95, 0.85, 0.4), (0.1, 0.4, 0.2), scale=40.0))),
                bs.Primitive("cube", (0.2, 1.6, -0.12), (0.16, 0.16, 0.16), rotation=(0.3, 0.2, 0.6),
                             material=M(T("noise", (0.2, 0.7, 0.3), (0.95, 0.95, 0.6), scale=30.0))),
                sun), world=(0.55, 0.6, 0.7)),
            Lens(50.0, 1.4, 1.5),
        ),
        AgreementScene(
            "floor",
            "receding checker floor from 1.3 to 20 m with objects at 2, 4, 9 and 16 m (f/2, focus 4 m)",
            bs.SceneSpec(objects=(
                bs.Ground(z=0.0, size=50.0, centre=(0.0, 24.0), material=M(T("checker", (0.75, 0.75, 0.7), (0.15, 0.15, 0.18), scale=2.0))),
                bs.Plane(22.0, (40.0, 14.0), material=M(T("noise", (0.35, 0.5, 0.75), (0.8, 0.85, 0.95), scale=0.6))),
                bs.Primitive("cylinder", (-0.6, 2.0, 0.2), (0.3, 0.3, 0.4),
                             material=M(T("brick", (0.7, 0.3, 0.2), (0.9, 0.85, 0.8), scale=20.0))),
                bs.Primitive("sphere", (0.4, 4.0, 0.4), (0.8, 0.8, 0.8), material=M(T("voronoi", (0.9, 0.9, 0.9), (0.3, 0.1, 0.4), scale=6.0))),
                bs.Primitive("cube", (-1.5, 9.0, 0.6), (1.2, 1.2, 1.2), rotation=(0.0, 0.0, 0.5),
                             material=M(T("checker", (0.2, 0.5, 0.9), (0.95, 0.95, 0.95), scale=4.0))),
                bs.Primitive("cone", (2.8, 16.0, 1.0), (2.0, 2.0, 2.0), material=M(T("noise", (0.9, 0.5, 0.1), (0.3, 0.1, 0.05), scale=3.0))),
                sun), world=(0.55, 0.6, 0.7), pose=bs.CameraPose((0.0, 0.0, 1.0), (0.0, 6.0, 0.55))),
            Lens(50.0, 2.0, 4.0),
        ),
        AgreementScene(
            "highlights",
            "HDR lights at 8-12 m become bokeh discs behind a sharp board at 1.4 m (f/1.4, focus 1.4 m)",
            bs.SceneSpec(objects=(
                bs.Plane(12.0, (18.0, 12.0), material=M(T("noise", (0.05, 0.05, 0.08), (0.2, 0.15, 0.25), scale=1.5))),
                bs.Plane(1.4, (0.35, 0.5), offset=(-0.25, -0.05), material=M(T("checker", (0.85, 0.85, 0.8), (0.1, 0.1, 0.1), scale=30.0))),
                _highlight((0.9, 8.0, 0.4), (1.0, 0.8, 0.5)),
                _highlight((1.5, 10.0, -0.5), (0.5, 0.7, 1.0), 40.0),
                _highlight((0.3, 12.0, -0.9), (1.0, 0.4, 0.3), 50.0, 0.1),
                _highlight((2.4, 9.0, 0.9), (0.6, 1.0, 0.6)),
                _highlight((-0.4, 11.0, 1.2), (1.0, 1.0, 1.0), 20.0),
                bs.Sun(rotation=(0.7, 0.0, 0.5), strength=1.5)), world=(0.08, 0.08, 0.1)),
            Lens(50.0, 1.4, 1.4),
        ),
        AgreementScene(
            "hexagon",
            "six-bladed aperture: a sharp box at 1 m over a wall at 20 m with lights at 18 m (f/4, focus 1 m)",
            bs.SceneSpec(objects=(
                bs.Plane(20.0, (30.0, 20.0), material=M(T("voronoi", (0.8, 0.7, 0.6), (0.2, 0.25, 0.3), scale=1.2))),
                _highlight((2.0, 18.0, 1.0), (1.0, 0.9, 0.7), 150.0, 0.1),
                _highlight((-3.0, 18.0, -0.8), (0.6, 0.8, 1.0), 150.0, 0.1),
                _highlight((1.0, 18.0, -1.5), (1.0, 0.5, 0.4), 150.0, 0.1),
                bs.Primitive("cube", (-0.05, 1.0, 0.0), (0.18, 0.18, 0.18), rotation=(0.5, 0.3, 0.2),
                             material=M(T("brick", (0.8, 0.6, 0.2), (0.3, 0.2, 0.1), scale=60.0))),
                sun), world=(0.4, 0.45, 0.5)),
            Lens(50.0, 4.0, 1.0, blades=6, rotation=math.radians(15.0)),
        ),
        AgreementScene(
            "near_card_blur",
            "a large light card and a ball at 1.2 m, blurred, over a dark sharp wall at 8 m (f/2, focus 8 m)",
            _near_card_spec(),
            Lens(50.0, 2.0, 8.0),
        ),
        AgreementScene(
            "near_card_sharp",
            "the same card and ball in focus at 1.2 m over the wall at 8 m, blurred (f/1.4, focus 1.2 m)",
            _near_card_spec(),
            Lens(50.0, 1.4, 1.2),
        ),
    ]


def _near_card_spec() -> bs.SceneSpec:
    """A near card's straight silhouette and a ball's curved one over a far wall, in strong contrast:
    where anti-aliased edge pixels mix the two surfaces but the Z pass holds one depth."""
    return bs.SceneSpec(objects=(
        bs.Plane(8.0, (14.0, 9.0), material=M(T("brick", (0.12, 0.1, 0.1), (0.35, 0.3, 0.28), scale=3.0))),
        bs.Plane(1.2, (0.5, 0.9), offset=(-0.27, 0.02), material=M(T("checker", (0.95, 0.9, 0.7), (0.7, 0.55, 0.3), scale=12.0))),
        bs.Primitive("sphere", (0.18, 1.3, -0.08), (0.16, 0.16, 0.16),
                     material=M(T("noise", (0.3, 0.8, 0.95), (0.9, 0.95, 1.0), scale=20.0))),
        bs.Sun(rotation=(0.7, 0.0, 0.5), strength=3.0)), world=(0.3, 0.32, 0.35))


# ------------------------------------------------------------------------------------- renders
def render_key(scene: AgreementScene, settings: bs.RenderSettings) -> str:
    """A short hash of everything that changes the pixels, for file names of cached renders."""
    text = repr((scene.spec, scene.lens, settings, bpy.app.version_string))
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def render_pair(scene: AgreementScene, settings: bs.RenderSettings, folder: Path | None = None,
                rerender: bool = False) -> tuple[bs.Frame, np.ndarray]:
    """All-in-focus frame (colour + Z) and Cycles' depth-of-field render (H, W, 3) of ``scene``.

    With a ``folder`` the EXRs are kept there under a name that hashes the scene, lens and
    settings, and reused on the next call unless ``rerender``.
    """
    stem = f"{scene.name}-{render_key(scene, settings)}"
    folder = Path(folder) if folder is not None else None
    paths = {kind: (folder / f"{stem}-{kind}.exr") if folder else None for kind in ("aif", "dof")}
    if folder and not rerender and all(p.is_file() for p in paths.values()):
        return bs.read_frame(paths["aif"]), bs.read_frame(paths["dof"]).image
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    blender_scene = bs.build(scene.spec, settings, scene.lens)
    with tempfile.TemporaryDirectory(prefix="refocus-agreement-") as tmp:
        aif = bs.render(blender_scene, paths["aif"] or Path(tmp) / "aif.exr", dof=False)
        dof = bs.render(blender_scene, paths["dof"] or Path(tmp) / "dof.exr", dof=True)
    return aif, dof.image


# ------------------------------------------------------------------------------------ scoring
def score(image: np.ndarray, reference: np.ndarray) -> Score:
    """PSNR (dB) and SSIM of ``image`` against ``reference``, both (H, W, 3) linear, on display sRGB."""
    a, b = display(image_to_tensor(image, CPU)), display(image_to_tensor(reference, CPU))
    return Score(float(psnr(a, b)), float(ssim(a, b)))


def core_refocus(aif: bs.Frame, lens: Lens, k_max: int | None = None) -> np.ndarray:
    """Core's layered defocus of an all-in-focus frame, (H, W, 3) scene-linear.

    ``k_max``: core's largest kernel before downsampling; ``None`` keeps core's default.
    """
    options = {} if k_max is None else {"k_max": k_max}
    with torch.no_grad():
        out = refocus(image_to_tensor(aif.image, CPU), map_to_tensor(aif.depth, CPU), lens, **options)
    return tensor_to_image(out)


def compare(scene: AgreementScene, aif: bs.Frame, cycles: np.ndarray, node: BlenderDefocus | None = None,
            k_max: int | None = None) -> Comparison:
    """Run core and Blender's Defocus node on ``aif`` and score both against ``cycles``."""
    start = time.perf_counter()
    core_out = core_refocus(aif, scene.lens, k_max)
    core_seconds = time.perf_counter() - start
    h, w = aif.depth.shape
    own = node is None
    node = node if node is not None else BlenderDefocus(w, h)
    try:
        node_out = node(aif.image, aif.depth, scene.lens)
        node_seconds = node.seconds
    finally:
        if own:
            node.close()
    return Comparison(scene, aif.image, aif.depth, cycles, core_out, node_out,
                      score(core_out, cycles), score(node_out, cycles), core_seconds, node_seconds)


def run(scene: AgreementScene, settings: bs.RenderSettings = BENCH_SETTINGS, folder: Path | None = None,
        rerender: bool = False) -> Comparison:
    """Render (or reuse) ``scene`` and compare core and Blender's node against Cycles."""
    aif, cycles = render_pair(scene, settings, folder, rerender)
    return compare(scene, aif, cycles)


def scaled(settings: bs.RenderSettings, **changes: object) -> bs.RenderSettings:
    """``settings`` with some fields changed (a smaller size for tests, another seed for noise)."""
    return replace(settings, **changes)
