"""Layered defocus: analytic cases, occlusion, HDR energy, downsampling and gradients."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.bokeh import bokeh_kernel
from core.defocus import LayeredDefocus, LensEffects, layered_defocus, plan_layers, refocus
from core.errors import InputError
from core.metrics import psnr
from core.optics import Lens


def disc_convolution(image: torch.Tensor, diameter: float, flip: bool) -> torch.Tensor:
    """Reference: one normalised convolution with the bokeh disc (zero outside, renormalised)."""
    k = bokeh_kernel(diameter, flip=flip).flip(0, 1)
    pad = k.shape[-1] // 2
    c = image.shape[1]
    num = F.conv2d(F.pad(image, (pad,) * 4), k.expand(c, 1, *k.shape), groups=c)
    den = F.conv2d(F.pad(torch.ones_like(image[:, :1]), (pad,) * 4), k[None, None])
    return num / den


def extent(values: np.ndarray, threshold: float) -> tuple[float, float]:
    """Width and height in pixels of the region above threshold."""
    rows, cols = np.nonzero(values > threshold)
    return cols.ptp() + 1.0, rows.ptp() + 1.0


def test_constant_depth_equals_one_disc_convolution(device):
    image = torch.rand(2, 3, 48, 64, device=device)
    coc = torch.full((2, 1, 48, 64), 9.0, device=device)
    out = layered_defocus(image, coc)
    ref = disc_convolution(image.cpu(), 9.0, flip=False)
    assert torch.allclose(out.cpu(), ref, atol=1e-5)


def test_constant_depth_in_front_turns_the_aperture(device):
    image = torch.rand(1, 3, 40, 40, device=device)
    out = layered_defocus(image, torch.full((1, 1, 40, 40), -7.0, device=device), blades=5)
    k = bokeh_kernel(7.0, blades=5, flip=True).flip(0, 1)
    pad = k.shape[-1] // 2
    num = F.conv2d(F.pad(image.cpu(), (pad,) * 4), k.expand(3, 1, *k.shape), groups=3)
    den = F.conv2d(F.pad(torch.ones(1, 1, 40, 40), (pad,) * 4), k[None, None])
    assert torch.allclose(out.cpu(), num / den, atol=1e-5)


# A small sensor makes blur large enough to matter at test resolutions.
SENSOR_MM = 6.0


def test_in_focus_pixels_are_unchanged(device):
    lens = Lens(50, 1.4, 3.0, SENSOR_MM)
    image = torch.rand(1, 3, 64, 96, device=device)
    depth = torch.full((1, 1, 64, 96), 3.0, device=device)
    depth[..., :, 48:] = 12.0  # background behind the focus plane, blurred
    # Random noise has no mixed edge pixels to split (the split would read texture as mixing).
    out = refocus(image, depth, lens, effects=LensEffects())
    # Every in-focus pixel is bit-exact, right up to the edge against the blurred background.
    assert torch.equal(out[..., :48], image[..., :48])
    assert not torch.allclose(out[..., 60:], image[..., 60:])


def test_defocused_point_light_is_the_thin_lens_disc():
    lens = Lens(50, 1.4, 1.0, SENSOR_MM)
    h = w = 256
    depth_m = 6.0
    image = torch.zeros(1, 3, h, w)
    image[..., h // 2, w // 2] = 50.0  # an HDR point: 50x white
    depth = torch.full((1, 1, h, w), depth_m)
    out = refocus(image, depth, lens)[0, 0].numpy()
    expected = float(lens.circle_of_confusion(depth)[0, 0, 0, 0])
    assert expected > 40  # downsampled layers are exercised
    # The disc's size from its second moment (E[r^2] = R^2 / 2 for a uniform disc): no threshold.
    yy, xx = np.mgrid[:h, :w]
    r2 = (yy - h // 2) ** 2 + (xx - w // 2) ** 2
    assert 2 * math.sqrt(2 * (out * r2).sum() / out.sum()) == pytest.approx(expected, abs=1.0)
    width, height = extent(out, 0.5 * out.max())
    assert width == pytest.approx(expected, abs=2.0)
    assert height == pytest.approx(expected, abs=2.0)
    # HDR energy is kept: the disc holds the point's 50 units, spread evenly (a bright disc, not a smear).
    # (Within 2.5 %: on pure black, clipping the undershoot of a downsampled layer's edge
    # sharpening adds a little light; over any background it is absorbed.)
    assert out.sum() == pytest.approx(50.0, rel=0.025)
    r = np.sqrt(r2)
    inside = out[r < 0.4 * expected]
    assert inside.std() / inside.mean() < 0.05
    assert inside.mean() == pytest.approx(50.0 / (math.pi * expected ** 2 / 4), rel=0.1)
    # Nothing beyond the disc but the soft edge of its downsampled layer (2 x 7 px here).
    assert out[r > 0.5 * expected + 14].max() < 0.01 * inside.mean()


def test_point_in_front_of_focus_is_a_disc_too():
    lens = Lens(50, 2.0, 4.0, SENSOR_MM)
    image = torch.zeros(1, 1, 160, 160)
    image[..., 80, 80] = 10.0
    depth = torch.full((1, 1, 160, 160), 1.5)
    out = refocus(image, depth, lens)[0, 0].numpy()
    expected = abs(lens.coc_scale(160, 160) * (1 / 4.0 - 1 / 1.5))
    width, _ = extent(out, 0.5 * out.max())
    assert width == pytest.approx(expected, abs=1.0)


def test_polygon_bokeh_has_blade_corners():
    image = torch.zeros(1, 1, 128, 128)
    image[..., 64, 64] = 1.0
    out = layered_defocus(image, torch.full((1, 1, 128, 128), 61.0), blades=6, k_max=11)[0, 0].numpy()
    up = cv2.resize(out / out.max(), None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    contours, _ = cv2.findContours((up > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    assert len(cv2.approxPolyDP(contour, 0.03 * cv2.arcLength(contour, True), True)) == 6


def test_defocused_foreground_spreads_over_sharp_background():
    lens = Lens(50, 1.4, 5.0, SENSOR_MM)
    h, w = 96, 128
    image = torch.zeros(1, 3, h, w)
    image[:, 1] = 0.2  # green background, in focus
    depth = torch.full((1, 1, h, w), 5.0)
    image[:, 0, 32:64, 32:64] = 1.0  # red square in front, out of focus
    image[:, 1, 32:64, 32:64] = 0.0
    depth[..., 32:64, 32:64] = 1.0
    out = refocus(image, depth, lens)
    radius = abs(float(lens.circle_of_confusion(depth)[0, 0, 48, 48])) / 2
    assert radius > 6
    # Just outside the square the red foreground now covers part of the sharp background...
    assert out[0, 0, 48, 64 + 2] > 0.2
    # ...and beyond the blur radius (plus the bilinear reach of its downsampled layer) it is untouched.
    far = int(64 + radius + 6)
    assert torch.equal(out[..., 48, far:], image[..., 48, far:])


def test_in_focus_foreground_has_clean_edge_and_no_halo():
    lens = Lens(50, 1.4, 1.0, SENSOR_MM)
    h, w = 96, 128
    image = torch.full((1, 3, h, w), 0.5)  # grey background, far and blurred
    depth = torch.full((1, 1, h, w), 8.0)
    image[..., 32:64, 32:64] = 1.0  # white square, in focus
    depth[..., 32:64, 32:64] = 1.0
    out = refocus(image, depth, lens)
    # No background bleeds onto the sharp foreground: it stays exactly as it was.
    assert torch.equal(out[..., 32:64, 32:64], image[..., 32:64, 32:64])
    # No halo: the blurred background around it keeps its own colour (no white spill, no dark ring).
    ring = torch.ones(h, w, dtype=torch.bool)
    ring[32:64, 32:64] = False
    assert torch.allclose(out[..., ring], torch.full_like(out[..., ring], 0.5), atol=1e-5)


def test_adaptive_downsampling_stays_close_to_full_resolution():
    torch.manual_seed(1)
    lens = Lens(50, 1.4, 2.0, SENSOR_MM)
    h, w = 96, 128
    # A smooth texture with a slanted floor of depths, as blur targets.
    image = F.interpolate(torch.rand(1, 3, 12, 16), size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    depth = torch.linspace(0.8, 10.0, h).view(1, 1, h, 1).expand(1, 1, h, w).contiguous()
    full = refocus(image, depth, lens, k_max=201)
    fast = refocus(image, depth, lens, k_max=11)
    assert float(psnr(fast, full)) > 38.0


def test_batch_with_per_image_focus_equals_separate_calls():
    lens = Lens(35, 2.0, 2.0, SENSOR_MM)
    image = torch.rand(2, 3, 40, 56)
    depth = torch.linspace(1.0, 6.0, 56).view(1, 1, 1, 56).expand(2, 1, 40, 56).contiguous()
    focus = torch.tensor([1.5, 4.0]).view(2, 1, 1, 1)
    both = refocus(image, depth, lens, focus)
    for i, f in enumerate((1.5, 4.0)):
        one = refocus(image[i:i + 1], depth[i:i + 1], lens, f)
        assert torch.allclose(both[i:i + 1], one, atol=1e-5)


def test_rgba_premultiplied_alpha_blurs_with_colour():
    image = torch.zeros(1, 4, 32, 32)
    image[:, :, 12:20, 12:20] = 1.0  # opaque white square, premultiplied
    out = layered_defocus(image, torch.full((1, 1, 32, 32), 5.0))
    assert torch.allclose(out[:, 0], out[:, 3], atol=1e-6)  # colour stays premultiplied by alpha
    assert float(out[:, 3].sum()) == pytest.approx(64.0, rel=1e-4)


@pytest.mark.parametrize("options", [dict(mask="linear"), dict(mask="tanh", alpha=5.0), dict(mask="tanh", alpha=1e3)],
                         ids=["linear", "tanh-soft", "tanh-paper"])
def test_gradients_reach_image_depth_and_focus(options):
    lens = Lens(50, 1.4, 2.0, SENSOR_MM)
    image = torch.rand(1, 3, 24, 32, requires_grad=True)
    # A ramp fine enough that, even with the paper's alpha, some pixels sit on a window edge.
    depth = torch.linspace(1.0, 5.0, 24 * 32).view(1, 1, 24, 32).clone().requires_grad_(True)
    focus = torch.tensor(2.0, requires_grad=True)
    out = LayeredDefocus(lens, **options)(image, depth, focus)
    (out * torch.rand_like(out)).sum().backward()
    for name, t in (("image", image), ("depth", depth), ("focus", focus)):
        assert t.grad is not None and torch.isfinite(t.grad).all(), name
        assert float(t.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("mask", ["linear", "tanh"])
def test_layer_masks_sum_to_one(mask):
    coc = torch.linspace(-20.3, 33.7, 5001)
    layers = plan_layers(float(coc.min()), float(coc.max()))
    total = sum(layer.mask(coc, mask, 1e3) for layer in layers)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    # Linear masks share a pixel between its two nearest layers only, in proportion.
    if mask == "linear":
        weights = torch.stack([layer.mask(coc, mask, 1e3) for layer in layers])
        assert int((weights > 0).sum(dim=0).max()) <= 2
        centres = torch.tensor([layer.centre for layer in layers])
        assert torch.allclose((weights * centres[:, None]).sum(dim=0), coc, atol=1e-4)


def test_gradient_is_correct_numerically():
    torch.manual_seed(3)
    image = torch.rand(1, 1, 10, 12, dtype=torch.float64, requires_grad=True)
    coc = (torch.linspace(-3.0, 3.0, 12, dtype=torch.float64).view(1, 1, 1, 12).expand(1, 1, 10, 12)
           + 0.1 * torch.rand(1, 1, 10, 12, dtype=torch.float64)).clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda i, c: layered_defocus(i, c, alpha=2.0), (image, coc), atol=1e-5)


def test_layers_are_one_pixel_of_blur_apart_and_cover_the_range():
    layers = plan_layers(-12.3, 30.2, step=1.0, k_max=11)
    assert layers[0].centre >= 30.2 and layers[-1].centre <= -12.3
    centres = [layer.centre for layer in layers]
    assert centres == sorted(centres, reverse=True)  # back to front
    assert np.allclose(np.diff(centres), -1.0)
    assert 0.0 in centres
    assert layers[0].upper is None and layers[-1].lower is None
    assert all(layer.scale == 1 for layer in layers if layer.diameter <= 8)
    assert max(layer.scale for layer in layers) >= 3


def test_rejects_bad_input():
    image = torch.rand(1, 3, 16, 16)
    with pytest.raises(InputError):
        layered_defocus(image, torch.zeros(1, 1, 8, 8))
    with pytest.raises(InputError):
        layered_defocus(image[0], torch.zeros(1, 1, 16, 16))
    with pytest.raises(InputError):
        refocus(image, torch.ones(1, 1, 16, 16), Lens(50, 0.0, 2.0))
    with pytest.raises(InputError):
        refocus(image, torch.ones(1, 1, 16, 16), Lens(50, 2.0, 0.01))
