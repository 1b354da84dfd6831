"""sRGB transfer functions (IEC 61966-2-1), for numpy arrays and torch tensors alike.

Refocus computes in scene-linear light. 8- and 16-bit files (PNG, JPEG, TIFF) are sRGB-encoded:
they are linearised on the way in and encoded on the way out. EXR is linear and passes untouched.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def srgb_to_linear(values: Array) -> Array:
    """sRGB-encoded values in [0, 1] to scene-linear."""
    if isinstance(values, torch.Tensor):
        v = values.clamp(0.0, 1.0)
        return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    v = np.clip(values, 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(values.dtype, copy=False)


def linear_to_srgb(values: Array) -> Array:
    """Scene-linear values to sRGB-encoded [0, 1]; values above 1 clip (display-referred output)."""
    if isinstance(values, torch.Tensor):
        v = values.clamp(0.0, 1.0)
        return torch.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1.0 / 2.4) - 0.055)
    v = np.clip(values, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1.0 / 2.4) - 0.055).astype(values.dtype, copy=False)
