"""The worker's ops: one module per op, found by :func:`registry`.

An op module holds ``SPEC`` (its :class:`core.contract.OpSpec`, usually its pipeline's) and
``run(job, params) -> core.pipelines.Result``: the job's input files to arrays, the pipeline, and
nothing else; the server parses the parameters against the spec before and writes the outputs
after. Adding an op is adding its module.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from ...contract import OpSpec


@dataclass(frozen=True)
class Op:
    spec: OpSpec
    run: Callable[[Any, Any], Any]  # (Job, the parsed parameters) -> core.pipelines.Result


@lru_cache(maxsize=1)
def registry() -> dict[str, Op]:
    """Every op of this core, by name."""
    ops: dict[str, Op] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec, run = getattr(module, "SPEC", None), getattr(module, "run", None)
        if isinstance(spec, OpSpec) and callable(run):
            assert spec.name not in ops, f"two worker ops are named {spec.name!r}"
            ops[spec.name] = Op(spec, run)
    return ops
