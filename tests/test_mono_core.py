"""Mono Depth inference in core: backends (built-in network, ONNX Runtime), metric depth, guided upsampling, sequences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

from core.errors import InputError
from core.mono.backends import (IMAGENET_MEAN, IMAGENET_STD, NetworkBackend, OnnxBackend, min_max_normalise,
                                network_image, open_onnx, processing_size)
from core.mono.export import export_onnx
from core.mono.metric import (KnownPoint, depth_from_inverse, fit_scale_shift, fit_to_points,
                              inverse_depth_near_far, near_far_scale_shift)
from core.mono.sequence import SequenceAligner, align_sequence, flicker
from core.mono.upsample import guided_upsample
from mono_fixtures import conv_model, random_network, save_graph

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------- backends
def test_processing_size_keeps_aspect_on_multiples():
    assert processing_size(1080, 1920, 518, 14) == (294, 518)
    assert processing_size(1080, 1920, 512, 32) == (288, 512)
    assert processing_size(4000, 3000, 512, 32) == (512, 384)
    assert processing_size(10, 1000, 512, 32) == (32, 512)  # never below one multiple
    with pytest.raises(InputError):
        processing_size(100, 100, 16, 32)


def test_network_backend_takes_its_size_from_the_weights():
    model = random_network("tiny")
    assert NetworkBackend(model).processing_size(1080, 1920) == (288, 512)  # no meta: 512
    model.meta = {"inference_size": 192}  # what load_model attaches from the weight file
    assert NetworkBackend(model).processing_size(1080, 1920) == (96, 192)
    assert NetworkBackend(model, size=320).processing_size(1080, 1920) == (192, 320)


def test_network_image_encodes_linear_to_srgb():
    linear = torch.tensor([0.0, 0.2140, 1.0, 4.0]).view(1, 1, 2, 2)
    out = network_image(linear)
    assert out.shape == (1, 3, 2, 2)
    assert torch.allclose(out[0, 0].flatten(), torch.tensor([0.0, 0.5, 1.0, 1.0]), atol=1e-3)
    rgba = torch.rand(2, 4, 5, 6)
    assert network_image(rgba, linear=False).shape == (2, 3, 5, 6)


def test_onnx_export_of_the_network_matches_torch(tmp_path):
    """The built-in network exported by torch.onnx and run by ONNX Runtime gives torch's map within 1e-4."""
    model = random_network()
    path = tmp_path / "mono.onnx"
    export_onnx(model, path, 256, 512)
    session, info = open_onnx(path)
    assert (info.input_name, info.output_name, info.fixed_size) == ("image", "inverse_depth", (256, 512))
    x = torch.rand(1, 3, 256, 512, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)["inverse_depth"]
    raw = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    assert float(expected.max() - expected.min()) > 0.5  # a map worth comparing, not a constant
    assert float((raw - expected).abs().max()) < 1e-4
    # Through the two backends, from an odd-sized image: same resize, same normalisation, same map.
    image = torch.rand(1, 3, 301, 597, generator=torch.Generator().manual_seed(2))
    ours = NetworkBackend(model, size=512).predict(image)
    theirs = OnnxBackend(path, normalisation="unit", multiple=32).predict(image)
    assert ours.shape == theirs.shape == (1, 1, 256, 512)
    assert float((ours - theirs).abs().max()) < 1e-4


def test_onnx_depth_output_is_inverted_and_normalised(tmp_path):
    # depth = 1 / (red + 0.5): a model that returns depth (larger is farther).
    path = conv_model(tmp_path / "depth.onnx", (1.0, 0.0, 0.0), 0.5, then="Reciprocal")
    image = torch.rand(1, 3, 70, 140, generator=torch.Generator().manual_seed(3))
    backend = OnnxBackend(path, size=140, normalisation="unit", output="depth")
    assert backend.processing_size(70, 140) == (70, 140)
    out = backend.predict(image)
    assert torch.allclose(out, min_max_normalise(image[:, :1]), atol=1e-5)
    # Read as inverse depth, the same model orders the scene the other way round.
    flipped = OnnxBackend(path, size=140, normalisation="unit", output="inverse_depth").predict(image)
    assert float(torch.corrcoef(torch.stack([out.flatten(), flipped.flatten()]))[0, 1]) < -0.9


