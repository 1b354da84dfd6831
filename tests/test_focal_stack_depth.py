"""Classical depth from focus on stacks rendered with the project's own layered defocus."""

from __future__ import annotations

import pytest
import torch

from core.errors import InputError
from core.focal_stack.depth_from_focus import depth_from_focus, refine_peak
from core.focal_stack.focus_measures import MEASURES, focus_measure, tenengrad
from core.focal_stack.guided_filter import guided_filter
from core.focal_stack.synthetic import dioptre_spaced, noise_texture, render_stack, slanted_plane
from core.optics import Lens

SIZE = 128
NEAR, FAR = 0.4, 2.0
LENS = Lens(focal_length_mm=50.0, f_stop=2.0, sensor_width_mm=36.0)  # 4.4 px of blur per dioptre at 128 px


@pytest.fixture(scope="module")
def slanted():
    """A textured plane slanting from 0.4 m to 2 m, seen through 5 slices evenly spaced in dioptres."""
    g = torch.Generator().manual_seed(3)
    image = noise_texture(SIZE, SIZE, g)
    depth = slanted_plane(SIZE, SIZE, NEAR, FAR)
    focus = dioptre_spaced(NEAR, FAR, 5)
    return image, depth, focus, render_stack(image, depth, LENS, focus)


def sharpness(image: torch.Tensor) -> float:
    """Mean Tenengrad of an image's luminance (window 1): larger is sharper."""
    grey = image.mean(dim=-3, keepdim=True).reshape(-1, 1, *image.shape[-2:])
    return float(tenengrad(grey, window=1).mean())


@pytest.mark.parametrize("measure", sorted(MEASURES))
def test_slanted_plane_depth_within_a_fifth_of_a_slice(slanted, measure, device):
    image, depth, focus, stack = slanted
    out = depth_from_focus(stack.to(device), focus, measure=measure)
    margin = 8  # the focus window and the guided filter see past the frame's edge
    est = out.depth[..., margin:-margin, margin:-margin].cpu()
    gt = depth[..., margin:-margin, margin:-margin]
    slice_step = (1 / NEAR - 1 / FAR) / 4  # dioptres between slices
    dioptre_error = (1 / est - 1 / gt).abs()
    # Bound: mean error a fifth of the slice spacing (measured: about a tenth), and no pixel off by
    # more than one slice. AbsRel of the metric depth stays below 7 %.
    assert float(dioptre_error.mean()) < 0.2 * slice_step
    assert float(dioptre_error.max()) < 1.0 * slice_step
    assert float(((est - gt).abs() / gt).mean()) < 0.07


def test_all_in_focus_sharper_than_any_slice_and_close_to_truth(slanted):
    image, _, focus, stack = slanted
    out = depth_from_focus(stack, focus)
    aif = out.all_in_focus
    assert sharpness(aif) > max(sharpness(s) for s in stack)
    err_aif = float((aif - image).abs().mean())
    assert err_aif < 0.5 * min(float((s - image[0]).abs().mean()) for s in stack)


def test_slice_order_and_units(slanted):
    _, depth, focus, stack = slanted
    forward = depth_from_focus(stack, focus)
    perm = [3, 0, 4, 1, 2]
    shuffled = depth_from_focus(stack[perm], [focus[i] for i in perm])
    assert torch.allclose(forward.depth, shuffled.depth, rtol=1e-5)
    # Without distances: a fractional slice index in the given order (far slice first here).
    index = depth_from_focus(stack).depth
    assert float(index.min()) >= 0.0 and float(index.max()) <= 4.0
    left, right = float(index[..., :, 8:24].mean()), float(index[..., :, -24:-8].mean())
    assert left > 3.0 and right < 1.0  # the near edge of the plane is in the last (nearest) slice


