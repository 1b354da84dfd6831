"""Refocus core: depth and physically based refocusing, headless (never imports bpy).

Import what you need from the modules, or the common entry points from here::

    from core import Lens, refocus
    out = refocus(image, depth, Lens(focal_length_mm=50, f_stop=2, focus_distance=3))
"""

from .bokeh import bokeh_kernel
from .defocus import LayeredDefocus, layered_defocus, refocus
from .errors import InputError
from .optics import Lens, circle_of_confusion, focal_length_pixels

__all__ = [
    "InputError",
    "LayeredDefocus",
    "Lens",
    "bokeh_kernel",
    "circle_of_confusion",
    "focal_length_pixels",
    "layered_defocus",
    "refocus",
]
__version__ = "0.1.0"
