"""``stereo_depth``: :mod:`core.pipelines.stereo_depth` on the node's Left and Right views.

One difference from the command, for the compositor's sake: depth behind infinity (disparity at
or below zero after the convergence offset) is ``inf`` in the command's files but a far finite
depth here (``core.focal_stack.slices.MAX_DEPTH_M``), since Layered Defocus needs a finite depth.
"""

from __future__ import annotations

import numpy as np

from ...pipelines import Result
from ...pipelines.stereo_depth import SPEC, StereoDepthParams, run as pipeline
from ..protocol import Job

__all__ = ["SPEC", "run"]


def run(job: Job, params: StereoDepthParams) -> Result:
    from ...focal_stack.slices import MAX_DEPTH_M

    result = pipeline(job.input("left"), job.input("right"), params, progress=job.progress,
                      depth="depth" in job.outputs)
    if "depth" in result.outputs:
        depth = result.outputs["depth"]
        result.outputs["depth"] = np.where(np.isfinite(depth), depth, np.float32(MAX_DEPTH_M)).astype(np.float32)
    return result
