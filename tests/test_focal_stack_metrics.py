"""Depth-from-focus metrics on hand-made cases whose values are known by hand."""

from __future__ import annotations

import math

import pytest
import torch

from core.focal_stack.metrics import MetricTable, aif_metrics, bumpiness_map, depth_metrics


def test_hand_computed_values():
    gt = torch.tensor([[1.0, 2.0], [4.0, 0.0]]).view(1, 1, 2, 2)  # the 0 is invalid ground truth
    pred = torch.tensor([[1.5, 2.0], [2.0, 9.0]]).view(1, 1, 2, 2)
    m = {k: float(v) for k, v in depth_metrics(pred, gt).items()}
    # errors on the 3 valid pixels: 0.5, 0, -2
    assert m["MAE"] == pytest.approx(2.5 / 3)
    assert m["MSE"] == pytest.approx(4.25 / 3)
    assert m["RMSE"] == pytest.approx(math.sqrt(4.25 / 3))
    assert m["AbsRel"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert m["SqRel"] == pytest.approx((0.25 + 0 + 1.0) / 3)
    assert m["RMSE log"] == pytest.approx(math.sqrt((math.log(1.5) ** 2 + math.log(2) ** 2) / 3))
    # ratios 1.5, 1, 2 against 1.25, 1.5625, 1.953
    assert m["delta1"] == pytest.approx(1 / 3)
    assert m["delta2"] == pytest.approx(2 / 3)
    assert m["delta3"] == pytest.approx(2 / 3)


def test_per_image_then_averaged():
    """RMSE is the mean of per-image RMSEs, not the RMSE of pooled pixels."""
    gt = torch.ones(2, 1, 4, 4)
    pred = gt.clone()
    pred[0] += 1.0  # image 0: every pixel off by 1; image 1 exact
    per_image = depth_metrics(pred, gt)
    assert per_image["RMSE"].tolist() == pytest.approx([1.0, 0.0])
    table = MetricTable()
    table.add("m", per_image)
    assert table.mean("m")["RMSE"] == pytest.approx(0.5)  # pooled would be sqrt(0.5)
    assert table.count("m") == 2
    assert "| m | 2 |" in table.markdown()


def test_mask_and_empty_images():
    gt = torch.full((2, 1, 3, 3), 2.0)
    pred = torch.full((2, 1, 3, 3), 3.0)
    mask = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    mask[0, 0, 1, 1] = True
    m = depth_metrics(pred, gt, mask)
    assert float(m["MAE"][0]) == 1.0 and math.isnan(float(m["MAE"][1]))
    table = MetricTable()
    table.add("m", m)
    assert table.mean("m")["MAE"] == 1.0  # the empty image is left out, not counted as 0


def test_bumpiness_zero_for_planar_error_and_clipped_for_spikes():
    ys, xs = torch.meshgrid(torch.arange(16.0, dtype=torch.float64), torch.arange(16.0, dtype=torch.float64),
                            indexing="ij")
    gt = torch.ones(1, 1, 16, 16, dtype=torch.float64)
    tilted = gt + (0.01 * xs + 0.02 * ys).view(1, 1, 16, 16)  # an affine error has no curvature
    assert float(bumpiness_map(tilted, gt)[..., 3:-3, 3:-3].abs().max()) < 1e-12
    spiky = gt.clone()
    spiky[..., 8, 8] += 10.0
    bump = bumpiness_map(spiky, gt)
    assert float(bump.max()) == pytest.approx(0.05)  # clipped at 0.05
    assert float(depth_metrics(spiky, gt)["Bump"]) == pytest.approx(100 * float(bump.mean()))
    # Scharr second derivative of a parabola e = x^2 / 2: ([1,0,-1] twice, [3,10,3]/16 smoothing) -> 4
    parabola = gt + 0.5 * (0.001 * xs ** 2).view(1, 1, 16, 16)
    assert float(bumpiness_map(parabola, gt)[..., 4:-4, 4:-4].mean()) == pytest.approx(0.004, rel=1e-6)


def test_aif_metrics_identical_and_noisy():
    img = torch.rand(1, 3, 32, 32) * 0.8
    same = aif_metrics(img, img)
    assert float(same["SSIM"]) == pytest.approx(1.0)
    assert float(same["PSNR"]) > 100
    noisy = aif_metrics((img + 0.05 * torch.randn_like(img)).clamp(0, 1), img)
    assert float(noisy["PSNR"]) < 40 and float(noisy["SSIM"]) < 0.99
