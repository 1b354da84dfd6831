"""The one error the add-on shows to artists: on the node, in the status bar and in the render log."""

from __future__ import annotations


class RefocusError(Exception):
    """Something the artist can fix (an unlinked input, a camera without depth of field, a missing
    worker Python) or that they must know about (the worker stopped). One sentence, no traceback."""
