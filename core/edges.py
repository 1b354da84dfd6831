"""Occlusion edges: split the colour of mixed edge pixels between the near and the far surface.

An anti-aliased render's pixel on a silhouette holds light from two surfaces, the near object's and
the background's, but its depth (Blender's Z pass takes one sample) names only one of them. A
layered renderer then blurs the whole pixel with that one depth: a defocused foreground drags a
fringe of background colour out with it, or a sharp background keeps a hard rim of foreground
colour where the foreground itself has melted away.

:func:`split_edges` finds occlusion edges as jumps in the CoC map, and models each edge pixel as a
mixture ``I = a F + (1 - a) B`` of a near colour F and a far colour B, both estimated from the
nearby pixels that are clearly on either side (a local two-colour model, as in colour-line
matting). The pixel's coverage ``a`` is the projection of its colour on the line from B to F.
Each part then joins the layer of its own depth: the near part ``a (F + r)`` at the nearest CoC in
the pixel's neighbourhood, the far part ``(1 - a) (B + r)`` at the farthest, with ``r`` the
residual that keeps the sum equal to the input pixel exactly (texture the two-colour model misses;
measured, sharing it this way beats giving it all to the sharper part).

All colours are scene-linear; CoC in signed pixels (:mod:`core.optics`). Works on any torch device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import check

@dataclass(frozen=True)
class SplitPixels:
    """The mixed edge pixels of a frame, each split in two (n pixels, C channels).

    Attributes:
        index: (n, 3) long, (batch, row, column) of each pixel.
        cover: (n,) coverage of the near surface, in [0, 1].
        near_colour, far_colour: (n, C) scene-linear colours of the two parts, premultiplied by
            their weights (``cover``, ``1 - cover``): ``near + far`` is the input pixel.
        near_coc, far_coc: (n,) signed CoC of the two parts, pixels.
    """

    index: torch.Tensor
    cover: torch.Tensor
    near_colour: torch.Tensor
    far_colour: torch.Tensor
    near_coc: torch.Tensor
    far_coc: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.index.shape[0])


@dataclass(frozen=True)
class EdgeSplit:
    """Settings of the split (see :func:`split_edges`); measured on the agreement scenes' Cycles
    renders (``bench.cycles_agreement``).

    Attributes:
        jump_px: CoC difference (pixels) within a 3x3 window that marks an occlusion edge; smaller
            jumps blur alike on both sides and are left alone.
        radius: half-size of the window the near and far colours are taken from, pixels.
        snap: coverages within this of 0 or 1 are taken as pure (texture, not a mixture).
        fit: largest distance of a pixel's colour from the line between B and F, as a fraction
            of the line's length, for it to count as a mixture of the two.
    """

    jump_px: float = 2.0
    radius: int = 1
    snap: float = 0.1
    fit: float = 0.1

    def __post_init__(self) -> None:
        check(self.jump_px > 0.0, f"the edge jump must be positive, got {self.jump_px}")
        check(1 <= self.radius <= 8, f"the edge window radius must be 1 to 8 pixels, got {self.radius}")
        check(0.0 <= self.snap < 0.5, f"the coverage snap must be in [0, 0.5), got {self.snap}")

    def split(self, image: torch.Tensor, coc: torch.Tensor) -> SplitPixels:
        return split_edges(image, coc, self)


def _window_extremes(coc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) of ``coc`` (B, 1, H, W) over each 3x3 window, edges replicated (shifted slices:
    several times faster on a CPU than max_pool2d)."""
    p = F.pad(coc, (1, 1, 1, 1), mode="replicate")
    lo = torch.minimum(torch.minimum(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])
    hi = torch.maximum(torch.maximum(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])
    lo = torch.minimum(torch.minimum(lo[..., :-2], lo[..., 1:-1]), lo[..., 2:])
    hi = torch.maximum(torch.maximum(hi[..., :-2], hi[..., 1:-1]), hi[..., 2:])
    return lo, hi


def edge_mask(coc: torch.Tensor, jump_px: float) -> torch.Tensor:
    """(B, 1, H, W) bool: pixels whose 3x3 neighbourhood spans more than ``jump_px`` of CoC."""
    near, far = _window_extremes(coc)
    return (far - near) > jump_px


