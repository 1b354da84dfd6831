"""Focal-stack alignment: undo focus breathing, then the small motions a hand-held stack has.

A real lens moves away from the sensor as it focuses closer, to the image distance
s_n = F_n f / (F_n - f) (thin lens; F_n the focus distance, f the focal length). The field of view
shrinks as 1 / s_n, so the slices of a focal stack are magnified copies of one another ("focus
breathing"; DfF in the Wild, seed 004, Eq. 1). The slice focused nearest has the largest s_n and
the narrowest view; every other slice sees all of it, so it is the natural reference: slice n is
magnified about the optical centre by s_ref / s_n >= 1 to match it, which needs no extrapolation.

What metadata cannot give (a principal point that drifts as the lens moves, a hand that shakes,
a focus motor that misreports its position) is refined per slice by OpenCV's ECC maximisation
(Evangelidis & Psarakis, the homography baseline of seed 004), started from the breathing
estimate. ECC maximises a normalised correlation, so the exposure and contrast changes of
defocus do not bias it the way a brightness-constancy flow is biased; it runs on a reduced copy
of the frames, where the difference in blur between two slices is smaller (seed 001's insight
for its coarse-to-fine alignment) and where it is fast.

Warps are 3x3 homographies in pixel coordinates (pixel centres at integers) that map a
reference pixel to where the same scene point lies in the slice: the slice is sampled there.
Blender's camera does not breathe; stacks rendered with Cycles need no alignment at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import check, check_image
from .focus_measures import luminance

Motion = Literal["translation", "euclidean", "affine", "homography"]

_ECC_MOTIONS = {
    "translation": cv2.MOTION_TRANSLATION,
    "euclidean": cv2.MOTION_EUCLIDEAN,
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}


@dataclass(frozen=True)
class Alignment:
    """An aligned focal stack.

    Attributes:
        images: (N, C, H, W) slices resampled onto the reference slice's pixel grid.
        warps: (N, 3, 3) float64 homographies, reference pixel -> slice pixel.
        reference: index of the reference slice (its warp is the identity).
        seconds: wall time of the ECC refinement (0 when not refined).
    """

    images: torch.Tensor
    warps: torch.Tensor
    reference: int
    seconds: float = 0.0


def image_distances(focus_distances: torch.Tensor | Sequence[float], focal_length_mm: float) -> torch.Tensor:
    """Lens-to-sensor distance s_n = F f / (F - f) in metres for each focus distance (metres)."""
    focus = torch.as_tensor(focus_distances, dtype=torch.float64)
    f = focal_length_mm * 1e-3
    check(focal_length_mm > 0, f"focal length must be positive, got {focal_length_mm} mm")
    check(bool((focus > f).all()), f"every focus distance must lie beyond the focal length ({focal_length_mm} mm)")
    return focus * f / (focus - f)


def breathing_scales(
    focus_distances: torch.Tensor | Sequence[float], focal_length_mm: float, reference: int | None = None
) -> tuple[torch.Tensor, int]:
    """Magnification that brings each slice onto the reference slice's field of view.

    Args:
        focus_distances: (N,) focus distance of each slice, metres (``inf`` is allowed).
        focal_length_mm: focal length of the lens, millimetres.
        reference: slice to align to; by default the one focused nearest (narrowest view), so
            every scale is >= 1 and no slice has to be extrapolated.

    Returns:
        ((N,) float64 scales s_ref / s_n, the reference index).

    Example:
        >>> scales, ref = breathing_scales([0.1, 0.5, float("inf")], 5.0)
        >>> ref, [round(float(s), 4) for s in scales]
        (0, [1.0, 1.0408, 1.0526])
    """
    s = image_distances(torch.as_tensor(focus_distances, dtype=torch.float64).nan_to_num(posinf=1e12), focal_length_mm)
    ref = int(torch.argmax(s)) if reference is None else reference
    check(0 <= ref < s.numel(), f"reference slice {ref} out of range for {s.numel()} slices")
    return s[ref] / s, ref


def scale_about_centre(scale: float, width: int, height: int, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """3x3 warp (reference pixel -> slice pixel) of a slice magnified by ``scale`` about the centre.

    A point at offset r from the centre of the reference lies at r / scale in a slice whose view is
    ``scale`` times wider, shifted by ``shift`` (x, y) pixels.
    """
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    inv = 1.0 / scale
    return np.array([[inv, 0.0, cx - inv * cx + shift[0]],
                     [0.0, inv, cy - inv * cy + shift[1]],
                     [0.0, 0.0, 1.0]])


def warp_images(images: torch.Tensor, warps: torch.Tensor, mode: str = "bicubic") -> torch.Tensor:
    """Resample each (C, H, W) slice of a (N, C, H, W) stack at ``warps[n] @ (x, y, 1)``.

    Bicubic by default: bilinear resampling at fractional offsets blurs by up to half a pixel, and
    would make a warped slice look less sharp than the unwarped reference. Borders are clamped.
    """
    n, _, h, w = images.shape
    dtype, device = images.dtype, images.device
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=device),
                            torch.arange(w, dtype=torch.float64, device=device), indexing="ij")
    ones = torch.ones_like(xs)
    pts = torch.stack([xs, ys, ones], dim=0).reshape(3, -1)
    mapped = warps.to(device=device, dtype=torch.float64) @ pts  # (N, 3, H*W)
    mapped = mapped[:, :2] / mapped[:, 2:3]
    # grid_sample's normalised coordinates with align_corners=True: -1 and 1 are pixel centres 0 and W-1.
    gx = mapped[:, 0] / max(w - 1, 1) * 2 - 1
    gy = mapped[:, 1] / max(h - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], dim=-1).reshape(n, h, w, 2).to(dtype)
    return F.grid_sample(images, grid, mode=mode, padding_mode="border", align_corners=True)


def _ecc_grey(image: torch.Tensor, factor: float) -> np.ndarray:
    """(C, H, W) slice to a reduced float32 grey numpy frame for ECC, sRGB-like contrast."""
    grey = luminance(image.detach()).clamp(0.0, 1.0).pow(1.0 / 2.2)[0].to("cpu", torch.float32).numpy()
    if factor < 1.0:
        grey = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(grey)


def refine_warps(
    images: torch.Tensor,
    warps: np.ndarray,
    reference: int,
    motion: Motion = "affine",
    max_side: int = 384,
    iterations: int = 60,
    epsilon: float = 1e-5,
) -> np.ndarray:
    """Refine each slice's warp to the reference by ECC, on frames reduced to ``max_side`` pixels.

    Args:
        images: (N, C, H, W) unaligned slices (scene-linear).
        warps: (N, 3, 3) initial warps (e.g. from :func:`breathing_scales`).
        reference: index of the reference slice.
        motion: ECC motion model; "affine" covers zoom, shift and the small shear of a tilted
            lens; "homography" also a hand-held camera's rotation.

    Returns:
        (N, 3, 3) refined warps at full resolution. A slice where ECC fails to converge keeps its
        initial warp: the breathing model alone is better than a diverged fit.
    """
    check(motion in _ECC_MOTIONS, f"unknown motion model {motion!r}; use one of {', '.join(_ECC_MOTIONS)}")
    h, w = images.shape[-2:]
    factor = min(1.0, max_side / max(h, w))
    # Pixel centres map as x' = factor (x + 0.5) - 0.5 between full and reduced frames.
    offset = 0.5 * factor - 0.5
    to_small = np.array([[factor, 0.0, offset], [0.0, factor, offset], [0.0, 0.0, 1.0]])
    to_full = np.linalg.inv(to_small)
    template = _ecc_grey(images[reference], factor)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, epsilon)
    out = warps.copy()
    for n in range(images.shape[0]):
        if n == reference:
            continue
        small = to_small @ warps[n] @ to_full
        small = small / small[2, 2]
        initial = small.astype(np.float32) if motion == "homography" else small[:2].astype(np.float32)
        try:
            _, fitted = cv2.findTransformECC(template, _ecc_grey(images[n], factor), initial.copy(),
                                             _ECC_MOTIONS[motion], criteria, None, 5)
        except cv2.error:
            continue
        full = np.eye(3)
        full[: fitted.shape[0]] = fitted
        out[n] = to_full @ full @ to_small
    return out


def align_stack(
    stack: torch.Tensor,
    focus_distances: torch.Tensor | Sequence[float] | None = None,
    focal_length_mm: float | None = None,
    *,
    reference: int | None = None,
    refine: Motion | Literal["auto"] | None = "auto",
    max_side: int = 384,
) -> Alignment:
    """Align the slices of a focal stack to one reference slice.

    Args:
        stack: (N, C, H, W) slices, scene-linear.
        focus_distances: (N,) metres; with ``focal_length_mm`` they give the breathing scales.
            Without them alignment starts from the identity.
        focal_length_mm: lens focal length in millimetres.
        reference: slice to align to (default: the narrowest view, else slice 0).
        refine: ECC motion model for the residual motion, or ``None`` for breathing alone.
            ``"auto"``: "translation" when the breathing scales are known (the principal-point
            drift of seed 004), "affine" when the zoom has to be estimated too. With the scales
            known, leave zoom and shear alone: a focus difference that varies across the frame
            (a slanted surface) biases a free affine fit by up to half a percent of scale, about
            1.5 px at the corners of a 512 px frame, while translation alone stays within 0.2 px.
        max_side: ECC runs on frames reduced to this longest side.

    Returns:
        :class:`Alignment` with the resampled stack and the warps.
    """
    check_image(stack, "focal stack")
    n, _, h, w = stack.shape
    known = focus_distances is not None and focal_length_mm is not None
    if refine == "auto":
        refine = "translation" if known else "affine"
    if known:
        check(len(focus_distances) == n, f"{len(focus_distances)} focus distances for {n} slices")
        scales, ref = breathing_scales(focus_distances, focal_length_mm, reference)
        warps = np.stack([scale_about_centre(float(s), w, h) for s in scales])
    else:
        ref = 0 if reference is None else reference
        check(0 <= ref < n, f"reference slice {ref} out of range for {n} slices")
        warps = np.stack([np.eye(3)] * n)
    seconds = 0.0
    if refine is not None:
        start = time.perf_counter()
        warps = refine_warps(stack, warps, ref, refine, max_side)
        seconds = time.perf_counter() - start
    warps_t = torch.from_numpy(warps)
    identity = all(np.allclose(m, np.eye(3)) for m in warps)
    images = stack if identity else warp_images(stack, warps_t)
    images = images.clone() if identity else images
    images[ref] = stack[ref]  # the reference is never resampled
    return Alignment(images=images, warps=warps_t, reference=ref, seconds=seconds)
