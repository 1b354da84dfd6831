"""Fast preview: layered defocus at reduced resolution, in-focus detail restored at full resolution.

After DeepLens's guided upsampling (seed 003, Sec. 3.2.3, Eq. 3, H = M_A A + M_L L^): blurred
regions need no more resolution than their blur, so the layers are rendered at 1/``scale`` of the
frame, and only the in-focus regions take their detail from the full-resolution all-in-focus image
A. DeepLens predicts the two weight maps with a network; here they follow from the optics:

* the renderer carries one more channel, each source pixel's sharpness s = clamp(2 - |c| / scale,
  0, 1) (1 where its blur is below one reduced pixel), blurred and composited like the colour, so
  that at every output pixel it gives the share of the light that comes from in-focus surfaces:
  M (a blurred foreground over a sharp background lowers it, as it should);
* the enlarged render L^ already holds the in-focus regions' coarse colour, so A contributes only
  its missing detail: H = L^ + M_A (A - A^), with A^ the reduced-then-enlarged A and M_A = M
  (enlarged, widened by one reduced pixel) times the pixel's own full-resolution sharpness.

Cost: the layers at 1/scale^2 of the pixels. The PSNR it gives up against the full-resolution
render is measured by ``bench.defocus_speed`` (README).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import check


def _reduce(x: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % scale, (-w) % scale
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return F.avg_pool2d(x, scale)


def _enlarge(x: torch.Tensor, scale: int, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)[..., :size[0], :size[1]]


def preview_defocus(image: torch.Tensor, coc: torch.Tensor, scale: int,
                    render: Callable[..., torch.Tensor], **options) -> torch.Tensor:
    """Approximate :func:`core.defocus.layered_defocus` from a render at 1/``scale`` resolution.

    Args:
        image: (B, C, H, W) scene-linear all-in-focus image.
        coc: (B, 1, H, W) signed CoC diameter, full-resolution pixels.
        scale: reduction factor, 2 to 8 (1: the full render).
        render: the full renderer, :func:`core.defocus.layered_defocus` (``refocus`` passes it, so
            the two modules need not import each other).
        options: passed to ``render`` (bokeh shape, k_max, split, ...);
            position-dependent kernels see the reduced frame.

    Returns:
        (B, C, H, W) scene-linear.
    """
    check(1 <= int(scale) <= 8, f"the preview scale must be 1 to 8, got {scale}")
    scale = int(scale)
    if scale == 1:
        return render(image, coc, **options)
    b, c, h, w = image.shape
    coc = coc.to(image).expand(b, 1, h, w)
    sharp = (2.0 - coc.abs() / scale).clamp(0.0, 1.0)
    small = _reduce(torch.cat([image, sharp], dim=1), scale)
    # The CoC of a reduced pixel: the mean of its pixels (a straddling pixel is split by the
    # renderer's edge split, when on, like any mixed pixel).
    small_coc = _reduce(coc, scale) / scale
    rendered = render(small, small_coc, **options)
    enlarged = _enlarge(rendered, scale, (h, w))
    colour = enlarged[:, :c]
    share = _enlarge(F.max_pool2d(rendered[:, c:], 3, 1, 1), scale, (h, w)).clamp(0.0, 1.0)
    detail = image - _enlarge(small[:, :c], scale, (h, w))
    return colour + (share * sharp) * detail
