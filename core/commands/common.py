"""Helpers shared by subcommands: devices, tensors from files, output checks."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..errors import check
from ..imageio import IMAGE_EXTENSIONS, MAP_EXTENSIONS


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    check(device.type != "cuda" or torch.cuda.is_available(), f"device {name} requested but CUDA is not available")
    return device


def check_output_path(path: str, kinds: tuple[str, ...] = IMAGE_EXTENSIONS, what: str = "output") -> None:
    """Fail before any work is done if the output could not be written."""
    p = Path(path)
    check(p.suffix.lower() in kinds, f"unknown {what} extension {p.suffix or '(none)'} for {p}; "
                                     f"use one of {', '.join(kinds)}")
    parent = p.parent if str(p.parent) else Path(".")
    check(parent.is_dir(), f"{what} folder does not exist: {parent}")


def check_map_output(path: str, what: str) -> None:
    check_output_path(path, MAP_EXTENSIONS, what)


def image_to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, C) numpy to (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


def map_to_tensor(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W) numpy to (1, 1, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(values))[None, None].to(device)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor to (H, W, C) float32 numpy."""
    return tensor[0].detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0)