def split_edges(image: torch.Tensor, coc: torch.Tensor, settings: EdgeSplit = EdgeSplit()) -> SplitPixels:
    """Split mixed edge pixels into a near and a far part.

    Args:
        image: (B, C, H, W) scene-linear all-in-focus image.
        coc: (B, 1, H, W) signed CoC, pixels (nearer is smaller).

    Returns:
        The edge pixels and their two parts (:class:`SplitPixels`). Not differentiable: the
        split is a decision about the input; the renderer stays differentiable in the rest.
    """
    b, c, h, w = image.shape
    r = settings.radius
    with torch.no_grad():
        near_c, far_c = _window_extremes(coc.detach())
        edge = (far_c - near_c) > settings.jump_px
        index = edge.nonzero()
        bi, yi, xi = index[:, 0], index[:, 2], index[:, 3]
        near_at, far_at = near_c[bi, 0, yi, xi], far_c[bi, 0, yi, xi]
        if index.shape[0] == 0:
            empty = image.new_zeros(0, c)
            return SplitPixels(index[:, [0, 2, 3]], near_at, empty, empty, near_at, far_at)
        # Neighbourhoods of the edge pixels only: (n, K) gathers from padded planes.
        hp, wp = h + 2 * r, w + 2 * r
        colour_p = F.pad(image.detach(), (r, r, r, r)).permute(0, 2, 3, 1).reshape(-1, c)
        coc_p = F.pad(coc.detach(), (r, r, r, r), value=float("nan")).reshape(-1)
        clean_p = F.pad((~edge).to(image.dtype), (r, r, r, r)).reshape(-1)
        dy, dx = torch.meshgrid(torch.arange(-r, r + 1, device=image.device),
                                torch.arange(-r, r + 1, device=image.device), indexing="ij")
        dy, dx = dy.reshape(-1), dx.reshape(-1)
        flat = (bi[:, None] * hp + (yi[:, None] + r + dy[None])) * wp + (xi[:, None] + r + dx[None])
        cq = coc_p[flat]  # (n, K)
        colour_q = colour_p[flat]  # (n, K, C)
        clean_q = clean_p[flat]
        mid = 0.5 * (near_at + far_at)[:, None]
        spatial = torch.exp(-(dy * dy + dx * dx).to(image.dtype) / (0.5 * r * r))[None]
        valid = torch.isfinite(cq).to(image.dtype)
        cq = torch.nan_to_num(cq)

        def model(side: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Weighted mean colour of one side's clean pixels (its edge pixels if it has none)."""
            fallback = spatial * side * valid
            wgt = fallback * clean_q
            wgt = torch.where(wgt.sum(1, keepdim=True) > 0, wgt, fallback)
            total = wgt.sum(1, keepdim=True)
            return (wgt[..., None] * colour_q).sum(1) / total.clamp_min(1e-12), total[:, 0] > 0

        fg, has_fg = model((cq < mid).to(image.dtype))
        bg, has_bg = model((cq > mid).to(image.dtype))
        pixel = image.detach()[bi, :, yi, xi]  # (n, C)
        line = fg - bg
        length2 = (line * line).sum(1)
        cov = ((pixel - bg) * line).sum(1) / length2.clamp_min(1e-12)
        own = (coc.detach()[bi, 0, yi, xi] < mid[:, 0]).to(image.dtype)  # the side the Z pass chose
        # Colours too alike to tell apart: the split cannot matter for colour; keep the Z pass.
        scale2 = (0.5 * (fg.abs() + bg.abs())).pow(2).sum(1)
        distinct = length2 > 0.01 * scale2 + 1e-8
        snap = settings.snap
        cov = ((cov - snap) / (1.0 - 2.0 * snap)).clamp(0.0, 1.0)
        residual = pixel - (cov[:, None] * fg + (1.0 - cov[:, None]) * bg)
        # A pixel far off the line from B to F is texture, not a mixture of the two: keep the Z pass.
        fits = (residual * residual).sum(1) <= (settings.fit * settings.fit) * length2
        cov = torch.where(distinct & has_fg & has_bg & fits, cov, own)
        residual = pixel - (cov[:, None] * fg + (1.0 - cov[:, None]) * bg)
        near_colour, far_colour = cov[:, None] * (fg + residual), (1.0 - cov[:, None]) * (bg + residual)
        # A pure pixel keeps its own colour exactly on its one side.
        near_colour = torch.where((cov >= 1.0)[:, None], pixel, torch.where((cov <= 0.0)[:, None], 0.0, near_colour))
        far_colour = torch.where((cov <= 0.0)[:, None], pixel, torch.where((cov >= 1.0)[:, None], 0.0, far_colour))
    return SplitPixels(index[:, [0, 2, 3]], cov, near_colour, far_colour, near_at, far_at)
