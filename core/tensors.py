"""numpy images to torch tensors and back, at the edges of the pipelines."""

from __future__ import annotations

import numpy as np
import torch


def image_to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, C) numpy to (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None].to(device)


def map_to_tensor(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W) numpy to (1, 1, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None].to(device)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor to (H, W, C) float32 numpy."""
    return tensor[0].detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0)