def test_onnx_imagenet_normalisation(tmp_path):
    # relu(green): min-max normalisation hides any affine map of the input, a ReLU does not.
    path = conv_model(tmp_path / "relu.onnx", (0.0, 1.0, 0.0), then="Relu")
    image = torch.rand(2, 3, 28, 42, generator=torch.Generator().manual_seed(4))
    out = OnnxBackend(path, size=42, normalisation="imagenet").predict(image)
    green = (image[:, 1:2] - IMAGENET_MEAN[1]) / IMAGENET_STD[1]
    assert out.shape == (2, 1, 28, 42)
    assert torch.allclose(out, min_max_normalise(green.clamp_min(0.0)), atol=1e-5)
    plain = OnnxBackend(path, size=42, normalisation="unit").predict(image)
    assert torch.allclose(plain, min_max_normalise(image[:, 1:2]), atol=1e-5)


def test_onnx_depth_anything_style_rank3_output(tmp_path):
    """Depth Anything V2 exports return (N, H, W): the map is read all the same."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [0.0, 0.0, 1.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    path = save_graph(tmp_path / "da.onnx", [helper.make_node("Conv", ["pixel_values", "w"], ["y"]),
                                             helper.make_node("Squeeze", ["y", "axes"], ["predicted_depth"])],
                      [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
                      [helper.make_tensor_value_info("predicted_depth", TensorProto.FLOAT, ["batch", "height", "width"])],
                      [w, axes])
    backend = OnnxBackend(path, size=56, normalisation="unit")
    assert (backend.info.input_name, backend.info.output_name) == ("pixel_values", "predicted_depth")
    image = torch.rand(1, 3, 28, 56, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(backend.predict(image), min_max_normalise(image[:, 2:3]), atol=1e-5)


def test_onnx_fixed_input_size_wins(tmp_path):
    path = conv_model(tmp_path / "fixed.onnx", (1.0, 0.0, 0.0), shape=(1, 3, 56, 84))
    backend = OnnxBackend(path, size=518)
    assert backend.processing_size(1080, 1920) == (56, 84)
    assert backend.predict(torch.rand(1, 3, 100, 100)).shape == (1, 1, 56, 84)


def test_onnx_bad_models_are_input_errors(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(InputError, match="not an ONNX model"):
        OnnxBackend(junk)
    with pytest.raises(InputError, match="not found"):
        OnnxBackend(tmp_path / "missing.onnx")
    rank3 = save_graph(tmp_path / "rank3.onnx", [helper.make_node("Identity", ["x"], ["y"])],
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64])])
    with pytest.raises(InputError, match="rank 3"):
        OnnxBackend(rank3)
    two = save_graph(tmp_path / "two.onnx", [helper.make_node("Add", ["x", "z"], ["y"])],
                     [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in "xz"],
                     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    with pytest.raises(InputError, match="2 inputs"):
        OnnxBackend(two)
    grey = conv_model(tmp_path / "grey.onnx", (1.0, 0.0, 0.0), shape=(1, 1, 8, 8))
    with pytest.raises(InputError, match="1 channels"):
        OnnxBackend(grey)
    with pytest.raises(InputError, match="normalisation"):
        OnnxBackend(grey, normalisation="zscore")


# ------------------------------------------------------------------------------------------ metric
def test_near_far_maps_the_ends_and_is_linear_in_inverse_depth():
    n = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3)
    depth = depth_from_inverse(inverse_depth_near_far(n, 2.0, 10.0))
    assert torch.allclose(depth.flatten(), torch.tensor([10.0, 1.0 / (0.1 + 0.25 * 0.4), 2.0]))
    with pytest.raises(InputError, match="closer than far"):
        near_far_scale_shift(5.0, 5.0)
    with pytest.raises(InputError, match="closer than far"):
        near_far_scale_shift(8.0, 3.0)


def test_scale_shift_fit_recovers_a_known_gauge():
    g = torch.Generator().manual_seed(5)
    n = torch.rand(2, 1, 20, 30, generator=g)
    target = torch.stack([0.7 * n[0] + 0.05, 0.2 * n[1] + 0.5])
    mask = torch.rand(2, 1, 20, 30, generator=g) > 0.5
    scale, shift = fit_scale_shift(n, target, mask)
    assert torch.allclose(scale, torch.tensor([0.7, 0.2]), atol=1e-5)
    assert torch.allclose(shift, torch.tensor([0.05, 0.5]), atol=1e-5)


def test_fit_to_points():
    # A scene whose truth is 1/D = 0.4 n + 0.1: pixels at n = 0.9 and 0.15.
    n = torch.full((1, 1, 40, 60), 0.15)
    n[..., 5:15, 5:15] = 0.9
    near, far = KnownPoint(10, 10, 1.0 / (0.4 * 0.9 + 0.1)), KnownPoint(40, 30, 1.0 / (0.4 * 0.15 + 0.1))
    fit = fit_to_points(n, [near, far])
    assert fit.scale == pytest.approx(0.4, rel=1e-5) and fit.shift == pytest.approx(0.1, rel=1e-5)
    # One point (the focus object) with far kept: n = 0 stays at far, the point lands at its distance.
    one = fit_to_points(n, [KnownPoint(10, 10, 2.0)], far_m=20.0)
    assert one.shift == pytest.approx(1 / 20.0)
    assert float(one.inverse_depth(torch.tensor(0.9))) == pytest.approx(0.5)
    with pytest.raises(InputError, match="give far"):
        fit_to_points(n, [KnownPoint(10, 10, 2.0)])
    with pytest.raises(InputError, match="contradict"):
        fit_to_points(n, [KnownPoint(10, 10, 9.0), KnownPoint(40, 30, 1.0)])
    with pytest.raises(InputError, match="outside"):
        fit_to_points(n, [KnownPoint(60, 10, 2.0)], far_m=20.0)


def test_depth_from_inverse_clamps_past_infinity():
    assert depth_from_inverse(torch.tensor([-0.1, 0.0, 0.5])).tolist() == pytest.approx([1e4, 1e4, 2.0])


# ---------------------------------------------------------------------------------------- upsample
def _crossing(row: torch.Tensor) -> float:
    """Column (pixel centres at k + 0.5) where a falling profile crosses 0.5."""
    i = int((row < 0.5).nonzero()[0])
    return i - 0.5 + float((row[i - 1] - 0.5) / (row[i - 1] - row[i]))


def test_guided_upsampling_puts_a_depth_step_on_the_image_edge_at_4k():
    """A 512 px prediction of a step, upsampled to 3840x2160: the step lands on the image's edge and
    stays sharp, where bilinear upsampling leaves a ramp (and, off by a few pixels, a misplaced one)."""
    h, w, edge = 2160, 3840, 1203.0  # the edge falls inside a 7.5-pixel low-resolution cell
    x = torch.arange(w, dtype=torch.float32) + 0.5
    image = torch.full((1, 3, h, w), 0.2)
    image[..., : int(edge)] = 0.7  # the near object is brighter
    image += 0.02 * torch.randn(image.shape, generator=torch.Generator().manual_seed(6))  # sensor noise
    truth = (x < edge).float().expand(1, 1, 1, w)
    for offset in (0.0, 3.0):  # a prediction on the edge, and one 3 px (0.4 network pixel) off
        predicted = ((x - offset) < edge).float().view(1, 1, 1, w).expand(1, 1, h, w)
        low = F.interpolate(predicted, size=(288, 512), mode="area")
        guided = guided_upsample(low, image)
        bilinear = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
        g_row, b_row = guided[0, 0].mean(0), bilinear[0, 0].mean(0)
        assert abs(_crossing(g_row) - edge) < 0.5
        assert float((guided - truth).abs().mean()) < 0.5 * float((bilinear - truth).abs().mean())
        if offset == 0.0:
            assert int(((g_row > 0.1) & (g_row < 0.9)).sum()) <= 1  # a step, not bilinear's ramp
            assert int(((b_row > 0.1) & (b_row < 0.9)).sum()) >= 6
        else:
            assert abs(_crossing(b_row) - edge) > 2.0
    # Flat image, smooth depth: nothing of the image's noise is copied into the depth.
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 1, 32, 64).contiguous()
    noisy = 0.5 + 0.01 * torch.randn(1, 3, 256, 512, generator=torch.Generator().manual_seed(7))
    up = guided_upsample(ramp, noisy)
    smooth = F.interpolate(ramp, size=(256, 512), mode="bilinear", align_corners=False)
    assert float((up - smooth).abs().max()) < 0.02


# ---------------------------------------------------------------------------------------- sequence
def synthetic_clip(frames: int = 24, noise: float = 0.003):
    """A static scene (ground plane, a box) and a near disc moving right until it leaves the frame.

    Returns (truth, independent predictions with a random scale and shift each, static masks), (T, 1, H, W)."""
    g = torch.Generator().manual_seed(8)
    h, w = 96, 128
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    scene = 0.1 + 0.5 * yy / h
    scene = torch.where((xx > 20) & (xx < 50) & (yy > 30) & (yy < 70), torch.full_like(scene, 0.8), scene)
    truths, predictions, static = [], [], []
    for t in range(frames):
        disc = (xx - 70 - 4.0 * t) ** 2 + (yy - 40) ** 2 < 12 ** 2
        truth = torch.where(disc, torch.full_like(scene, 0.95), scene)
        scale, shift = 0.6 + 0.8 * torch.rand(1, generator=g), 0.3 * (torch.rand(1, generator=g) - 0.5)
        truths.append(truth)
        predictions.append(scale * truth + shift + noise * torch.randn(h, w, generator=g))
        static.append(~disc)
    return torch.stack(truths)[:, None], torch.stack(predictions)[:, None], torch.stack(static)[:, None]


def test_alignment_removes_per_frame_gauge_flicker():
    truth, independent, static = synthetic_clip()
    normalised = min_max_normalise(independent)  # what a backend hands on: min-max per frame
    aligned = align_sequence(independent)
    aligned_normalised = align_sequence(normalised)
    smoothed = align_sequence(normalised, smoothing=0.5)
    f_independent, f_aligned = flicker(independent, static), flicker(aligned, static)
    f_normalised, f_aligned_n, f_smoothed = (flicker(normalised, static), flicker(aligned_normalised, static),
                                             flicker(smoothed, static))
    assert f_aligned < 0.05 * f_independent  # 0.136 -> 0.0044 when measured
    assert f_aligned_n < 0.7 * f_normalised  # min-max jumps as the disc leaves: 0.0081 -> 0.0044
    assert f_smoothed < 0.6 * f_aligned_n
    # Aligned frames stay in frame 0's gauge: an affine image of the truth, to the noise.
    s, t = fit_scale_shift(truth[:1], aligned[:1])
    assert float((s * truth[-1] + t - aligned[-1]).abs().mean()) < 0.01
    # Smoothing follows the moving disc rather than leaving a trail of it.
    disc = ~static[10]
    assert float((smoothed[10][disc] - aligned_normalised[10][disc]).abs().mean()) < 0.02


def test_flicker_counts_static_pixels_only():
    frames = torch.zeros(3, 1, 2, 2)
    frames[1, 0, 0, 0], frames[2, 0, 0, 0] = 1.0, 1.0  # one pixel moves between frames 0 and 1
    frames[2, 0, 1, 1] = 0.5
    assert flicker(frames) == pytest.approx((1.0 + 0.5) / 8)
    static = torch.ones(2, 2, dtype=torch.bool)
    static[0, 0] = False
    assert flicker(frames, static) == pytest.approx(0.5 / 6)
    pairs = torch.ones(2, 1, 2, 2, dtype=torch.bool)
    pairs[0, 0, 0, 0] = False  # the moving pixel is excluded from the first pair only
    assert flicker(frames, pairs) == pytest.approx(0.5 / 7)


def test_sequence_aligner_checks_its_settings():
    with pytest.raises(InputError):
        SequenceAligner(smoothing=1.0)
    aligner = SequenceAligner()
    first = torch.rand(1, 1, 8, 8)
    assert torch.equal(aligner(first), first)
    assert torch.allclose(aligner(2.0 * first + 1.0), first, atol=1e-5)
    assert aligner.scales[-1] == pytest.approx(0.5, rel=1e-4)
