"""One pipeline per capability: what the command line, the worker and Python users all call.

Each module holds a frozen parameter dataclass (defaults, units in the field names, range checks
in ``__post_init__``), the op's :class:`core.contract.OpSpec` (``SPEC``) and ``run``, which takes
numpy arrays and the parameters and returns a :class:`Result`. Modules import torch only inside
their functions, so that :mod:`core.contract` reads every spec without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

ProgressFn = Callable[[int, int], None]


@dataclass
class Result:
    """What a pipeline computed: ``outputs[key]`` (H, W, C) float32 arrays keyed as the spec's
    outputs, top row first; ``info``: what was actually used (focus distance, method, ...);
    ``warnings``: sentences for the user (the CLI prints them, the node shows them)."""

    outputs: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
