"""Subcommands of ``python -m core``; each module exposes ``register(subparsers)``."""

from . import defocus
from . import focal_stack_depth
from . import stereo_depth

COMMANDS = [defocus, focal_stack_depth, stereo_depth]
