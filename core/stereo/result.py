"""What a stereo method returns: disparity with its confidence and the masks behind it."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class StereoResult:
    """Per-pixel output of a stereo method for the left view, all (B, 1, H, W).

    Attributes:
        disparity: pixels, ``x_left - x_right``; dense (every pixel has a finite value).
        confidence: [0, 1], higher where the disparity is more likely right.
        valid: bool, pixels measured directly (e.g. passed the left-right check); the rest were filled.
        occluded: bool, pixels found to be hidden from the right view.
    """

    disparity: torch.Tensor
    confidence: torch.Tensor
    valid: torch.Tensor
    occluded: torch.Tensor

    def to(self, device: torch.device | str) -> "StereoResult":
        return StereoResult(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @staticmethod
    def cat(results: list["StereoResult"]) -> "StereoResult":
        """Stack single-image results along the batch dimension."""
        return StereoResult(**{f.name: torch.cat([getattr(r, f.name) for r in results]) for f in fields(StereoResult)})
