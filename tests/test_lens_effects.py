"""Lens features beyond the thin lens: bokeh from an image, cat's eye, highlights, blur multipliers,
the sharp band, the focus map and the fast preview, each against a reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.bokeh import CatsEye, ImageBokeh, bokeh_kernel, cats_eye_kernel
from core.colour import srgb_to_linear
from core.defocus import LensEffects, layered_defocus, refocus
from core.focus_map import FAR, IN_FOCUS, NEAR, focus_map
from core.highlights import boost_highlights
from core.metrics import psnr
from core.optics import Lens, circle_of_confusion, shape_coc, sharp_band

EXACT = dict(k_max=201, merge_px=0.0)  # full resolution, every layer: the renderer's reference mode


def point(h: int, w: int, y: int, x: int, value: float = 10.0, channels: int = 1) -> torch.Tensor:
    image = torch.zeros(1, channels, h, w)
    image[..., y, x] = value
    return image


def centroid(image: torch.Tensor, y: int, x: int, r: int) -> tuple[float, float]:
    win = image[y - r:y + r + 1, x - r:x + r + 1].clamp_min(0.0)
    ys, xs = torch.meshgrid(torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij")
    return float((win * ys).sum() / win.sum()), float((win * xs).sum() / win.sum())


# ------------------------------------------------------------------------------- bokeh from an image
def l_shape() -> torch.Tensor:
    k = torch.zeros(9, 9)
    k[1:8, 2:4] = 1.0
    k[6:8, 2:8] = 1.0
    return k


@pytest.mark.parametrize("coc", [21.0, -21.0], ids=["behind", "in-front"])
def test_a_single_point_reproduces_the_kernel_image(coc):
    image = point(64, 64, 32, 32)
    out = layered_defocus(image, torch.full((1, 1, 64, 64), coc), kernel_fn=ImageBokeh(l_shape()), **EXACT)[0, 0]
    kernel = ImageBokeh(l_shape()).kernel(abs(coc), flip=coc < 0)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)
    half = kernel.shape[0] // 2
    assert torch.allclose(out[32 - half:32 + half + 1, 32 - half:32 + half + 1], 10.0 * kernel, atol=1e-5)
    # The L's foot (bottom rows of the image) lands below the point behind focus, above it in front.
    cy, _ = centroid(out, 32, 32, half)
    assert (cy > 1.0) if coc > 0 else (cy < -1.0)


def test_kernel_image_is_resampled_to_each_size_and_a_disc_image_gives_the_disc():
    size = 65
    yy, xx = torch.meshgrid(torch.arange(size) - 32.0, torch.arange(size) - 32.0, indexing="ij")
    disc = ((yy ** 2 + xx ** 2) <= 32.5 ** 2).float()  # a disc filling its frame
    bokeh = ImageBokeh(disc)
    for d in (5.0, 12.3, 30.0):
        k = bokeh.kernel(d)
        assert k.shape == bokeh_kernel(d).shape
        assert float((k - bokeh_kernel(d)).abs().sum()) < 0.08  # the same disc, up to resampling


# -------------------------------------------------------------------------------------- cat's eye
def test_cats_eye_clips_corner_bokeh_on_the_corner_side_behind_focus_and_leaves_the_centre_round():
    h, w = 120, 180
    image = point(h, w, 20, 20) + point(h, w, 60, 90)
    coc = torch.full((1, 1, h, w), 25.0)
    plain = layered_defocus(image, coc, **EXACT)[0, 0]
    eye = layered_defocus(image, coc, position_kernels=CatsEye(1.0), **EXACT)[0, 0]
    # The centre's bokeh keeps its disc (within the hat lattice's blend of near-centre kernels).
    cy, cx = centroid(eye, 60, 90, 16)
    assert abs(cy) < 0.3 and abs(cx) < 0.3
    # The top-left corner's bokeh loses its top-left side: its light moves towards the frame centre.
    py, px = centroid(plain, 20, 20, 16)
    cy, cx = centroid(eye, 20, 20, 16)
    assert abs(py) < 0.1 and abs(px) < 0.1
    assert cy > 1.0 and cx > 1.0
    # And it is narrower along the radius than across it (a cat's eye, not a shifted disc).
    win = eye[4:37, 4:37] > 0.5 * float(eye[4:37, 4:37].max())
    ys, xs = torch.nonzero(win, as_tuple=True)
    along = ((ys - ys.float().mean()) + (xs - xs.float().mean())) / math.sqrt(2)
    across = ((ys - ys.float().mean()) - (xs - xs.float().mean())) / math.sqrt(2)
    assert float(along.float().std()) < 0.8 * float(across.float().std())


def test_cats_eye_in_front_of_focus_is_clipped_on_the_centre_side():
    h, w = 120, 180
    image = point(h, w, 20, 20)
    eye = layered_defocus(image, torch.full((1, 1, h, w), -25.0), position_kernels=CatsEye(1.0), **EXACT)[0, 0]
    cy, cx = centroid(eye, 20, 20, 16)
    assert cy < -1.0 and cx < -1.0


def test_cats_eye_kernel_without_offset_is_the_aperture():
    assert torch.allclose(cats_eye_kernel(17.0, (0.0, 0.0), blades=6), bokeh_kernel(17.0, blades=6), atol=1e-6)
    clipped = cats_eye_kernel(17.0, (0.8, 0.0))
    assert float(clipped.sum()) == pytest.approx(1.0, abs=1e-6)
    assert int((clipped > 0).sum()) < int((bokeh_kernel(17.0) > 0).sum())


# ------------------------------------------------------------------------------------ highlights
def test_highlights_above_the_threshold_gain_energy_and_the_rest_is_untouched():
    image = torch.full((1, 3, 48, 48), 0.5)  # below the knee (0.72-0.9): untouched
    image[..., 24, 24] = 1.0  # a clipped LDR specular
    boosted = boost_highlights(image, threshold=0.9, gain=8.0)
    assert torch.allclose(boosted[..., 24, 24], torch.full((1, 3), 8.0))
    mask = torch.ones(48, 48, dtype=torch.bool)
    mask[24, 24] = False
    assert torch.equal(boosted[..., mask], image[..., mask])
    # Through the renderer: the specular's disc holds 8x the energy it held (over the 0.5 grey).
    lens = Lens(50, 2.0, 1.0, sensor_width_mm=6.0)
    depth = torch.full((1, 1, 48, 48), 4.0)
    plain = refocus(image, depth, lens, effects=LensEffects())
    bright = refocus(image, depth, lens, effects=LensEffects(highlight_threshold=0.9, highlight_gain=8.0))
    assert float((bright - 0.5).sum()) == pytest.approx(8.0 * float((plain - 0.5).sum()) + 3 * 7.0 * 0.5, rel=0.02)


# ------------------------------------------------------------------------ multipliers and the band
def disc_diameter(out: np.ndarray) -> float:
    """Diameter from the second moment, E[r^2] = R^2 / 2 for a uniform disc."""
    h, w = out.shape
    yy, xx = np.mgrid[:h, :w]
    r2 = (yy - h // 2) ** 2 + (xx - w // 2) ** 2
    return 2 * math.sqrt(2 * (out * r2).sum() / out.sum())


def test_far_multiplier_doubles_the_background_disc_and_near_zero_keeps_the_front_sharp():
    lens = Lens(50, 2.0, 2.0, sensor_width_mm=6.0)
    h = w = 129
    image = point(h, w, 64, 64, 50.0)
    far = torch.full((1, 1, h, w), 6.0)
    base = float(lens.circle_of_confusion(far)[0, 0, 0, 0])
    out = refocus(image, far, lens, effects=LensEffects(far_blur=2.0), k_max=201)[0, 0].numpy()
    assert disc_diameter(out) == pytest.approx(2 * base, abs=1.0)
    near = torch.full((1, 1, h, w), 1.0)
    sharp = refocus(image, near, lens, effects=LensEffects(near_blur=0.0))
    assert torch.equal(sharp, image)


def test_sharp_band_keeps_its_depths_sharp_and_blur_grows_from_its_edges():
    lens = Lens(50, 1.4, 3.0, sensor_width_mm=6.0)
    h, w = 96, 96
    lo, hi = sharp_band(lens, 2.0, 5.0, w, h)
    assert lo < 0.0 < hi
    depth = torch.full((1, 1, h, w), 4.5)  # behind focus, inside the band
    image = torch.rand(1, 3, h, w)
    kept = refocus(image, depth, lens, effects=LensEffects(sharp_band_m=(2.0, 5.0)))
    assert torch.equal(kept, image)
    coc = circle_of_confusion(torch.tensor([1.0, 2.5, 4.0, 8.0]), 3.0, 1.4, 50.0, lens.focal_length_pixels(w, h))
    shaped = shape_coc(coc, sharp_band_px=(lo, hi))
    assert float(shaped[1]) == 0.0 and float(shaped[2]) == 0.0
    assert float(shaped[0]) == pytest.approx(float(coc[0]) - lo)
    assert float(shaped[3]) == pytest.approx(float(coc[3]) - hi)


# ------------------------------------------------------------------------------------- focus map
def test_focus_map_colours_near_far_and_the_in_focus_band():
    coc = torch.tensor([-20.0, -0.5, 0.0, 0.8, 20.0]).view(1, 1, 1, 5)
    m = focus_map(coc, in_focus_px=1.0)
    assert m.shape == (1, 3, 1, 5)
    green = srgb_to_linear(torch.tensor(IN_FOCUS))
    for i in (1, 2, 3):
        assert torch.allclose(m[0, :, 0, i], green, atol=1e-6)
    assert torch.allclose(m[0, :, 0, 0], srgb_to_linear(torch.tensor(NEAR)), atol=1e-6)  # full scale
    assert torch.allclose(m[0, :, 0, 4], srgb_to_linear(torch.tensor(FAR)), atol=1e-6)


# --------------------------------------------------------------------------------------- preview
def test_preview_keeps_in_focus_detail_and_stays_close_to_the_full_render():
    torch.manual_seed(2)
    lens = Lens(50, 1.4, 2.0, sensor_width_mm=6.0)
    h, w = 96, 128
    smooth = F.interpolate(torch.rand(1, 3, 12, 16), size=(h, w), mode="bicubic", align_corners=False)
    image = (smooth + 0.1 * torch.rand(1, 3, h, w)).clamp(0, 1)  # fine texture everywhere
    depth = torch.full((1, 1, h, w), 8.0)
    depth[..., 24:72, 32:96] = 2.0  # an in-focus box over a blurred background
    full = refocus(image, depth, lens)
    fast = refocus(image, depth, lens, effects=LensEffects(edge_split=None, preview_scale=2))
    inside = (slice(None), slice(None), slice(28, 68), slice(36, 92))
    # In-focus detail comes back from the full-resolution image...
    assert float(psnr(fast[inside], image[inside])) > 40.0
    # ...and the whole frame stays close to the full render.
    assert float(psnr(fast.clamp(0, 1), full.clamp(0, 1))) > 30.0
