"""The Stereo Depth and Focal Stack Depth nodes in real Blender (bpy 5.0.1), against the command line.

Each node renders in a compositor (``depth_node_fixtures``) on the Cycles samples shipped in
``blender_scenes/samples``; its outputs must equal ``python -m core stereo-depth`` and ``python -m
core focal-stack-depth`` (``core.cli.main``, what ``python -m core`` runs) on the same files, and
Layered Defocus fed by Stereo Depth must equal ``core.refocus`` with the command's depth.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from addon_fixtures import blender_float, install_extension, max_diff
from core.cli import main as cli
from core.defocus import refocus
from core.errors import InputError
from core.focal_stack.slices import MAX_DEPTH_M
from core.imageio import read_image, read_map, write_exr
from core.optics import Lens
from core.worker.ops import registry
from core.worker.protocol import Job
from depth_node_fixtures import (DEFOCUS_LENS, MAX_DISPARITY, STACK_SAMPLE, STEREO_SAMPLE, SWEEP_SAMPLE,
                                 run_depth_session, sample)

pytestmark = pytest.mark.blender
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Blender user folders with the extension installed through Blender's extension API."""
    user, result = install_extension(tmp_path_factory.mktemp("blender"))
    assert result["sockets"]["RefocusStereoDepthNode"] == [["Left", "Right"], ["Depth", "Disparity", "Confidence"]]
    assert result["sockets"]["RefocusFocalStackDepthNode"] == [
        [f"Slice {k}" for k in range(1, 9)], ["Depth", "All in Focus", "Confidence"]]
    return user