def test_confidence_high_on_texture_low_where_flat():
    g = torch.Generator().manual_seed(5)
    image = noise_texture(64, 64, g)
    image[..., :, 32:] = 0.3  # right half: a flat grey card, nothing to focus on
    depth = torch.full((1, 1, 64, 64), 1.0)
    focus = dioptre_spaced(0.5, 2.0, 4)
    wide_open = Lens(focal_length_mm=50.0, f_stop=1.0, sensor_width_mm=36.0)  # 2.2 px of blur between slices
    out = depth_from_focus(render_stack(image, depth, wide_open, focus), focus, radius=0)
    conf = out.confidence
    assert float(conf.min()) >= 0.0 and float(conf.max()) <= 1.0
    assert float(conf[..., 8:-8, 4:20].mean()) > 0.3  # measured 0.43
    assert float(conf[..., 8:-8, 44:60].mean()) < 0.01  # measured 1e-6


def test_refine_peak_recovers_the_vertex_of_a_gaussian_focus_curve():
    positions = torch.tensor([0.5, 1.0, 1.8, 2.5, 3.0], dtype=torch.float64)  # uneven, in dioptres
    truth = torch.tensor([1.3, 2.1, 0.9], dtype=torch.float64)
    volume = torch.exp(-((positions.view(5, 1, 1, 1) - truth.view(1, 1, 1, 3)) ** 2) / 0.5)
    refined, best = refine_peak(volume, positions)
    assert torch.allclose(refined.flatten(), truth, atol=1e-9)
    assert best.flatten().tolist() == [1, 2, 1]


def test_guided_filter_keeps_edges_and_flattens_noise():
    guide = torch.zeros(1, 1, 48, 48)
    guide[..., 24:] = 1.0
    noisy = guide + 0.1 * torch.randn(1, 1, 48, 48)
    out = guided_filter(guide, noisy, radius=4, eps=1e-3)
    assert float((out - guide)[..., 4:-4, :].abs().mean()) < 0.5 * float((noisy - guide)[..., 4:-4, :].abs().mean())
    assert float(out[..., 23].mean()) < 0.2 and float(out[..., 24].mean()) > 0.8  # the edge stays put


def test_focus_measures_prefer_the_sharp_copy():
    g = torch.Generator().manual_seed(7)
    sharp = noise_texture(48, 48, g).mean(dim=1, keepdim=True)
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2, count_include_pad=False)
    for name in MEASURES:
        m = focus_measure(torch.cat([sharp, blurred]), name)
        assert bool((m[0] > m[1])[..., 6:-6, 6:-6].all()), name


@pytest.mark.parametrize("bad, message", [
    ([0.5, 0.5, 1.0], "appears more than once"),
    ([0.5, -1.0, 1.0], "must be positive"),
    ([0.5, 1.0], "got 2 focus distance"),
])
def test_bad_focus_distances(slanted, bad, message):
    stack = slanted[3][:3]
    with pytest.raises(InputError, match=message):
        depth_from_focus(stack, bad)


def test_one_slice_is_not_a_stack(slanted):
    with pytest.raises(InputError, match="at least 2 slices"):
        depth_from_focus(slanted[3][:1], [1.0])


def test_filtered_focus_volume_batches_stacks_like_one_at_a_time():
    """The classical cost volume FocalStackNet reads (B stacks at once) is depth_from_focus's."""
    from core.focal_stack.depth_from_focus import filtered_focus_volume

    stacks = torch.rand(2, 3, 3, 40, 52)
    raw, filtered = filtered_focus_volume(stacks)
    assert raw.shape == filtered.shape == (2, 3, 1, 40, 52)
    for k in range(2):
        one_raw, one_filtered = filtered_focus_volume(stacks[k])
        torch.testing.assert_close(raw[k], one_raw, rtol=0, atol=0)
        torch.testing.assert_close(filtered[k], one_filtered, rtol=1e-6, atol=1e-7)
    assert not torch.equal(filtered, raw)
    torch.testing.assert_close(filtered_focus_volume(stacks, radius=0)[1], raw, rtol=0, atol=0)
