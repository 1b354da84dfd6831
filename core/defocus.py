"""Layered defocus: SteReFo's Algorithm 1 with adaptive downsampling, in torch.

The scene is cut into layers evenly spaced in signed circle of confusion (CoC), one pixel of blur
apart, so that within a layer the blur is constant to half a pixel. Each layer's colour and its mask
are blurred by the bokeh kernel of the layer's CoC and composited back to front:

    M_s <- M_s (1 - M_b) + M_b,    I_s <- I_s (1 - M_b) + I_b,    I_out = I_s / M_s.

Compositing back to front lets a defocused foreground spread over what lies behind it, while an
in-focus foreground, composited last with its own sharp mask, keeps a clean edge: nothing from the
background is ever blurred onto it. Dividing by the accumulated mask fills the holes that nearer
layers leave in farther ones with the farther layer's own colours, so no dark halo appears.

Masks are soft windows, M = 1/2 + 1/2 tanh(alpha (h - |c - c_k|)) (SteReFo Eq. 3), which sum to one
across adjacent layers for any alpha and make the result differentiable in the image, the CoC and
through it the depth and the focus distance.

Adaptive downsampling (SteReFo Sec. 3.2): a layer whose kernel would exceed ``k_max`` pixels is
reduced by an integer factor so that its kernel fits in ``k_max``, blurred there and upsampled
bilinearly. Each layer is also cropped to the tiles its mask touches (plus the kernel's
reach), which is where most of the speed comes from on real scenes: a layer of a receding floor is a
thin band, not a whole frame.

All images are scene-linear; HDR values pass through untouched, so a very bright point keeps its
energy and spreads into a bright disc.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from .bokeh import bokeh_kernel, kernel_size
from .errors import check, check_image, check_map
from .optics import Lens

DEFAULT_K_MAX = 15
DEFAULT_MASK = "linear"
ProgressFn = Callable[[int, int], None]
MaskKind = Literal["linear", "tanh"]

# Soft masks below this are treated as zero when deciding where a layer lives.
_MASK_EPS = 1e-6
_TILE = 16


@dataclass(frozen=True)
class Layer:
    """One slice of the scene in signed CoC.

    Attributes:
        centre: signed CoC diameter of the layer, pixels; its blur.
        below, above: centres of the neighbouring layers (nearer, farther); ``None`` at the ends,
            where the layer takes every CoC beyond its centre.
        scale: integer downsampling factor for the blur (1: full resolution).
    """

    centre: float
    below: float | None
    above: float | None
    scale: int

    @property
    def diameter(self) -> float:
        return abs(self.centre)

    @property
    def lower(self) -> float | None:
        """Edge of the layer's window towards the camera (tanh masks): halfway to the next layer."""
        return None if self.below is None else 0.5 * (self.below + self.centre)

    @property
    def upper(self) -> float | None:
        return None if self.above is None else 0.5 * (self.above + self.centre)

    def mask(self, coc: torch.Tensor, kind: MaskKind, alpha: float) -> torch.Tensor:
        """Soft membership of each pixel in this layer; the masks of all layers sum to one.

        ``tanh``: SteReFo Eq. 2-3, a window whose two edges are smoothed Heaviside steps,
        H(x) = 1/2 + 1/2 tanh(alpha x) (written as a sigmoid). ``linear``: a hat between the
        neighbouring centres, so a pixel between two layers is shared by both in proportion and
        its blur varies continuously with its CoC instead of snapping to the nearer layer.
        """
        if kind == "linear":
            m = torch.ones_like(coc)
            if self.below is not None:
                m = torch.minimum(m, (coc - self.below) / (self.centre - self.below))
            if self.above is not None:
                m = torch.minimum(m, (self.above - coc) / (self.above - self.centre))
            return m.clamp_min(0.0)
        rising = None if self.lower is None else torch.sigmoid(2.0 * alpha * (coc - self.lower))
        falling = None if self.upper is None else torch.sigmoid(2.0 * alpha * (coc - self.upper))
        if rising is None and falling is None:
            return torch.ones_like(coc)
        if rising is None:
            return 1.0 - falling
        if falling is None:
            return rising
        return rising - falling

    def support(self, kind: MaskKind, alpha: float) -> tuple[float, float]:
        """CoC interval outside which this layer's mask is below _MASK_EPS."""
        if kind == "linear":
            return (-math.inf if self.below is None else self.below, math.inf if self.above is None else self.above)
        margin = math.atanh(1.0 - 2.0 * _MASK_EPS) / alpha
        return (-math.inf if self.lower is None else self.lower - margin,
                math.inf if self.upper is None else self.upper + margin)


