"""Shared pytest fixtures: deterministic seeds and the devices to run torch tests on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# CUDA joins the device list only where a GPU exists; CPU always runs.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)
