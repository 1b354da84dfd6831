"""Focal Stack Depth: depth and an all-in-focus image from a focal stack or a focus sweep.

Modules, in the order a stack goes through them:

* :mod:`.alignment`: focus-breathing correction and ECC refinement onto one reference slice.
* :mod:`.focus_measures`: per-pixel sharpness (modified Laplacian, variance of Laplacian, Tenengrad).
* :mod:`.depth_from_focus`: the classical method (filtered focus volume, sub-slice peak,
  confidence, all-in-focus); :mod:`.defocus_volume`: the physical method (a cost volume over
  depth from the camera's own blur, with depth from focus); :mod:`.learned`: FocalStackNet's
  weights applied to a stack. Every method returns a per-pixel uncertainty with its depth.
* :mod:`.deconvolution`: layered multi-frame Wiener all-in-focus; :mod:`.noise`: the
  Poisson-Gaussian sensor model.
* :mod:`.metrics`: the field's depth and all-in-focus metrics; :mod:`.video`: focus-sweep video to
  per-frame stacks and video depth from defocus (temporal fusion, layered Wiener all-in-focus); :mod:`.synthetic`: exact stacks rendered with layered defocus.
"""

from .alignment import Alignment, align_stack, breathing_scales
from .defocus_volume import physical_depth
from .depth_from_focus import FocusResult, depth_from_focus
from .focus_measures import focus_measure
from .metrics import MetricTable, aif_metrics, depth_metrics

__all__ = [
    "Alignment",
    "FocusResult",
    "MetricTable",
    "aif_metrics",
    "align_stack",
    "breathing_scales",
    "depth_from_focus",
    "depth_metrics",
    "focus_measure",
    "physical_depth",
]
