"""The physical (camera-aware) cost volume, its uncertainty, the noise model and the deconvolution.

Stacks are rendered with the project's layered defocus, Cycles' thin-lens camera, so the blur each
slice shows is exactly the blur core.optics predicts for the lens.
"""

from __future__ import annotations

import math

import pytest
import torch

from core.errors import InputError
from core.focal_stack.deconvolution import layered_wiener
from core.focal_stack.defocus_volume import blurred_levels, check_blur_apart, coc_per_dioptre, physical_depth
from core.focal_stack.otf import disc_otf
from core.focal_stack.depth_from_focus import depth_from_focus
from core.focal_stack.noise import noise_sigma, poisson_gaussian
from core.focal_stack.synthetic import dioptre_spaced, noise_texture, render_stack, slanted_plane
from core.optics import Lens

SIZE = 96
FIFTY = Lens(focal_length_mm=50.0, f_stop=2.0, sensor_width_mm=36.0)  # 3.3 px per dioptre at 96 px
PHONE = Lens(focal_length_mm=4.3, f_stop=1.8, sensor_width_mm=5.6)    # 0.04 px per dioptre at 96 px


def _abs_rel(est: torch.Tensor, gt: torch.Tensor, margin: int = 6) -> float:
    e, g = est[..., margin:-margin, margin:-margin], gt[..., margin:-margin, margin:-margin]
    return float(((e - g).abs() / g).mean())


@pytest.fixture(scope="module")
def slanted():
    """A textured plane slanting from 0.9 to 6 m, 5 slices over 0.8-10 m, 50 mm f/1.4 at 96 px."""
    g = torch.Generator().manual_seed(11)
    image = noise_texture(SIZE, SIZE, g)
    depth = slanted_plane(SIZE, SIZE, 0.9, 6.0)
    lens = Lens(focal_length_mm=50.0, f_stop=1.4, sensor_width_mm=36.0)
    focus = dioptre_spaced(0.8, 10.0, 5)
    return image, depth, lens, focus, render_stack(image, depth, lens, focus)


def test_physical_depth_beats_focus_alone_on_a_slanted_plane(slanted, device):
    image, depth, lens, focus, stack = slanted
    physical = physical_depth(stack.to(device), focus, lens)
    classical = depth_from_focus(stack, focus)
    err_p, err_c = _abs_rel(physical.depth.cpu(), depth), _abs_rel(classical.depth, depth)
    assert err_p < 0.08  # measured 0.042
    assert err_p < 0.75 * err_c  # measured 0.042 against 0.067
    for result in (physical, classical):  # every method returns an uncertainty with its depth
        assert result.uncertainty is not None and result.uncertainty.shape == result.depth.shape
        assert float(result.uncertainty.min()) >= 0.0


def test_the_camera_matters_a_wrong_f_number_misplaces_depth(slanted):
    """The cost volume uses the blur the camera makes: told f/4 for an f/1.4 stack, the blur it expects
    from a given defocus is 2.9 times too small, so it puts the plane far from the truth."""
    image, depth, lens, focus, stack = slanted
    right = _abs_rel(physical_depth(stack, focus, lens).depth, depth)
    wrong = _abs_rel(physical_depth(stack, focus, Lens(50.0, 4.0, sensor_width_mm=36.0)).depth, depth)
    assert wrong > 2 * right
    # the same camera as a blur per dioptre (a dataset record's coc_px_per_dioptre) gives the same depth
    k = lens.coc_scale(SIZE, SIZE)
    same = physical_depth(stack, focus, coc_per_dioptre_px=k).depth
    assert torch.allclose(same, physical_depth(stack, focus, lens).depth, atol=1e-5)


