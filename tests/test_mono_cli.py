"""``python -m core mono-depth`` and the ``mono_depth`` pipeline and worker op: formats, metric depth, several
images, sequences, and bad input (one line, exit 2, nothing written).

An ONNX model that returns the image's red channel as inverse depth makes the expected map exact:
the test images carry their "depth" in red.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import torch

from core.cli import main
from core.errors import InputError
from core.imageio import read_image, read_map, write_exr
from core.mono.network import save_model
from core.pipelines.mono_depth import SPEC, MonoDepthParams, run as run_pipeline
from core.worker.ops import registry
from core.worker.protocol import Job
from mono_fixtures import conv_model, random_network, save_graph

torch.set_num_threads(1)
H, W = 48, 80


def run(args, capsys):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def red_image(path, seed=0):
    """An 8-bit sRGB image whose red channel (the 'inverse depth') is a box on a vertical gradient."""
    rng = np.random.default_rng(seed)
    red = np.tile(np.linspace(40, 120, H)[:, None], (1, W)).round()
    red[10:30, 20:50] = 230  # the near box
    bgr = np.stack([rng.integers(0, 255, (H, W)), rng.integers(0, 255, (H, W)), red], axis=-1).astype(np.uint8)
    cv2.imwrite(str(path), bgr)
    return path, (red / 255.0).astype(np.float32)


@pytest.fixture
def red_model(tmp_path):
    return conv_model(tmp_path / "red.onnx", (1.0, 0.0, 0.0))


def exact(red_model):
    """Options that make the ONNX model run at the image's own size: no resampling anywhere."""
    return ["--model", red_model, "--normalisation", "unit", "--size", W, "--size-multiple", 16]


def normalised(red):
    return (red - red.min()) / (red.max() - red.min())


@pytest.mark.parametrize("ext", [".exr", ".pfm", ".npy", ".png"])
def test_inverse_depth_in_every_format(tmp_path, capsys, red_model, ext):
    image, red = red_image(tmp_path / "img.png")
    out = tmp_path / f"n{ext}"
    code, err = run(["mono-depth", "--image", image, "--output", out, "--quiet", *exact(red_model)], capsys)
    assert code == 0, err
    if ext == ".png":
        raw = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint16
        values = raw.astype(np.float32) / 65535.0
    else:
        values = read_map(out)
    assert values.shape == (H, W)
    assert np.abs(values - normalised(red)).max() < 1e-4
    assert values[20, 30] == pytest.approx(1.0, abs=1e-4)  # 1 = nearest


def test_near_far_writes_planar_depth_and_the_inverse_depth(tmp_path, capsys, red_model):
    image, red = red_image(tmp_path / "img.png")
    depth, inverse = tmp_path / "z.exr", tmp_path / "n.pfm"
    code, err = run(["mono-depth", "--image", image, "--output", depth, "--inverse-depth", inverse, "--near", 2,
                     "--far", 20, *exact(red_model)], capsys)
    assert code == 0, err
    n = normalised(red)
    assert np.allclose(read_map(depth), 1.0 / (1 / 20 + n * (1 / 2 - 1 / 20)), rtol=1e-4)
    assert np.abs(read_map(inverse) - n).max() < 1e-4


def test_fit_to_known_distances(tmp_path, capsys, red_model):
    # Two picked pixels, on the box and on the bottom of the gradient, with their distances.
    image, red = red_image(tmp_path / "img.png")
    out = tmp_path / "z.npy"
    code, err = run(["mono-depth", "--image", image, "--output", out, "--fit", 35, 20, 1.5, 40, 46, 6.0, "--quiet",
                     *exact(red_model)], capsys)
    assert code == 0, err
    depth = read_map(out)
    assert depth[20, 35] == pytest.approx(1.5, rel=2e-3)
    assert float(np.median(depth[44:, 30:50])) == pytest.approx(6.0, rel=2e-2)
    # One point (the focus object) keeps far: the farthest pixel lands at far.
    code, err = run(["mono-depth", "--image", image, "--output", out, "--fit", 35, 20, 1.5, "--far", 12, "--quiet",
                     *exact(red_model)], capsys)
    assert code == 0, err
    depth = read_map(out)
    assert depth[20, 35] == pytest.approx(1.5, rel=1e-3) and depth.max() == pytest.approx(12.0, rel=1e-3)
    # The same as a focus distance at a point of the frame (the node's focus object).
    code, err = run(["mono-depth", "--image", image, "--output", tmp_path / "f.npy", "--focus-distance", 1.5,
                     "--focus-point", 35.5 / W, 20.5 / H, "--far", 12, "--quiet", *exact(red_model)], capsys)
    assert code == 0, err
    assert np.array_equal(read_map(tmp_path / "f.npy"), depth)


