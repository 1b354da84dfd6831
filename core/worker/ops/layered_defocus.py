"""``layered_defocus``: :mod:`core.pipelines.defocus` on the node's Image and Depth.

A linked Focus Distance input (Focus Track, a Value node) overrides the parameters' focus with
its median positive value, so a per-frame focus pull drives the node.
"""

from __future__ import annotations

import numpy as np

from ...pipelines import Result
from ...pipelines.defocus import SPEC, LayeredDefocusParams, run as pipeline
from ..protocol import Job

__all__ = ["SPEC", "run"]


NO_LINKED_FOCUS = ("the linked Focus Distance holds no distance at this frame (its source failed or lost the "
                   "subject): the node's own focus is used")


def focus_from_input(values: np.ndarray) -> float | None:
    """A focus distance wired in as an image: the median of its positive finite pixels, metres;
    ``None`` when it holds none (a Focus Track that failed writes zeros)."""
    v = values[..., 0]
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.median(v)) if v.size else None


def bokeh_kernel_image(values: np.ndarray) -> np.ndarray:
    """A Bokeh Image input (H, W, C) as the (H, W) kernel core normalises: its Rec. 709 luminance
    (alpha, if any, dropped: Blender's Bokeh Image node is opaque black outside the aperture)."""
    if values.shape[2] >= 3:
        return (0.2126 * values[..., 0] + 0.7152 * values[..., 1] + 0.0722 * values[..., 2]).astype(np.float32)
    return values[..., 0]


def run(job: Job, params: LayeredDefocusParams) -> Result:
    image, depth = job.input("image"), job.input("depth")
    focus = focus_from_input(job.input("focus_distance")) if job.has("focus_distance") else None
    bokeh = bokeh_kernel_image(job.input("bokeh_image")) if job.has("bokeh_image") else None
    result = pipeline(image, depth[..., 0], params, progress=job.progress, focus_input_m=focus,
                      bokeh_image=bokeh, focus_map="focus_map" in job.outputs)
    if job.has("focus_distance") and focus is None:
        result.warnings.append(NO_LINKED_FOCUS)  # never pass the image through for a missing value
    return result
