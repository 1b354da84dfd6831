"""Synthetic stereo pairs with a known disparity, shared by the tests/test_stereo_*.py files."""

from __future__ import annotations

import cv2
import numpy as np

from core.colour import srgb_to_linear


def texture(height: int, width: int, seed: int = 0, blur: float = 1.5) -> np.ndarray:
    """(H, W, 3) sRGB-encoded band-limited random texture in [0, 1]."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), blur)
    lo, hi = noise.min(axis=(0, 1)), noise.max(axis=(0, 1))
    return (noise - lo) / (hi - lo)


def shifted_pair(height: int, width: int, shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scene-linear (H, W, 3) views of a fronto-parallel textured plane at disparity ``shift``.

    The right view at x shows what the left view shows at x + shift (cubic resampling of a wider
    texture), so every left pixel's disparity is exactly ``shift``.
    """
    margin = int(np.ceil(shift)) + 8
    tex = texture(height, width + 2 * margin, seed)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    left = cv2.remap(tex, xs + margin, ys, cv2.INTER_CUBIC)
    right = cv2.remap(tex, xs + margin + shift, ys, cv2.INTER_CUBIC)
    return srgb_to_linear(np.clip(left, 0, 1)), srgb_to_linear(np.clip(right, 0, 1))


def square_pair(height: int = 96, width: int = 128, background: int = 4, foreground: int = 16,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured square at disparity ``foreground`` over a textured plane at ``background``.

    Returns scene-linear left and right views and the left view's (H, W) true disparity; the band
    of ``foreground - background`` pixels left of the square is occluded in the right view.
    """
    back = texture(height, width + 64, seed)
    front = texture(height, width + 64, seed + 1)
    top, bottom, x0, x1 = height // 4, 3 * height // 4, width // 2 - 16, width // 2 + 24
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    in_square = (ys >= top) & (ys < bottom) & (xs >= x0) & (xs < x1)
    truth = np.where(in_square, foreground, background).astype(np.float32)
    left = np.where(in_square[..., None], front[:, 32:32 + width], back[:, 32:32 + width])
    # Right view: the square moves left by its disparity, the background by its own.
    in_square_r = (ys >= top) & (ys < bottom) & (xs >= x0 - foreground) & (xs < x1 - foreground)
    right = np.where(in_square_r[..., None], front[:, 32 + foreground:32 + foreground + width],
                     back[:, 32 + background:32 + background + width])
    return srgb_to_linear(left.astype(np.float32)), srgb_to_linear(right.astype(np.float32)), truth
