"""``python -m core focal-stack-depth``: round trips through real files, and every bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main
from core.focal_stack.learned import save_model
from core.focal_stack.synthetic import dioptre_spaced, noise_texture, render_stack, slanted_plane
from core.imageio import read_image, read_map, write_image
from core.optics import Lens
from core.focal_stack.nets import CONFIGS, FocalStackNet

ROOT = Path(__file__).resolve().parents[1]
SIZE = 96
NEAR, FAR = 0.4, 2.0
FOCUS = dioptre_spaced(NEAR, FAR, 5)


@pytest.fixture(scope="module")
def scene():
    g = torch.Generator().manual_seed(21)
    image = noise_texture(SIZE, SIZE, g)
    depth = slanted_plane(SIZE, SIZE, NEAR, FAR)
    stack = render_stack(image, depth, Lens(50.0, 1.4, sensor_width_mm=36.0), FOCUS)
    return depth[0, 0].numpy(), [s.permute(1, 2, 0).numpy() for s in stack]


def write_slices(folder: Path, slices, ext: str = ".exr") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, s in enumerate(slices):
        paths.append(folder / f"slice_{i}{ext}")
        write_image(paths[-1], s)
    return paths


def run(args, capsys):
    code = main([str(a) for a in args])
    return code, capsys.readouterr()


def dioptre_error(depth: np.ndarray, truth: np.ndarray, margin: int = 8) -> float:
    inner = (slice(margin, -margin), slice(margin, -margin))
    return float(np.abs(1 / depth[inner] - 1 / truth[inner]).mean())


@pytest.mark.parametrize("ext", [".exr", ".png"])
def test_round_trip_files_to_depth_in_metres(tmp_path, capsys, scene, ext):
    truth, slices = scene
    paths = write_slices(tmp_path / "in", slices, ext)
    out = tmp_path / "out"
    out.mkdir()
    code, io = run(["focal-stack-depth", "--stack", *paths, "--focus-distances", *FOCUS,
                    "--depth", out / "d.exr", "--aif", out / f"aif{ext}", "--confidence", out / "c.npy"], capsys)
    assert code == 0, io.err
    assert "wrote" in io.out and "depth in m" in io.out
    depth = read_map(out / "d.exr")
    assert depth.shape == (SIZE, SIZE)
    step = (1 / NEAR - 1 / FAR) / 4
    assert dioptre_error(depth, truth) < 0.25 * step  # PNG's 16-bit sRGB loses nothing that matters
    conf = read_map(out / "c.npy")
    assert conf.min() >= 0 and conf.max() <= 1
    assert read_image(out / f"aif{ext}").shape == (SIZE, SIZE, 3)


def test_folder_with_its_focus_file_and_index_depth_without_one(tmp_path, capsys, scene):
    truth, slices = scene
    folder = tmp_path / "stack"
    write_slices(folder, slices)
    code, io = run(["focal-stack-depth", "--stack", folder, "--depth", tmp_path / "index.npy",
                    "--aif", tmp_path / "a.exr", "--quiet"], capsys)
    assert code == 0, io.err
    index = read_map(tmp_path / "index.npy")
    assert index.min() >= 0 and index.max() <= 4 and index[:, :16].mean() > 3  # near edge: last slice
    (folder / "focus_distances.txt").write_text("# metres\n" + "\n".join(str(f) for f in FOCUS) + "\n")
    code, io = run(["focal-stack-depth", "--stack", folder, "--depth", tmp_path / "m.pfm",
                    "--aif", tmp_path / "a.exr", "--quiet"], capsys)
    assert code == 0, io.err
    assert io.out == ""
    assert dioptre_error(read_map(tmp_path / "m.pfm"), truth) < 0.25 * (1 / NEAR - 1 / FAR) / 4


def test_learned_method_with_given_weights(tmp_path, capsys, scene):
    _, slices = scene
    paths = write_slices(tmp_path / "in", slices)
    weights = tmp_path / "dff_tiny.pt"
    save_model(weights, FocalStackNet(CONFIGS["tiny"]), {"data": "untrained, for the test"})
    code, io = run(["focal-stack-depth", "--stack", *paths, "--focus-distances", *FOCUS, "--method", "learned",
                    "--weights", weights, "--depth", tmp_path / "d.exr", "--aif", tmp_path / "a.exr",
                    "--confidence", tmp_path / "c.exr"], capsys)
    assert code == 0, io.err
    depth = read_map(tmp_path / "d.exr")
    # Whatever its weights, the network's depth lies within the stack's focus range.
    assert depth.min() >= NEAR * (1 - 1e-5) and depth.max() <= FAR * (1 + 1e-5)


def test_breathing_stack_is_aligned_with_the_focal_length(tmp_path, capsys, scene):
    """A 50 mm lens breathes by 8 % between 2 m and 0.4 m; --focal-length undoes it."""
    from core.focal_stack.alignment import breathing_scales, scale_about_centre, warp_images

    _, slices = scene
    stack = torch.stack([torch.from_numpy(s.transpose(2, 0, 1).copy()) for s in slices])
    scales, _ = breathing_scales(FOCUS, 50.0)
    inverse = np.stack([np.linalg.inv(scale_about_centre(float(s), SIZE, SIZE)) for s in scales])
    breathed_slices = warp_images(stack, torch.from_numpy(inverse))
    breathed = write_slices(tmp_path / "breathed", [b.permute(1, 2, 0).numpy() for b in breathed_slices])
    clean = write_slices(tmp_path / "clean", slices)
    depths = {}
    for name, paths, extra in [("clean", clean, ["--align", "none"]), ("raw", breathed, ["--align", "none"]),
                               ("fixed", breathed, ["--focal-length", 50, "--f-stop", 1.4])]:
        code, io = run(["focal-stack-depth", "--stack", *paths, "--focus-distances", *FOCUS, "--depth",
                        tmp_path / f"{name}.exr", "--aif", tmp_path / "a.exr", "--quiet", *extra], capsys)
        assert code == 0, io.err
        depths[name] = read_map(tmp_path / f"{name}.exr")
    # The nearest slice is the reference and was not warped, so the frames agree; measured 0.04 vs 0.006.
    raw = dioptre_error(depths["raw"], depths["clean"], 14)
    fixed = dioptre_error(depths["fixed"], depths["clean"], 14)
    assert fixed < 0.3 * raw


BAD = {
    "different sizes": (lambda p, s: [p[0], p[1], p[2]], ["--focus-distances", 1, 2, 3], "is 48x48 but"),
    "one slice": (lambda p, s: [p[0]], ["--focus-distances", 1], "at least 2 slices"),
    "count mismatch": (lambda p, s: p[:3], ["--focus-distances", 1, 2], "got 2 focus distance(s) for 3"),
    "duplicate": (lambda p, s: p[:3], ["--focus-distances", 1, 2, 1], "appears more than once"),
    "zero": (lambda p, s: p[:3], ["--focus-distances", 1, 0, 2], "must be positive"),
    "negative": (lambda p, s: p[:3], ["--focus-distances", 1, -2, 3], "must be positive"),
    "learned without distances": (lambda p, s: p[:3], ["--method", "learned", "--weights", "w.pt"],
                                  "needs focus distances"),
    "missing slice": (lambda p, s: [p[0], s / "nope.exr"], ["--focus-distances", 1, 2], "not found"),
    "bad depth extension": (lambda p, s: p[:2], ["--focus-distances", 1, 2, "--depth", "d.png"],
                            "unknown depth extension"),
    "focus file garbage": (lambda p, s: p[:2], ["--focus-file", "garbage.txt"], "expected numbers"),
    "physical without the camera": (lambda p, s: p[:3], ["--focus-distances", 1, 2, 3, "--method", "physical"],
                                    "needs the camera"),
    # a phone lens at 96 px blurs 3 m against 5 m by a few hundredths of a pixel
    "camera cannot blur the range apart": (lambda p, s: p[:3], ["--focus-distances", 3, 4, 5, "--focal-length", 4.3,
                                                              "--f-stop", 2.8, "--sensor-width", 5.6],
                                           "blurs the focus range apart by only"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, scene, case):
    _, slices = scene
    paths = write_slices(tmp_path / "in", slices[:3])
    small = slices[0][:48, :48]
    write_image(paths[2], small)  # only the "different sizes" case lists it with the others
    if case != "different sizes":
        write_image(paths[2], slices[2])
    (tmp_path / "garbage.txt").write_text("one\ntwo\n")
    pick, extra, message = BAD[case]
    out = tmp_path / "out"
    out.mkdir()
    args = ["focal-stack-depth", "--stack", *pick(paths, tmp_path), "--aif", out / "a.exr"]
    extra = [tmp_path / e if isinstance(e, str) and e.endswith((".pt", ".txt")) else e for e in extra]
    if "--depth" in extra:
        i = extra.index("--depth")
        extra[i + 1] = out / extra[i + 1]
    else:
        args += ["--depth", out / "d.exr"]
    code, io = run(args + extra, capsys)
    assert code == 2
    lines = io.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], io.err
    assert list(out.iterdir()) == []


def test_physical_method_without_aif_writes_depth_and_uncertainty(tmp_path, capsys, scene):
    truth, slices = scene
    paths = write_slices(tmp_path / "in", slices)
    out = tmp_path / "out"
    out.mkdir()
    code, io = run(["focal-stack-depth", "--stack", *paths, "--focus-distances", *FOCUS, "--method", "physical",
                    "--focal-length", 50, "--f-stop", 1.4, "--align", "none", "--depth", out / "d.exr",
                    "--uncertainty", out / "u.exr", "--quiet"], capsys)
    assert code == 0, io.err
    assert sorted(p.name for p in out.iterdir()) == ["d.exr", "u.exr"]  # no all-in-focus asked, none written
    depth, sigma = read_map(out / "d.exr"), read_map(out / "u.exr")
    assert dioptre_error(depth, truth) < 0.1  # measured 0.03 D (slices 0.4 D apart)
    assert sigma.shape == depth.shape and float(sigma.min()) >= 0


def test_real_command_line(tmp_path, scene):
    _, slices = scene
    paths = write_slices(tmp_path / "in", slices[:3])
    proc = subprocess.run([sys.executable, "-m", "core", "focal-stack-depth", "--stack", *map(str, paths),
                           "--focus-distances", *map(str, FOCUS[:3]), "--depth", str(tmp_path / "d.exr"),
                           "--aif", str(tmp_path / "a.png")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d.exr").is_file() and (tmp_path / "a.png").is_file()
