"""``mono_depth``: :mod:`core.pipelines.mono_depth` on the node's Image.

The Depth output needs the scene's scale: near and far, or the fit to the focus object (the node
sends its pixel and planar distance with far). Without them only Inverse Depth can be served, and
asking for Depth is refused before the model runs.
"""

from __future__ import annotations

from ...errors import check
from ...pipelines import Result
from ...pipelines.mono_depth import SPEC, MonoDepthParams, run as pipeline
from ..protocol import Job

__all__ = ["SPEC", "run"]


def run(job: Job, params: MonoDepthParams) -> Result:
    check("depth" not in job.outputs or params.metric,
          "the Depth output needs near and far, or a fit to the focus object; use Inverse Depth for relative depth")
    return pipeline(job.input("image"), params, progress=job.progress)
