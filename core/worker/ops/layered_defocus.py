"""``layered_defocus``: :mod:`core.pipelines.defocus` on the node's Image and Depth.

A linked Focus Distance input (Focus Track, a Value node) overrides the parameters' focus with
its median positive value, so a per-frame focus pull drives the node.
"""

from __future__ import annotations

import numpy as np

from ...errors import check
from ...pipelines import Result
from ...pipelines.defocus import SPEC, LayeredDefocusParams, run as pipeline
from ..protocol import Job

__all__ = ["SPEC", "run"]


def focus_from_input(values: np.ndarray) -> float:
    """A focus distance wired in as an image: the median of its positive finite pixels, metres."""
    v = values[..., 0]
    v = v[np.isfinite(v) & (v > 0)]
    check(v.size > 0, "the focus distance input holds no positive value")
    return float(np.median(v))


def run(job: Job, params: LayeredDefocusParams) -> Result:
    image, depth = job.input("image"), job.input("depth")
    focus = focus_from_input(job.input("focus_distance")) if job.has("focus_distance") else None
    return pipeline(image, depth[..., 0], params, progress=job.progress, focus_input_m=focus)
