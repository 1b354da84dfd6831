"""Occlusion edges: mixed edge pixels split between the near and far layers.

Analytic: an anti-aliased two-colour edge whose depth holds one sample per pixel, where the true
coverage of every pixel is known. Rendered: a near card's silhouette over a far wall with real
Cycles (tiny), where the error band along the silhouette must fall against the unsplit render.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from blender_fixtures import blender, blender_tmp  # noqa: F401

from core.defocus import LensEffects, layered_defocus, refocus
from core.edges import EdgeSplit, edge_mask, split_edges
from core.metrics import display
from core.tensors import image_to_tensor, map_to_tensor


def antialiased_edge(h: int = 32, w: int = 48, ss: int = 8):
    """A slanted edge: near orange (CoC -12) left of it, far blue (CoC +10) right; colour box-filtered
    from ss x ss samples, CoC from the pixel's top-left sample (Blender's one-sample Z pass)."""
    ys, xs = torch.meshgrid(torch.arange(h * ss) / ss, torch.arange(w * ss) / ss, indexing="ij")
    near = (xs < 20.3 + 0.35 * ys).float()
    cover = F.avg_pool2d(near[None, None], ss)
    fg, bg = torch.tensor([0.9, 0.5, 0.1]), torch.tensor([0.1, 0.2, 0.8])
    image = cover * fg.view(1, 3, 1, 1) + (1 - cover) * bg.view(1, 3, 1, 1)
    coc = torch.where(near[::ss, ::ss] > 0, -12.0, 10.0)[None, None]
    return image, coc, cover


def test_split_recovers_the_coverage_of_mixed_pixels_and_keeps_their_colour():
    image, coc, cover = antialiased_edge()
    parts = split_edges(image, coc, EdgeSplit(snap=0.0))
    assert parts.count > 0
    b, y, x = parts.index.unbind(1)
    error = (parts.cover - cover[b, 0, y, x]).abs()
    # Off by a few per cent where a 3x3 window holds clean pixels of both sides; the odd pixel
    # whose window does not (the frame's border) falls back to mixed neighbours.
    assert float(error.mean()) < 0.03
    assert float(error.quantile(0.9)) < 0.06
    # The two parts add up to the input pixel exactly, and each part sits at its own depth.
    total = parts.near_colour + parts.far_colour  # premultiplied parts
    assert torch.allclose(total, image[b, :, y, x], atol=1e-5)
    assert torch.all(parts.near_coc == -12.0) and torch.all(parts.far_coc == 10.0)


def test_pure_pixels_and_smooth_depth_are_left_alone():
    image, coc, cover = antialiased_edge()
    parts = split_edges(image, coc)
    pure = (cover[parts.index[:, 0], 0, parts.index[:, 1], parts.index[:, 2]] - 0.5).abs() == 0.5
    assert torch.all((parts.cover[pure] == 0) | (parts.cover[pure] == 1))
    ramp = torch.linspace(-10, 10, 64).view(1, 1, 1, 64).expand(1, 1, 16, 64)
    assert not bool(edge_mask(ramp, 2.0).any())


def test_split_removes_the_background_fringe_of_a_blurred_foreground():
    """Against a reference rendered from the supersampled scene (each sample at its own depth),
    the split render is closer than the unsplit one, along the edge."""
    image, coc, _ = antialiased_edge()
    ss = 4
    fine_img = F.interpolate(image, scale_factor=ss, mode="nearest")
    ys, xs = torch.meshgrid(torch.arange(32 * ss) / ss, torch.arange(48 * ss) / ss, indexing="ij")
    near = xs < 20.3 + 0.35 * ys
    fine_img = torch.where(near, torch.tensor([0.9, 0.5, 0.1]).view(1, 3, 1, 1),
                           torch.tensor([0.1, 0.2, 0.8]).view(1, 3, 1, 1))
    fine_coc = torch.where(near, -12.0 * ss, 10.0 * ss)[None, None]
    reference = F.avg_pool2d(layered_defocus(fine_img, fine_coc, k_max=15), ss)
    plain = layered_defocus(image, coc)
    split = layered_defocus(image, coc, split=EdgeSplit())
    band = (slice(None), slice(None), slice(4, 28), slice(8, 40))
    err = lambda out: float(((out - reference)[band] ** 2).mean())  # noqa: E731
    assert err(split) < 0.7 * err(plain)


@blender
def test_rendered_silhouette_error_band_falls(tmp_path):
    """A near card's silhouette over a dark wall, real Cycles (144x96): the error along the
    silhouette, against Cycles' own depth of field, falls with the split (measured: by about a third
    with the card blurred, about a seventh with it sharp)."""
    from blender_scenes import agreement as ag

    settings = ag.scaled(ag.BENCH_SETTINGS, width=144, height=96, samples=96, adaptive_threshold=0.01)
    results = {}
    for name in ("near_card_blur", "near_card_sharp"):
        scene = next(s for s in ag.scenes() if s.name == name)
        aif, cycles = ag.render_pair(scene, settings, tmp_path)
        cpu = torch.device("cpu")
        x, d = image_to_tensor(aif.image, cpu), map_to_tensor(aif.depth, cpu)
        truth = image_to_tensor(cycles, cpu)
        coc = scene.lens.circle_of_confusion(d)
        # The band: pixels within the blur's reach of a depth edge.
        reach = int(abs(float(coc.min()))) // 2 + 3
        band = F.max_pool2d(edge_mask(coc, 2.0).float(), 2 * reach + 1, 1, reach) > 0
        assert float(band.float().mean()) > 0.02
        errors = []
        for effects in (LensEffects(), LensEffects(edge_split=EdgeSplit())):
            out = refocus(x, d, scene.lens, effects=effects)
            # On display sRGB, as the agreement bench scores (core.metrics.display).
            errors.append(float(((display(out) - display(truth)) ** 2 * band).sum() / band.sum() / 3))
        results[name] = errors
        assert errors[1] < 0.9 * errors[0], (name, errors)