def downsampling_factor(diameter: float, k_max: int, ratio: float = 1.0) -> int:
    """Smallest integer factor that makes the kernel for ``diameter`` fit in ``k_max`` pixels.

    A downsampled kernel carries a 3x3 reconstruction filter (see :func:`_blur`), so it must fit
    in ``k_max`` with two pixels to spare.
    """
    check(k_max >= 5, f"k_max must be at least 5, got {k_max}")
    if kernel_size(diameter, ratio) <= k_max:
        return 1
    scale = 2
    while kernel_size(diameter / scale, ratio) + 2 > k_max:
        scale += 1
    return scale


def plan_layers(coc_min: float, coc_max: float, step: float = 1.0, k_max: int = DEFAULT_K_MAX,
                ratio: float = 1.0) -> list[Layer]:
    """Layers covering signed CoC in [coc_min, coc_max], ``step`` pixels of blur apart, back to front.

    Layer centres sit on multiples of ``step``, so the in-focus plane (CoC 0) is a layer of its
    own and passes through unblurred. The outermost layers reach one step beyond the data, so
    every pixel lies between two layer centres.
    """
    check(step > 0.0, f"layer step must be positive, got {step}")
    check(math.isfinite(coc_min) and math.isfinite(coc_max), "circle of confusion is not finite")
    first = math.floor(coc_min / step)
    last = math.ceil(coc_max / step)
    centres = [k * step for k in range(min(first, 0), max(last, 0) + 1)]
    layers = []
    for i in range(len(centres) - 1, -1, -1):  # back (large positive CoC) to front
        layers.append(Layer(
            centres[i],
            centres[i - 1] if i > 0 else None,
            centres[i + 1] if i + 1 < len(centres) else None,
            downsampling_factor(abs(centres[i]), k_max, ratio),
        ))
    return layers