def test_texture_less_region_is_uncertain_not_nearest(device):
    """A flat grey card beside texture, with sensor noise: the card gets low confidence and a large
    uncertainty, and is not put at the nearest slice; the textured half is confident."""
    g = torch.Generator().manual_seed(5)
    image = noise_texture(SIZE, SIZE, g)
    image[..., :, SIZE // 2:] = 0.3
    depth = torch.full((1, 1, SIZE, SIZE), 2.0)
    lens = Lens(focal_length_mm=50.0, f_stop=1.4, sensor_width_mm=36.0)
    focus = dioptre_spaced(0.8, 10.0, 5)
    stack = poisson_gaussian(render_stack(image, depth, lens, focus), generator=torch.Generator().manual_seed(1))
    out = physical_depth(stack.to(device), focus, lens)
    conf, unc = out.confidence.cpu(), out.inverse_uncertainty.cpu()
    flat, textured = (..., slice(8, -8), slice(SIZE // 2 + 12, -4)), (..., slice(8, -8), slice(4, SIZE // 2 - 12))
    assert float(conf[flat].mean()) < 0.2 < float(conf[textured].mean())  # measured 0.12 and 0.35
    assert float(unc[flat].mean()) > 1.2 * float(unc[textured].mean())  # measured 0.29 and 0.22 dioptres
    # The classical focus measure puts 40 % of the card within 0.05 D of the nearest slice; not so here.
    nearest = 1.0 / 0.8
    assert float((1.0 / out.depth.cpu()[flat] > nearest - 0.05).float().mean()) < 0.1
    assert abs(float(out.depth.cpu()[textured].median()) - 2.0) < 0.3  # measured 1.83


def test_bad_cameras_and_distances_are_input_errors(slanted):
    image, depth, lens, focus, stack = slanted
    with pytest.raises(InputError, match="blurs the focus range apart"):
        physical_depth(stack[:, :, :32, :32], [3.0, 3.5, 4.0, 4.5, 5.0], PHONE)
    with pytest.raises(InputError, match="focus distance"):
        physical_depth(stack, focus[:4], lens)
    with pytest.raises(InputError, match="more than once"):
        physical_depth(stack, [1.0, 1.0, 2.0, 3.0, 4.0], lens)
    with pytest.raises(InputError, match="positive"):
        physical_depth(stack, [-1.0, 1.5, 2.0, 3.0, 4.0], lens)
    with pytest.raises(InputError, match="needs the camera"):
        physical_depth(stack, focus)
    with pytest.raises(InputError, match="beyond the focal length"):
        check_blur_apart(torch.tensor([5.0, 5.0]), torch.tensor([10.0, 30.0]), 50.0, torch.tensor([0.1, 0.03]))


def test_breathing_lens_blurs_more_per_dioptre_when_focused_near():
    focus = torch.tensor([0.2, 1.0, math.inf], dtype=torch.float64)
    flat = coc_per_dioptre(FIFTY, focus, 96, 64)
    real = coc_per_dioptre(Lens(50.0, 2.0, sensor_width_mm=36.0, breathing=True), focus, 96, 64)
    assert torch.allclose(flat, torch.full_like(flat, FIFTY.coc_scale(96, 64)))
    assert torch.allclose(real, flat * torch.tensor([0.2 / 0.15, 1.0 / 0.95, 1.0], dtype=torch.float64))


def test_disc_blur_keeps_energy_and_spreads_to_its_radius():
    impulse = torch.zeros(1, 1, 65, 65)
    impulse[..., 32, 32] = 1.0
    levels = blurred_levels(impulse, torch.tensor([0.0, 4.0, 12.0], dtype=torch.float64))
    assert torch.allclose(levels.sum(dim=(1, 2, 3)), torch.ones(3), atol=1e-3)
    assert torch.allclose(levels[0], impulse, atol=1e-5)
    row = levels[2, 0, 32]
    assert float(row[32 - 5:32 + 6].min()) > 0.5 * float(row[32])  # inside the 6 px radius: flat
    assert float(row[32 + 8:].abs().max()) < 0.05 * float(row[32])  # outside it: nothing
    assert float(disc_otf(torch.tensor([0.0]), 8, 8).min()) == 1.0


def test_layered_wiener_is_sharper_than_every_slice(slanted):
    image, depth, lens, focus, stack = slanted
    inv = 1.0 / torch.tensor(focus, dtype=torch.float64)
    k = torch.full((5,), lens.coc_scale(SIZE, SIZE), dtype=torch.float64)
    aif = layered_wiener(stack, inv, k, 1.0 / depth)
    err = float((aif - image).abs()[..., 6:-6, 6:-6].mean())
    assert err < 0.6 * min(float((s - image[0]).abs()[..., 6:-6, 6:-6].mean()) for s in stack)


def test_poisson_gaussian_noise_has_the_stated_variance_and_is_measured_back():
    g = torch.Generator().manual_seed(0)
    x = torch.full((1, 1, 256, 256), 0.25)
    y = poisson_gaussian(x, gain=0.004, read_noise=0.01, generator=g)
    expected = 0.004 * 0.25 + 0.01 ** 2
    assert abs(float(y.var()) / expected - 1.0) < 0.05
    assert abs(float(y.mean()) - 0.25) < 1e-3
    smooth = noise_texture(256, 256, g)[:, :1]
    sigma = float(noise_sigma(smooth + 0.02 * torch.randn(smooth.shape, generator=g))[0])
    assert abs(sigma / 0.02 - 1.0) < 0.15
    assert float(noise_sigma(smooth)[0]) < 0.005
