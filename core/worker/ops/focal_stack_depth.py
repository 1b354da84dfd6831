"""``focal_stack_depth``: :mod:`core.pipelines.focal_stack_depth` on the node's linked slices,
``slice_1`` ... ``slice_8`` in socket order (unlinked ones are left out by the add-on)."""

from __future__ import annotations

from ...pipelines import Result
from ...pipelines.focal_stack_depth import SPEC, FocalStackDepthParams, run as pipeline
from ..protocol import Job

__all__ = ["SPEC", "run"]


def run(job: Job, params: FocalStackDepthParams) -> Result:
    keys = [k for k in SPEC.input_keys() if job.has(k)]
    return pipeline([job.input(k) for k in keys], params, progress=job.progress)