def _layer_occupancy(coc: torch.Tensor, layers: list[Layer], kind: MaskKind, alpha: float) -> torch.Tensor:
    """(L, th, tw) bool: which _TILE x _TILE tiles hold pixels of each layer (mask above _MASK_EPS).

    Counts per-pixel layer indices with one bincount, so a tile straddling a depth edge marks only
    the layers its pixels are in, not every layer between them. One small host transfer follows.
    """
    with torch.no_grad():
        c = coc.detach()
        h, w = c.shape[-2:]
        th, tw = -(-h // _TILE), -(-w // _TILE)
        count = len(layers)
        # Supports ascending in CoC; layer list index = count - 1 - ascending index.
        lo = torch.tensor([l.support(kind, alpha)[0] for l in reversed(layers)], device=c.device, dtype=c.dtype)
        hi = torch.tensor([l.support(kind, alpha)[1] for l in reversed(layers)], device=c.device, dtype=c.dtype)
        flat = c.reshape(-1)
        first = torch.searchsorted(hi.contiguous(), flat, right=False)  # first layer whose support ends at or after c
        last = torch.searchsorted(lo.contiguous(), flat, right=True) - 1  # last layer whose support starts before c
        tile = ((torch.arange(h, device=c.device) // _TILE)[:, None] * tw
                + (torch.arange(w, device=c.device) // _TILE)[None, :]).expand_as(c).reshape(-1)
        occupancy = torch.zeros(count * th * tw, dtype=c.dtype, device=c.device)
        spread = int((last - first).max()) if flat.numel() else 0
        for offset in range(spread + 1):
            index = first + offset
            # Weights instead of boolean indexing: no gather, no data-dependent shapes.
            keep = (index <= last).to(c.dtype)
            layer_index = (count - 1 - index).clamp(0, count - 1)
            occupancy += torch.bincount(layer_index * (th * tw) + tile, weights=keep, minlength=count * th * tw)
        return (occupancy.view(count, th, tw) > 0).cpu()


def _regions(occupied: torch.Tensor, reach: int, h: int, w: int) -> list[tuple[int, int, int, int]]:
    """Disjoint crops (y0, y1, x0, x1) that hold a layer's pixels and everything they blur onto.

    Runs of occupied tile rows become separate crops when their blurred reaches cannot meet, so a
    layer made of a thin band and a distant object is not processed as one frame-sized box.
    """
    rows = occupied.any(dim=1).nonzero().flatten().tolist()
    if not rows:
        return []
    gap_tiles = (2 * reach) // _TILE + 1
    runs: list[list[int]] = [[rows[0], rows[0]]]
    for r in rows[1:]:
        if r - runs[-1][1] > gap_tiles:
            runs.append([r, r])
        else:
            runs[-1][1] = r
    out = []
    for r0, r1 in runs:
        cols = occupied[r0:r1 + 1].any(dim=0).nonzero().flatten()
        y0, y1 = r0 * _TILE, min((r1 + 1) * _TILE, h)
        x0, x1 = int(cols[0]) * _TILE, min((int(cols[-1]) + 1) * _TILE, w)
        out.append((max(y0 - reach, 0), min(y1 + reach, h), max(x0 - reach, 0), min(x1 + reach, w)))
    return out


# Folded into a downsampled layer's kernel: a mild Laplacian sharpening that undoes most of the
# softening of the tent reduction and the bilinear enlargement (0.5-1 dB closer to a full-resolution
# blur than bicubic enlargement, at a third of its cost).
_RECONSTRUCTION = torch.tensor([[0.0, -0.25, 0.0], [-0.25, 2.0, -0.25], [0.0, -0.25, 0.0]])


def _blur(stack: torch.Tensor, layer: Layer, blades: int, rotation: float, ratio: float) -> torch.Tensor:
    """Blur a (B, C, h, w) premultiplied stack by the layer's bokeh, downsampling as planned."""
    scale = layer.scale
    # Measured against Cycles: the aperture images upright behind the focus plane and turned
    # 180 degrees in front of it.
    kernel = bokeh_kernel(layer.diameter / scale, blades, rotation, ratio, flip=layer.centre < 0,
                          device=stack.device, dtype=stack.dtype)
    if kernel.numel() == 1:
        return stack
    h, w = stack.shape[-2:]
    x = stack
    if scale > 1:
        # A tent (antialiased bilinear) reduction rather than a box: it keeps each point's centroid,
        # so a highlight's bokeh does not jump by up to scale/2 pixels as it moves across frames.
        ph, pw = (-h) % scale, (-w) % scale
        x = F.pad(x, (0, pw, 0, ph))
        x = F.interpolate(x, size=(x.shape[-2] // scale, x.shape[-1] // scale), mode="bilinear",
                          antialias=True, align_corners=False)
        sharpen = _RECONSTRUCTION.to(kernel)
        kernel = F.conv2d(F.pad(kernel[None, None], (2, 2, 2, 2)), sharpen[None, None])[0, 0]
    channels = x.shape[1]
    k = kernel.shape[-1]
    weight = kernel.flip(0, 1).expand(channels, 1, k, k)  # conv2d correlates; flip to scatter the PSF
    # Channels-last depthwise convolution is 3-5x faster on CPU (oneDNN) and has no cliff at 15x15,
    # where the NCHW path falls to a kernel 30x slower; the element-wise work stays NCHW, where it
    # is faster.
    x = F.conv2d(x.contiguous(memory_format=torch.channels_last), weight, padding=k // 2, groups=channels)
    x = x.contiguous()
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)[..., :h, :w]
        # The sharpening overshoots a little at edges: no weight may go negative or exceed full cover.
        x = torch.cat([x[:, :-1].clamp_min(0.0), x[:, -1:].clamp(0.0, 1.0)], dim=1)
    return x


def layered_defocus(
    image: torch.Tensor,
    coc: torch.Tensor,
    *,
    blades: int = 0,
    rotation: float = 0.0,
    ratio: float = 1.0,
    k_max: int = DEFAULT_K_MAX,
    step: float = 1.0,
    mask: MaskKind = DEFAULT_MASK,
    alpha: float = 1e3,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Render shallow depth of field from an all-in-focus image and its signed CoC map.

    Args:
        image: (B, C, H, W) all-in-focus image, scene-linear (any channels: RGB, RGBA with
            premultiplied alpha, features). Values above 1 are kept (HDR).
        coc: (B, 1, H, W) or (1, 1, H, W) signed CoC diameter in pixels (see
            :func:`core.optics.circle_of_confusion`): > 0 behind focus, < 0 in front.
        blades, rotation, ratio: aperture shape (see :func:`core.bokeh.bokeh_kernel`).
        k_max: largest kernel side in pixels; wider blurs run on a downsampled layer.
            ``k_max`` >= the largest CoC + 1 disables downsampling.
        step: layer spacing in pixels of CoC at full resolution (1: no layer spans more than a
            pixel of blur).
        mask: ``"linear"`` (default) shares a pixel between its two nearest layers in proportion,
            so blur follows the CoC continuously; ``"tanh"`` is SteReFo's smoothed step window.
        alpha: sharpness of the ``tanh`` window edges (SteReFo uses 1e3); lower values give
            smoother gradients for training.
        progress: called as ``progress(done, total)`` after each layer.

    Returns:
        (B, C, H, W) defocused image, scene-linear, same dtype and device as ``image``.

    Example:
        >>> img = torch.rand(1, 3, 32, 32)
        >>> out = layered_defocus(img, torch.zeros(1, 1, 32, 32))
        >>> torch.equal(out, img)
        True
    """
    check_image(image)
    check_map(coc, image, "circle of confusion")
    check(mask in ("linear", "tanh"), f"mask must be 'linear' or 'tanh', got {mask!r}")
    check(alpha > 0.0, f"alpha must be positive, got {alpha}")
    b, c, h, w = image.shape
    coc = coc.to(dtype=image.dtype, device=image.device).expand(b, 1, h, w)
    with torch.no_grad():
        c_min, c_max = float(coc.min()), float(coc.max())
    layers = plan_layers(c_min, c_max, step, k_max, ratio)
    occupancy = _layer_occupancy(coc, layers, mask, alpha)
    differentiable = torch.is_grad_enabled() and (image.requires_grad or coc.requires_grad)

    # Colour and mask accumulate in one tensor, so each layer composites with one multiply-add.
    acc = image.new_zeros(b, c + 1, h, w)
    for index, layer in enumerate(layers):
        reach = kernel_size(layer.diameter, ratio) // 2 + 2 * layer.scale
        for y0, y1, x0, x1 in _regions(occupancy[index], reach, h, w):
            m = layer.mask(coc[..., y0:y1, x0:x1], mask, alpha)
            stack = torch.cat([image[..., y0:y1, x0:x1] * m, m], dim=1)
            blurred = _blur(stack, layer, blades, rotation, ratio)
            cover = 1.0 - blurred[:, c:]
            if differentiable:
                acc = _paste(acc, acc[..., y0:y1, x0:x1] * cover + blurred, y0, y1, x0, x1)
            else:
                acc[..., y0:y1, x0:x1].mul_(cover).add_(blurred)
        if progress is not None:
            progress(index + 1, len(layers))
    return acc[:, :c] / acc[:, c:].clamp_min(1e-12)


def _paste(target: torch.Tensor, region: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """Out-of-place ``target[..., y0:y1, x0:x1] = region`` that autograd can see through."""
    rows = torch.slice_scatter(target[..., y0:y1, :], region, dim=-1, start=x0, end=x1)
    return torch.slice_scatter(target, rows, dim=-2, start=y0, end=y1)


def refocus(
    image: torch.Tensor,
    depth: torch.Tensor,
    lens: Lens,
    focus_distance: torch.Tensor | float | None = None,
    *,
    k_max: int = DEFAULT_K_MAX,
    step: float = 1.0,
    mask: MaskKind = DEFAULT_MASK,
    alpha: float = 1e3,
    pixel_aspect: float = 1.0,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Refocus an all-in-focus image with the depth of field of ``lens``.

    Args:
        image: (B, C, H, W) scene-linear all-in-focus image.
        depth: (B, 1, H, W) planar depth in metres (Blender's Z pass), strictly positive.
        lens: camera (focal length, f-stop, sensor, aperture shape); its focus distance is used
            unless ``focus_distance`` is given.
        focus_distance: metres; a float, or a (B, 1, 1, 1) tensor (differentiable).
        k_max, step, mask, alpha, progress: see :func:`layered_defocus`.

    Returns:
        (B, C, H, W) scene-linear image with the lens's depth of field.
    """
    lens.validate()
    check_image(image)
    check_map(depth, image, "depth")
    coc = lens.circle_of_confusion(depth.to(image.dtype), focus_distance, pixel_aspect)
    return layered_defocus(
        image, coc, blades=lens.blades, rotation=lens.rotation, ratio=lens.ratio,
        k_max=k_max, step=step, mask=mask, alpha=alpha, progress=progress,
    )


class LayeredDefocus(torch.nn.Module):
    """Module form of :func:`refocus` for use inside networks (SteReFo's A1/A2 pipelines).

    Holds the lens and the options of :func:`layered_defocus`;
    ``forward(image, depth, focus_distance=None)`` returns the refocused image.
    """

    def __init__(self, lens: Lens, k_max: int = DEFAULT_K_MAX, step: float = 1.0, mask: MaskKind = DEFAULT_MASK,
                 alpha: float = 1e3) -> None:
        super().__init__()
        self.lens = lens
        self.options = dict(k_max=k_max, step=step, mask=mask, alpha=alpha)

    def forward(self, image: torch.Tensor, depth: torch.Tensor,
                focus_distance: torch.Tensor | float | None = None) -> torch.Tensor:
        return refocus(image, depth, self.lens, focus_distance, **self.options)
