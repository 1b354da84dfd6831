"""The torch device a pipeline runs on, from its name (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""

from __future__ import annotations

import torch

from .errors import check


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is one, else Apple's MPS when torch has it, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        check(False, f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        check(torch.cuda.is_available(), f"device {name} requested but CUDA is not available")
        check(device.index is None or device.index < torch.cuda.device_count(),
              f"device {name} requested but there are {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        check(mps is not None and mps.is_available(), f"device {name} requested but MPS is not available")
    return device
