"""The demo: one Cycles render, refocused by core at three distances, next to Cycles' own.

    python -m blender_scenes.demo --out out/demo        (what ``make demo`` runs)

Renders a small scene with bpy (all-in-focus colour and Z pass), refocuses it with core at a near,
a middle and a far focus distance, renders Cycles' depth of field at the same distances, and
writes every frame (EXR scene-linear, PNG sRGB) and ``contact_sheet.png``: one row per focus
distance, core on the left, Cycles on the right, with the PSNR between them. Safe to re-run:
every file is replaced atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from core.imageio import write_image
from core.optics import Lens

from . import scene as bs
from .agreement import core_refocus, score
from .sheet import caption, grid, tile, write_png

M, T = bs.Material, bs.Texture
LENS = Lens(focal_length_mm=50.0, f_stop=1.4, focus_distance=3.0)
FOCUS = (("near", 2.0), ("middle", 4.0), ("far", 10.0))
SIZE = (480, 270)


def demo_scene() -> bs.SceneSpec:
    """A small square at dusk: a ball and a box near, a pillar and a ring in the middle, brick
    facades far, and a string of lamps at the back (small HDR emitters, for bokeh)."""

    def lamp(x: float, y: float, z: float, colour: tuple[float, float, float]) -> bs.Primitive:
        return bs.Primitive("ico_sphere", (x, y, z), (0.07, 0.07, 0.07),
                            material=M(T("flat", (0.0, 0.0, 0.0)), emission=50.0, emission_colour=colour))

    warm, pale, cool = (1.0, 0.7, 0.35), (1.0, 0.9, 0.7), (0.6, 0.8, 1.0)
    lamps = [lamp(-1.1 + 0.32 * i, 11.5, 1.35 + 0.3 * np.sin(1.7 * i), (warm, pale, cool)[i % 3]) for i in range(8)]
    return bs.SceneSpec(objects=(
        bs.Ground(z=0.0, size=40.0, centre=(0.0, 15.0), material=M(T("checker", (0.62, 0.6, 0.55), (0.16, 0.15, 0.14), 1.5))),
        bs.Plane(14.0, (24.0, 14.0), offset=(0.0, 4.0), material=M(T("noise", (0.1, 0.1, 0.22), (0.35, 0.25, 0.45), 0.6))),
        bs.Plane(9.0, (2.6, 6.0), offset=(-2.3, 0.4), material=M(T("brick", (0.62, 0.3, 0.17), (0.5, 0.45, 0.4), 5.0))),
        bs.Plane(10.0, (2.8, 7.0), offset=(2.6, 0.8), material=M(T("brick", (0.75, 0.7, 0.55), (0.35, 0.32, 0.3), 5.0))),
        bs.Primitive("sphere", (-0.32, 2.0, 0.15), (0.3, 0.3, 0.3),
                     material=M(T("voronoi", (0.95, 0.8, 0.3), (0.2, 0.1, 0.4), 25.0), roughness=0.35)),
        bs.Primitive("cube", (0.3, 2.3, 0.1), (0.2, 0.2, 0.2), rotation=(0.0, 0.0, 0.5),
                     material=M(T("checker", (0.85, 0.15, 0.1), (0.95, 0.9, 0.85), 25.0))),
        bs.Primitive("cylinder", (-0.75, 4.0, 0.6), (0.3, 0.3, 1.2), material=M(T("noise", (0.85, 0.82, 0.75), (0.45, 0.4, 0.38), 10.0))),
        bs.Primitive("torus", (0.6, 4.4, 0.32), (0.6, 0.6, 0.6), rotation=(1.3, 0.0, -0.4),
                     material=M(T("checker", (0.1, 0.55, 0.35), (0.8, 0.95, 0.6), 20.0))),
        *lamps,
        bs.Sun(rotation=(1.05, 0.0, 0.6), strength=2.5, colour=(1.0, 0.85, 0.7)),
    ), world=(0.2, 0.25, 0.4), pose=bs.CameraPose((0.0, 0.0, 0.5), (0.0, 6.0, 0.15)))


def settings(samples: int) -> bs.RenderSettings:
    return bs.RenderSettings(width=SIZE[0], height=SIZE[1], samples=samples, adaptive_threshold=0.01, denoise=True)


def depth_tile(depth: np.ndarray) -> np.ndarray:
    """Inverse depth as a colour map (near bright), uint8 sRGB."""
    inv = 1.0 / depth
    t = (inv - inv.min()) / max(float(inv.max() - inv.min()), 1e-9)
    return cv2.applyColorMap(np.round(t * 255).astype(np.uint8), cv2.COLORMAP_MAGMA)[..., ::-1]


class Steps:
    """One line per step on stderr: ``[2/8] Cycles, focus 1.3 m ... 21.4 s``."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()

    def begin(self, what: str) -> None:
        self.done += 1
        self.t0 = time.perf_counter()
        print(f"[{self.done}/{self.total}] {what} ...", end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        print(f" {time.perf_counter() - self.t0:.1f} s", file=sys.stderr, flush=True)


def run(out: Path, samples: int = 64, dof_samples: int = 128) -> Path:
    """Render, refocus and write everything under ``out``; returns the contact sheet's path."""
    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(2 + 2 * len(FOCUS))
    steps.begin(f"Cycles, all in focus with Z pass ({SIZE[0]}x{SIZE[1]}, {samples} samples)")
    scn = bs.build(demo_scene(), settings(samples), LENS)
    aif = bs.render(scn, out / "all_in_focus.exr", dof=False)
    write_image(out / "all_in_focus.png", aif.image, bit_depth=8)
    steps.end()

    rows = [[caption(tile(aif.image), "input: all in focus (Cycles)"),
             caption(depth_tile(aif.depth), f"input: Z pass, {aif.depth.min():.1f}-{aif.depth.max():.1f} m")]]
    scn.cycles.samples = dof_samples
    for name, distance in FOCUS:
        lens = LENS.with_focus(distance)
        steps.begin(f"core, focus {distance:g} m")
        refocused = core_refocus(aif, lens)
        stem = f"focus_{name}_{distance:g}m"
        write_image(out / f"{stem}_core.exr", refocused)
        write_image(out / f"{stem}_core.png", refocused, bit_depth=8)
        steps.end()
        steps.begin(f"Cycles depth of field, focus {distance:g} m ({dof_samples} samples)")
        bs.set_dof(scn, True, distance)
        cycles = bs.render(scn, out / f"{stem}_cycles.exr").image
        write_image(out / f"{stem}_cycles.png", cycles, bit_depth=8)
        steps.end()
        s = score(refocused, cycles)
        label = f"focus {distance:g} m ({name}), f/{LENS.f_stop:g}"
        rows.append([caption(tile(refocused), f"core: {label}, PSNR {s.psnr:.1f} dB"),
                     caption(tile(cycles), f"Cycles depth of field: {label}")])
    steps.begin("contact sheet")
    sheet = out / "contact_sheet.png"
    write_png(sheet, grid(rows, title=f"Refocus core vs Cycles, {LENS.focal_length_mm:g} mm f/{LENS.f_stop:g}"))
    steps.end()
    print(f"demo done in {time.perf_counter() - steps.start:.0f} s", file=sys.stderr)
    return sheet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m blender_scenes.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--samples", type=int, default=64, help="Cycles samples, all-in-focus render")
    p.add_argument("--dof-samples", type=int, default=128, help="Cycles samples, depth-of-field renders")
    args = p.parse_args(argv)
    sheet = run(Path(args.out), args.samples, args.dof_samples)
    out = Path(args.out).resolve()
    print(f"wrote {out}/: all_in_focus.exr (colour + Z), focus_*_core.exr|png, focus_*_cycles.exr|png")
    print(f"contact sheet: {sheet.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