# ------------------------------------------------------------------------------------- stereo
@pytest.fixture(scope="module")
def stereo(user_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("stereo")
    result = run_depth_session("stereo", user_dir, out=str(out))
    meta = sample(STEREO_SAMPLE)
    cli_out = out / "cli"
    cli_out.mkdir()
    for method in ("sgbm", "learned", "refined"):
        files = {name: str(cli_out / f"{method}_{name}.exr") for name in ("disparity", "depth", "confidence")}
        code = cli(["stereo-depth", "--left", str(STEREO_SAMPLE / "left.exr"), "--right",
                    str(STEREO_SAMPLE / "right.exr"), "--method", method, "--output", files["disparity"],
                    "--depth", files["depth"], "--confidence", files["confidence"],
                    "--max-disparity", str(MAX_DISPARITY), "--baseline", blender_float(meta["baseline_m"]),
                    "--focal-length", blender_float(meta["camera"]["focal_length_mm"]),
                    "--sensor-width", blender_float(meta["camera"]["sensor_width_mm"]),
                    "--convergence-mode", "PARALLEL", "--quiet"])
        assert code == 0
        result[f"cli_{method}"] = files
    return result


def _assert_stereo_equals_cli(outputs: dict[str, str], cli_files: dict[str, str]) -> np.ndarray:
    """Node outputs against the command's; returns the node's depth."""
    for name in ("disparity", "confidence"):
        assert max_diff(read_map(outputs[name]), read_map(cli_files[name])) <= TOLERANCE, name
    got, want = read_map(outputs["depth"]), read_map(cli_files["depth"])
    far = ~np.isfinite(want)  # zero disparity: the command says inf, the node its far limit
    assert np.all(got[far] == np.float32(MAX_DEPTH_M))
    assert max_diff(got[~far], want[~far]) <= TOLERANCE
    return got


def test_stereo_depth_node_equals_the_command(stereo: dict[str, Any]) -> None:
    assert stereo["nodes"]["Stereo Depth"]["state"] == "DONE", stereo["nodes"]
    got = _assert_stereo_equals_cli(stereo["outputs"], stereo["cli_sgbm"])
    # Not a trivial agreement: the depth is the sample's within stereo accuracy where it matters.
    truth = read_map(str(STEREO_SAMPLE / "depth_left.exr"))
    near = truth < 5.0
    assert np.median(np.abs(got[near] - truth[near]) / truth[near]) < 0.15
    assert stereo["leftovers"] == []


@pytest.mark.parametrize("method", ["learned", "refined"])
def test_learned_stereo_depth_node_equals_the_command(stereo: dict[str, Any], method: str) -> None:
    learned = stereo[method]
    assert learned["nodes"]["Stereo Depth"]["state"] == "DONE", learned["nodes"]
    _assert_stereo_equals_cli(learned["outputs"], stereo[f"cli_{method}"])
    # Not the SGBM result again: the method reached the worker.
    assert max_diff(read_map(learned["outputs"]["disparity"]), read_map(stereo["outputs"]["disparity"])) > 0.01


def test_stereo_depth_feeds_layered_defocus(stereo: dict[str, Any]) -> None:
    assert stereo["nodes"]["Layered Defocus"]["state"] == "DONE", stereo["nodes"]
    left = read_image(STEREO_SAMPLE / "left.exr")
    image = np.concatenate([left, np.ones_like(left[..., :1])], axis=-1)  # the compositor's RGBA
    depth = np.where(np.isfinite(d := read_map(stereo["cli_sgbm"]["depth"])), d, MAX_DEPTH_M).astype(np.float32)
    expected = refocus(torch.from_numpy(image.transpose(2, 0, 1).copy())[None], torch.from_numpy(depth)[None, None],
                       Lens(**DEFOCUS_LENS))[0].numpy().transpose(1, 2, 0)
    got = read_image(stereo["composite"])
    assert max_diff(got, expected) <= TOLERANCE
    assert np.abs(got - image).max() > 0.02  # it did refocus


def test_stereo_pair_of_two_sizes_is_an_error_on_the_node(stereo: dict[str, Any]) -> None:
    nodes = stereo["sizes"]["nodes"]
    assert nodes["Stereo Depth"]["state"] == "ERROR"
    assert "left image is 128x128 but right image is 64x64" in nodes["Stereo Depth"]["message"]
    assert "Refocus: Stereo Depth: left image is 128x128" in stereo["stderr"]
    assert nodes["Layered Defocus"]["state"] == "ERROR"
    assert "input node 'Stereo Depth' has no result" in nodes["Layered Defocus"]["message"]
    # The render finished: Layered Defocus passed its image (the left view) through.
    left = read_image(STEREO_SAMPLE / "left.exr")
    np.testing.assert_array_equal(read_image(stereo["sizes"]["composite"])[..., :3], left)
    assert float(np.abs(read_map(stereo["sizes"]["depth"])).max()) == 0.0


# -------------------------------------------------------------------------------- focal stack
@pytest.fixture(scope="module")
def stack(user_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("stack")
    result = run_depth_session("focal_stack", user_dir, out=str(out))
    meta = sample(STACK_SAMPLE)
    cli_out = out / "cli"
    cli_out.mkdir()
    camera = meta["camera"]
    for method in ("classical", "learned", "learned-camera"):
        files = {name: str(cli_out / f"{method}_{name}.exr") for name in ("depth", "aif", "confidence")}
        lens = ["--f-stop", repr(camera["f_stop"]), "--sensor-width", blender_float(camera["sensor_width_mm"])]
        code = cli(["focal-stack-depth", "--stack", *(str(STACK_SAMPLE / v["file"]) for v in meta["slices"]),
                    "--focus-distances", *(repr(d) for d in meta["focus_distances"]),
                    "--focal-length", blender_float(camera["focal_length_mm"]), "--method", method,
                    *(lens if method == "learned-camera" else []),
                    "--depth", files["depth"], "--aif", files["aif"], "--confidence", files["confidence"], "--quiet"])
        assert code == 0
        result[{"classical": "cli", "learned": "cli_learned", "learned-camera": "cli_camera"}[method]] = files
    return result


def _assert_stack_equals_cli(run: dict[str, Any], cli_files: dict[str, str]) -> None:
    assert run["state"] == "DONE", run
    for name in ("depth", "confidence"):
        assert max_diff(read_map(run["outputs"][name]), read_map(cli_files[name])) <= TOLERANCE, name
    aif = read_image(run["outputs"]["aif"])
    assert max_diff(aif[..., :3], read_image(cli_files["aif"])) <= TOLERANCE
    assert max_diff(read_image(run["composite"]), aif) == 0.0  # the same pixels reach the composite


def test_focal_stack_depth_node_equals_the_command(stack: dict[str, Any]) -> None:
    assert stack["hidden_before"] == [False] * 5 + [True] * 3  # Slices (5) sockets show by default
    _assert_stack_equals_cli(stack["list"], stack["cli"])
    _assert_stack_equals_cli(stack["file"], stack["cli"])
    depth = read_map(stack["cli"]["depth"])
    assert min(stack["distances"]) <= float(np.median(depth)) <= max(stack["distances"])  # metres, in range
    assert stack["leftovers"] == []


def test_focal_stack_errors_show_on_the_node(stack: dict[str, Any]) -> None:
    short = stack["short"]
    assert short["state"] == "ERROR"
    assert "got 4 focus distance(s) for 5 slice(s)" in short["message"]
    assert "Refocus: Focal Stack Depth: got 4 focus distance(s)" in stack["stderr"]
    # The render finished, All in Focus passing Slice 1 through.
    slice_1 = read_image(STACK_SAMPLE / "slice_00.exr")
    np.testing.assert_array_equal(read_image(short["composite"])[..., :3], slice_1)


def test_focus_distances_from_the_keyframed_scene_camera(stack: dict[str, Any]) -> None:
    """Focus Distances 'Camera': the slices as a rendered focus sweep (an image sequence, one Image
    node per slice offset by its index), the distances from the camera's keyframes at the frame each
    slice shows; the same depth as the command given the distances. A still image is refused."""
    _assert_stack_equals_cli(stack["camera"], stack["cli"])
    still = stack["camera_still"]
    assert still["state"] == "ERROR"
    assert "Slice 3 comes from a still image" in still["message"], still["message"]


def test_learned_focal_stack_depth_node_equals_the_command(stack: dict[str, Any]) -> None:
    """The shipped FocalStackNet (dff_guided.pt) through the node, against the command."""
    _assert_stack_equals_cli(stack["learned"], stack["cli_learned"])
    assert max_diff(read_map(stack["learned"]["outputs"]["depth"]), read_map(stack["cli"]["depth"])) > 0.01


def test_any_camera_focal_stack_depth_node_equals_the_command(stack: dict[str, Any]) -> None:
    """CameraNet (dff_camera.pt) through the node, the scene camera's focal length, f-stop and
    sensor, against the command given them."""
    _assert_stack_equals_cli(stack["learned_camera"], stack["cli_camera"])
    assert max_diff(read_map(stack["learned_camera"]["outputs"]["depth"]), read_map(stack["cli"]["depth"])) > 0.01


# ------------------------------------------------------------------- focal stack: video mode
VIDEO_FRAMES = [1, 4, 7]  # scene frames rendered: clip frames 0, 3 (a ramp's far end) and 6


def _sweep_movie(path: Path) -> Path:
    """The sweep sample's frames as an MJPEG movie (8-bit sRGB)."""
    import cv2

    from core.colour import linear_to_srgb

    meta = sample(SWEEP_SAMPLE)
    cam = meta["camera"]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (cam["width"], cam["height"]))
    for f in meta["frames"]:
        rgb = linear_to_srgb(np.clip(read_image(SWEEP_SAMPLE / f["file"])[..., :3], 0, 1))
        writer.write(np.ascontiguousarray((rgb * 255).round().astype(np.uint8)[..., ::-1]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(user_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The sweep sample through the node in Video mode, and ``--frame all`` on the same files."""
    out = tmp_path_factory.mktemp("video")
    meta = sample(SWEEP_SAMPLE)
    distances = meta["focus_distances"]
    files = {"focus_file": out / "focus.txt", "sparse_file": out / "sparse.txt", "short_file": out / "short.txt"}
    files["focus_file"].write_text("# metres, one per frame\n" + "\n".join(repr(d) for d in distances) + "\n")
    turn = distances.index(max(distances))  # the far end: the sweep is even in dioptres between the ends
    pairs = [(0, distances[0]), (turn, distances[turn]), (turn + 1, distances[turn + 1]),
             (len(distances) - 1, distances[-1])]
    files["sparse_file"].write_text("".join(f"{f} {d!r}\n" for f, d in pairs))
    files["short_file"].write_text("\n".join(repr(d) for d in distances[:-1]) + "\n")
    movie = _sweep_movie(out / "sweep.avi")
    result = run_depth_session("focal_video", user_dir, out=str(out), frames=VIDEO_FRAMES, movie=str(movie),
                               **{k: str(v) for k, v in files.items()})
    cam = meta["camera"]
    cli_dir = out / "cli"
    cli_dir.mkdir()
    lens = ["--focal-length", blender_float(cam["focal_length_mm"]), "--f-stop", blender_float(cam["f_stop"]),
            "--sensor-width", blender_float(cam["sensor_width_mm"])]
    code = cli(["focal-stack-depth", "--stack", str(movie), "--focus-file", str(files["focus_file"]), "--frame",
                "all", "--method", "physical", *lens, "--depth", str(cli_dir / "movie_depth_#.exr"),
                "--aif", str(cli_dir / "movie_aif_#.exr"), "--confidence", str(cli_dir / "movie_confidence_#.exr"),
                "--quiet"])
    assert code == 0
    t = VIDEO_FRAMES[1] - 1
    result["cli_movie"] = {name: str(cli_dir / f"movie_{name}_{t}.exr") for name in ("depth", "aif", "confidence")}
    code = cli(["focal-stack-depth", "--stack", *(str(SWEEP_SAMPLE / f["file"]) for f in meta["frames"]),
                "--focus-file", str(files["focus_file"]), "--frame", "all", "--method", "physical",
                "--focal-length", blender_float(cam["focal_length_mm"]), "--f-stop", blender_float(cam["f_stop"]),
                "--sensor-width", blender_float(cam["sensor_width_mm"]), "--depth", str(cli_dir / "depth_#.exr"),
                "--aif", str(cli_dir / "aif_#.exr"), "--confidence", str(cli_dir / "confidence_#.exr"), "--quiet"])
    assert code == 0
    result["cli"] = {t: {name: str(cli_dir / f"{name}_{t}.exr") for name in ("depth", "aif", "confidence")}
                     for t in range(len(meta["frames"]))}
    # The camera's keyframes hold float32 distances: the command given those, at the frame rendered.
    keyed = out / "keyed.txt"
    keyed.write_text("\n".join(blender_float(d) for d in distances) + "\n")
    t = VIDEO_FRAMES[0] - 1
    result["cli_camera"] = {name: str(cli_dir / f"camera_{name}.exr") for name in ("depth", "aif", "confidence")}
    code = cli(["focal-stack-depth", "--stack", *(str(SWEEP_SAMPLE / f["file"]) for f in meta["frames"]),
                "--focus-file", str(keyed), "--frame", str(t), "--method", "physical",
                "--focal-length", blender_float(cam["focal_length_mm"]), "--f-stop", blender_float(cam["f_stop"]),
                "--sensor-width", blender_float(cam["sensor_width_mm"]), "--depth", result["cli_camera"]["depth"],
                "--aif", result["cli_camera"]["aif"], "--confidence", result["cli_camera"]["confidence"], "--quiet"])
    assert code == 0
    result["distances"] = distances
    return result


def test_video_mode_equals_the_command_frame_by_frame(video: dict[str, Any]) -> None:
    """Video mode: the image sequence on Slice 1 (the one input shown), focus distances from a file;
    at each scene frame the node gives the clip frame's depth, all-in-focus and confidence of
    ``--frame all`` (the physical method, fused over the clip)."""
    assert video["hidden"] == [False] + [True] * 7
    for run in video["file"]:
        _assert_stack_equals_cli(run, video["cli"][run["frame"] - 1])
    # The frames differ: each is its own frame's depth (the sample's objects drift), not one map.
    first, last = (read_map(run["outputs"]["depth"]) for run in (video["file"][0], video["file"][-1]))
    assert max_diff(first, last) > 0.01
    assert video["leftovers"] == []


def test_video_mode_focus_from_sparse_pairs_and_from_camera_keyframes(video: dict[str, Any]) -> None:
    """'FRAME METRES' pairs at the ends of the ramps, interpolated in dioptres (the sample's sweep is
    even in dioptres), and the camera's keyframed focus distance: the same depth as the full file."""
    _assert_stack_equals_cli(video["sparse"], video["cli"][video["sparse"]["frame"] - 1])
    assert video["camera"]["frame"] == VIDEO_FRAMES[0]
    _assert_stack_equals_cli(video["camera"], video["cli_camera"])


def test_video_mode_reads_a_movie_clip(video: dict[str, Any]) -> None:
    """A Movie Clip node showing the sweep as a movie: the clip frame at the scene frame, as the
    command reads the movie (the worker decodes it as the command does)."""
    run = video["movie"]
    assert run["state"] == "DONE", run
    for name in ("depth", "confidence"):
        assert max_diff(read_map(run["outputs"][name]), read_map(video["cli_movie"][name])) <= TOLERANCE, name
    assert max_diff(read_image(run["outputs"]["aif"])[..., :3], read_image(video["cli_movie"]["aif"])) <= TOLERANCE


def test_video_mode_bad_input_is_a_message_on_the_node(video: dict[str, Any]) -> None:
    frame_0 = read_image(SWEEP_SAMPLE / "frame_000.exr")
    short = video["short"]
    assert short["state"] == "ERROR"
    assert "got 7 focus distance(s) for a 8-frame video" in short["message"], short["message"]
    np.testing.assert_array_equal(read_image(short["composite"])[..., :3], frame_0[..., :3])  # render finished
    still = video["still"]
    assert still["state"] == "ERROR"
    assert "Video mode needs a movie or an image sequence" in still["message"], still["message"]
    np.testing.assert_array_equal(read_image(still["composite"])[..., :3],
                                  read_image(SWEEP_SAMPLE / "frame_002.exr")[..., :3])


# ------------------------------------------------------------------------ the op on its own
@pytest.mark.parametrize("sizes, distances, message", [
    ([(24, 32)], [1.0], "a focal stack needs at least 2 slices, got 1"),
    ([(24, 32)] * 3, [0.5, 1.0], "got 2 focus distance(s) for 3 slice(s)"),
    ([(24, 32)] * 3, [0.5, 1.0, 1.0], "focus distance 1 m appears more than once"),
    ([(24, 32)] * 3, [0.5, 0.0, 2.0], "focus distances must be positive, got 0 m"),
    ([(24, 32), (24, 32), (12, 16)], [0.5, 1.0, 2.0], "Slice 3 is 16x12 but Slice 1 is 32x24"),
])
def test_focal_stack_op_refuses_bad_input(tmp_path: Path, sizes: list[tuple[int, int]], distances: list[float],
                                          message: str) -> None:
    """What the node shows for a bad stack: the worker op's one-sentence InputError."""
    rng = np.random.default_rng(0)
    inputs = {}
    for k, (h, w) in enumerate(sizes, start=1):
        path = tmp_path / f"slice_{k}.exr"
        write_exr(path, {c: rng.random((h, w), dtype=np.float32) for c in "RGBA"})
        inputs[f"slice_{k}"] = {"path": str(path)}
    outputs = {name: str(tmp_path / f"{name}.npy") for name in ("depth", "all_in_focus", "confidence")}
    params = {"focus_distances_m": distances, "focal_length_mm": 50.0, "device": "cpu"}
    job = Job(1, "focal_stack_depth", inputs, params, outputs, send=lambda message: None)
    op = registry()["focal_stack_depth"]
    with pytest.raises(InputError, match=re.escape(message)):
        op.run(job, op.spec.parse(params))
    assert not any(Path(p).exists() for p in outputs.values())  # nothing written


def test_focal_stack_op_reads_a_movie_clip_once_and_answers_each_frame(tmp_path: Path) -> None:
    """Video mode's op on a movie (the sweep sample as MJPEG): each frame equals ``--frame all``;
    later frames come from the clip's cache; a changed focus file is a new clip."""
    from core.worker.ops import focal_stack_depth as op_module

    meta = sample(SWEEP_SAMPLE)
    movie = _sweep_movie(tmp_path / "sweep.avi")
    focus = tmp_path / "focus.txt"
    focus.write_text("\n".join(repr(d) for d in meta["focus_distances"]) + "\n")
    lens = ["--focal-length", "50", "--f-stop", "2.8", "--sensor-width", "36"]
    assert cli(["focal-stack-depth", "--stack", str(movie), "--focus-file", str(focus), "--frame", "all",
                "--method", "physical", *lens, "--depth", str(tmp_path / "d_#.exr"), "--quiet"]) == 0
    op = registry()["focal_stack_depth"]

    def answer(frame: int) -> Any:
        params = {"stack": [str(movie)], "frame": str(frame), "focus_file": str(focus), "method": "physical",
                  "focal_length_mm": 50.0, "f_stop": 2.8, "sensor_width_mm": 36.0, "device": "cpu"}
        job = Job(1, "focal_stack_depth", {}, params, {}, send=lambda message: None)
        parsed = op.spec.parse(params)
        return op.run(job, parsed), op_module.clip_results(parsed)

    first, clip = answer(0)
    for frame in (0, 5):
        result, again = answer(frame)
        assert again is clip  # computed once for the clip
        assert max_diff(result.outputs["depth"][..., 0], read_map(tmp_path / f"d_{frame}.exr")) <= TOLERANCE
    focus.write_text("\n".join(repr(d * 1.1) for d in meta["focus_distances"]) + "\n")
    result, changed = answer(5)
    assert changed is not clip
    assert max_diff(result.outputs["depth"][..., 0], read_map(tmp_path / "d_5.exr")) > 0.01