def test_builtin_network_file_matches_the_pipeline_at_the_input_size(tmp_path, capsys):
    weights = tmp_path / "tiny.pt"
    save_model(weights, random_network("tiny"), {"note": "random weights for a test"})
    image, _ = red_image(tmp_path / "img.png")
    out = tmp_path / "n.npy"
    code, err = run(["mono-depth", "--image", image, "--output", out, "--model", weights, "--size", 256], capsys)
    assert code == 0, err
    expected = run_pipeline(read_image(image), MonoDepthParams(model=str(weights), size_px=256))
    assert expected.info["processing_size_px"] == [256, 160]
    values = read_map(out)
    assert values.shape == (H, W)
    assert np.array_equal(values, expected.outputs["inverse_depth"][..., 0])
    assert values.max() <= 1.0 and values.min() >= 0.0 and values.max() - values.min() > 0.5


def test_several_images_folder_pattern_and_sequence(tmp_path, capsys, red_model):
    frames = tmp_path / "plate"
    frames.mkdir()
    for i in range(3):
        red_image(frames / f"f{i}.png", seed=i)
    (frames / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    out.mkdir()
    code, err = run(["mono-depth", "--image", frames, "--output", out, "--format", "pfm", "--quiet",
                     *exact(red_model)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["f0.pfm", "f1.pfm", "f2.pfm"]
    code, err = run(["mono-depth", "--image", frames / "f2.png", frames / "f0.png", "--output",
                     tmp_path / "d_{index:02d}_{stem}.npy", "--sequence", "--smoothing", 0.5, "--near", 1, "--far", 9,
                     "--quiet", *exact(red_model)], capsys)
    assert code == 0, err
    assert (tmp_path / "d_00_f2.npy").is_file() and (tmp_path / "d_01_f0.npy").is_file()
    assert read_map(tmp_path / "d_01_f0.npy").shape == (H, W)


def _corrupt(tmp_path):
    p = tmp_path / "bad.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n but no image")
    return ["--image", p]


def _nan_image(tmp_path):
    p = tmp_path / "nan.exr"
    values = np.full((H, W), 0.5, np.float32)
    values[3, 4] = np.nan
    write_exr(p, {"R": values, "G": values, "B": values})
    return ["--image", p]


def _junk_model(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_text("this is not a protobuf")
    return ["--model", p]


def _rank3_model(tmp_path):
    from onnx import TensorProto, helper

    p = save_graph(tmp_path / "rank3.onnx", [helper.make_node("Identity", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64])])
    return ["--model", p]


BAD = {
    "unreadable image": (lambda t: _corrupt(t), "corrupt PNG"),
    "missing image": (lambda t: ["--image", t / "none.png"], "not found"),
    "NaN pixels": (_nan_image, "NaN"),
    "not an ONNX model": (_junk_model, "not an ONNX model"),
    "input rank": (_rank3_model, "rank 3"),
    "near >= far": (lambda t: ["--near", 5, "--far", 5], "must be closer than far"),
    "near alone": (lambda t: ["--near", 5], "near and far together"),
    "metric PNG": (lambda t: ["--near", 1, "--far", 5, "--output", t / "z.png"], "16-bit PNG"),
    "size": (lambda t: ["--size", 8], "processing size"),
    "two images one file": (lambda t: ["--image", t / "img.png", t / "img.png"], "folder or a pattern"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, red_model, case):
    make, message = BAD[case]
    image, _ = red_image(tmp_path / "img.png")
    extra = [str(a) for a in make(tmp_path)]
    args = ["mono-depth", "--image", image, "--output", tmp_path / "out.exr", "--model", red_model,
            "--normalisation", "unit"]
    for flag in ("--image", "--output", "--model"):  # a case's own value replaces the default one
        if flag in extra:
            i = args.index(flag)
            del args[i:i + 2]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run(args + extra, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refocus mono-depth: error: ") and message in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ---------------------------------------------------------------------------------- pipeline, worker op
def test_params_are_checked_in_one_place():
    with pytest.raises(InputError, match="closer than far"):
        MonoDepthParams(near_m=10.0, far_m=3.0)
    with pytest.raises(InputError, match="needs far"):
        MonoDepthParams(fit_points=(10.0, 10.0, 2.0))
    with pytest.raises(InputError, match="leave near and far unset"):
        MonoDepthParams(fit_points=(1.0, 1.0, 2.0, 5.0, 5.0, 4.0), near_m=1.0, far_m=9.0)
    with pytest.raises(InputError, match="together"):
        MonoDepthParams(focus_distance_m=2.0, far_m=9.0)
    with pytest.raises(InputError, match="nearer than far"):
        MonoDepthParams(focus_distance_m=12.0, focus_point=(0.5, 0.5), far_m=9.0)
    with pytest.raises(InputError, match="triples"):
        MonoDepthParams(fit_points=(1.0, 1.0))
    with pytest.raises(InputError, match="for ONNX models"):
        MonoDepthParams(size_multiple_px=14)
    with pytest.raises(InputError, match="processing size"):
        MonoDepthParams(model="m.onnx", size_px=5000)
    assert MonoDepthParams(model="m.onnx").kind == "onnx" and not MonoDepthParams().metric
    assert SPEC.parse({"near_m": 1, "far_m": 30}).metric
    with pytest.raises(InputError, match="unknown parameter"):
        SPEC.parse({"near": 1})


def test_worker_op_serves_both_outputs_and_refuses_depth_without_a_scale(tmp_path, red_model):
    _, red = red_image(tmp_path / "img.png")
    linear = read_image(tmp_path / "img.png")
    write_exr(tmp_path / "in.exr", {"R": linear[..., 0], "G": linear[..., 1], "B": linear[..., 2],
                                    "A": np.ones((H, W), np.float32)})
    op = registry()["mono_depth"]
    sent = []

    def job(params, outputs):
        return Job(1, "mono_depth", {"image": {"path": str(tmp_path / "in.exr")}}, params, outputs, sent.append,
                   threading.Event())

    params = {"model": str(red_model), "normalisation": "unit", "size_px": W, "size_multiple_px": 16,
              "near_m": 1.0, "far_m": 4.0}
    j = job(params, {"depth": "d.npy", "inverse_depth": "n.npy"})
    result = op.run(j, op.spec.parse(params))
    n = normalised(red)
    assert np.abs(result.outputs["inverse_depth"][..., 0] - n).max() < 1e-4
    assert np.allclose(result.outputs["depth"][..., 0], 1 / (1 / 4 + n * (1 - 1 / 4)), rtol=1e-4)
    assert any(m.get("event") == "progress" for m in sent)
    relative = {k: v for k, v in params.items() if k not in ("near_m", "far_m")}
    with pytest.raises(InputError, match="Depth output needs"):
        op.run(job(relative, {"depth": "d.npy"}), op.spec.parse(relative))


def test_nan_pixels_pass_with_a_nan_policy(tmp_path, capsys, red_model):
    image = _nan_image(tmp_path)[1]
    out = tmp_path / "n.npy"
    code, err = run(["mono-depth", "--image", image, "--output", out, "--nan-policy", "zero", "--quiet",
                     *exact(red_model)], capsys)
    assert code == 0, err
    assert np.isfinite(read_map(out)).all()
