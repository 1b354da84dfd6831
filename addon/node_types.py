"""The Refocus node types, in the order of the Add > Refocus menu: one registration list."""

from __future__ import annotations

from .node_focal_stack_depth import FocalStackDepthNode
from .node_focus_track import FocusTrackNode
from .node_layered_defocus import LayeredDefocusNode
from .node_mono_depth import MonoDepthNode
from .node_stereo_depth import StereoDepthNode

NODE_CLASSES = (LayeredDefocusNode, StereoDepthNode, MonoDepthNode, FocalStackDepthNode, FocusTrackNode)
