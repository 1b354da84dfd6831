"""One error type for bad input, and the checks that raise it.

Everything a user can get wrong (a missing file, a depth map of the wrong size, an f-stop of zero)
raises :class:`InputError` with one sentence that names the culprit. The command line turns it into
a single line on stderr and exit code 2; library callers catch it like any ``ValueError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # torch is imported where a check needs it, so the CLI starts without it
    import torch


class InputError(ValueError):
    """Bad input from the user: the message is one sentence, fit to show as it is."""


def fail(message: str) -> NoReturn:
    raise InputError(message)


def check(condition: bool, message: str) -> None:
    """Raise :class:`InputError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InputError(message)


def check_positive(value: float, name: str) -> None:
    check(value == value and value > 0.0, f"{name} must be positive, got {value}")


def check_image(image: "torch.Tensor", name: str = "image") -> None:
    """Check a (B, C, H, W) floating-point tensor."""
    import torch

    import torch

    check(isinstance(image, torch.Tensor), f"{name} must be a torch.Tensor")
    check(image.dim() == 4, f"{name} must have shape (B, C, H, W), got {tuple(image.shape)}")
    check(image.is_floating_point(), f"{name} must be floating point, got {image.dtype}")
    check(image.shape[-1] > 0 and image.shape[-2] > 0, f"{name} is empty: {tuple(image.shape)}")


def check_map(values: "torch.Tensor", image: "torch.Tensor", name: str) -> None:
    """Check a (B, 1, H, W) per-pixel map that goes with a (B, C, H, W) image."""
    check_image(values, name)
    check(values.shape[1] == 1, f"{name} must have one channel, got {values.shape[1]}")
    check(
        values.shape[-2:] == image.shape[-2:],
        f"{name} is {values.shape[-1]}x{values.shape[-2]} but the image is "
        f"{image.shape[-1]}x{image.shape[-2]}",
    )
    check(
        values.shape[0] in (1, image.shape[0]),
        f"{name} has batch size {values.shape[0]}, the image {image.shape[0]}",
    )


def check_depth(depth: "torch.Tensor", name: str = "depth") -> None:
    """Depth must be finite and strictly positive (metres)."""
    import torch

    import torch

    with torch.no_grad():
        finite = torch.isfinite(depth)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            fail(f"{name} has {bad} NaN or infinite pixel(s)")
        low = float(depth.min())
        check(low > 0.0, f"{name} must be positive everywhere, its minimum is {low:g}")
