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
from typing import TYPE_CHECKING, Callable, Literal

import torch
import torch.nn.functional as F

from .bokeh import bokeh_kernel, kernel_size
from .convolution import _RECONSTRUCTION, FFT_MIN_KERNEL, convolve  # noqa: F401  (re-exported)
from .errors import check, check_image, check_map
from .optics import Lens

if TYPE_CHECKING:
    from .bokeh import CatsEye
    from .edges import EdgeSplit

DEFAULT_K_MAX = 15
DEFAULT_MASK = "linear"
# refocus's default: layers beyond FINE_PX merged while no pixel's blur is off by more than this.
DEFAULT_MERGE_PX = 1.0
ProgressFn = Callable[[int, int], None]
MaskKind = Literal["linear", "tanh"]

# Soft masks below this are treated as zero when deciding where a layer lives.
_MASK_EPS = 1e-6
_TILE = 16
# Layers stay ``step`` apart out to this CoC (pixels); beyond it they may be merged (``merge_px``).
FINE_PX = 4.0


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
                ratio: float = 1.0, merge_px: float = 0.0) -> list[Layer]:
    """Layers covering signed CoC in [coc_min, coc_max], back to front.

    Layer centres sit ``step`` pixels of blur apart from the in-focus plane (CoC 0, a layer of its
    own that passes through unblurred) out to ``FINE_PX``; beyond it they are merged to
    ``max(step, 2 * merge_px)`` apart. With linear masks a pixel is shared by the two layers around
    its CoC, so its blur is off by at most half the spacing: ``merge_px`` is the largest blur error
    allowed, in pixels of CoC diameter (0: every layer ``step`` apart). The outermost layers reach
    one spacing beyond the data, so every pixel lies between two layer centres.
    """
    check(step > 0.0, f"layer step must be positive, got {step}")
    check(merge_px >= 0.0, f"merge_px must be non-negative, got {merge_px}")
    check(math.isfinite(coc_min) and math.isfinite(coc_max), "circle of confusion is not finite")
    coarse = max(step, 2.0 * merge_px)

    def side(limit: float) -> list[float]:
        """Centres from 0 (excluded) out to the first one at or beyond ``limit`` >= 0."""
        out: list[float] = []
        k = 1
        while (not out or out[-1] < limit) and k * step <= FINE_PX + 1e-9:
            out.append(k * step)
            k += 1
        while not out or out[-1] < limit:
            out.append((out[-1] if out else 0.0) + coarse)
        return out if limit > 0.0 else []

    centres = [-c for c in reversed(side(-min(coc_min, 0.0)))] + [0.0] + side(max(coc_max, 0.0))
    layers = []
    for i in range(len(centres) - 1, -1, -1):  # back (large positive CoC) to front
        layers.append(Layer(
            centres[i],
            centres[i - 1] if i > 0 else None,
            centres[i + 1] if i + 1 < len(centres) else None,
            downsampling_factor(abs(centres[i]), k_max, ratio),
        ))
    return layers


def _layer_occupancy(coc: torch.Tensor, layers: list[Layer], kind: MaskKind, alpha: float,
                     extra: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """(L, th, tw) bool on the CPU: which _TILE x _TILE tiles hold pixels of each layer.

    ``coc``: (B, 1, H, W); ``extra``: (CoC, row, column) of further sparse samples (the far parts
    of split edge pixels). Counts per-pixel layer indices with one scatter-add, so a tile straddling a depth edge marks
    only the layers its pixels are in, not every layer between them. One small host transfer follows.
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
        tile = ((torch.arange(h, device=c.device) // _TILE)[:, None] * tw
                + (torch.arange(w, device=c.device) // _TILE)[None, :]).expand_as(c).reshape(-1)
        if extra is not None and extra[0].numel():
            values, rows, cols = extra
            flat = torch.cat([flat, values.detach().to(flat.dtype)])
            tile = torch.cat([tile, (rows // _TILE) * tw + cols // _TILE])
        if kind == "linear":
            # Hat masks: c in (C[j-1], C[j]] lies in layers j-1 and j (only j when c == C[j]): one
            # search, and two scattered writes of True (no counting, no data-dependent shapes).
            centres = torch.tensor([l.centre for l in reversed(layers)], device=c.device, dtype=c.dtype)
            j = torch.searchsorted(centres, flat, right=False).clamp_max(count - 1)
            key = (count - 1 - j) * (th * tw) + tile  # list index of ascending layer j
            marked = torch.zeros(count * th * tw, dtype=torch.bool, device=c.device)
            marked[key] = True
            below = (flat < centres[j]) & (j > 0)
            marked[torch.where(below, key + th * tw, key)] = True  # layer j - 1, next in the list
            return marked.view(count, th, tw).cpu()
        else:
            first = torch.searchsorted(hi.contiguous(), flat, right=False)  # first layer whose support ends at or after c
            last = torch.searchsorted(lo.contiguous(), flat, right=True) - 1  # last layer whose support starts before c
        occupancy = torch.zeros(count * th * tw, dtype=c.dtype, device=c.device)
        spread = int((last - first).max()) if flat.numel() else 0
        for offset in range(spread + 1):
            index = first + offset
            # Weights instead of boolean indexing: no data-dependent shapes; index_add_ runs on
            # every backend (CPU, CUDA, MPS).
            keep = (index <= last).to(c.dtype)
            layer_index = (count - 1 - index).clamp(0, count - 1)
            occupancy.index_add_(0, layer_index * (th * tw) + tile, keep)
        return (occupancy.view(count, th, tw) > 0).cpu()


def _regions(occupied: torch.Tensor, reach: int, h: int, w: int) -> list[tuple[int, int, int, int]]:
    """Disjoint crops (y0, y1, x0, x1) that hold a layer's pixels and everything they blur onto.

    The occupied tiles, grown by the blur's reach, fall apart into connected groups; each group's
    box is a crop, and boxes that overlap are merged until none does. So a layer made of a thin
    floor band and a distant object is processed as two small boxes, not one frame-sized box, and
    every pixel of the layer lies in exactly one crop.
    """
    if not bool(occupied.any()):
        return []
    import numpy as np

    grow = -(-reach // _TILE)
    occ = occupied.numpy().astype(np.uint8)
    th, tw = occ.shape
    # Grow by `grow` tiles (a separable max over a (2g+1)^2 window) to join tiles whose reaches touch.
    padded = np.pad(occ, grow)
    grown = np.zeros_like(padded)
    for dy in range(2 * grow + 1):
        grown[grow:grow + th] |= padded[dy:dy + th]
    rows = grown[grow:grow + th]
    cols = np.zeros_like(padded[grow:grow + th])
    padded_rows = np.pad(rows, ((0, 0), (grow, grow)))
    for dx in range(2 * grow + 1):
        cols[:, grow:grow + tw] |= padded_rows[:, dx:dx + tw]
    joined = cols[:, grow:grow + tw]
    boxes = []
    for y0, y1, x0, x1 in _components(joined):
        # The box of the layer's own tiles in this group, then grown by the exact reach in pixels.
        inner = occ[y0:y1, x0:x1]
        ys, xs = np.nonzero(inner.any(axis=1))[0], np.nonzero(inner.any(axis=0))[0]
        if ys.size == 0:
            continue
        by0, by1 = (y0 + ys[0]) * _TILE, min((y0 + ys[-1] + 1) * _TILE, h)
        bx0, bx1 = (x0 + xs[0]) * _TILE, min((x0 + xs[-1] + 1) * _TILE, w)
        boxes.append([max(by0 - reach, 0), min(by1 + reach, h), max(bx0 - reach, 0), min(bx1 + reach, w)])
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(box) for box in sorted(boxes)]


def _components(mask) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (y0, y1, x0, x1), end-exclusive, of the 8-connected groups of a small 2-D mask."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return [(int(s[1]), int(s[1] + s[3]), int(s[0]), int(s[0] + s[2])) for s in stats[1:count]]


KernelFn = Callable[[Layer, torch.device, torch.dtype], torch.Tensor]


def _layer_kernel(layer: Layer, blades: int, rotation: float, ratio: float, device: torch.device,
                  dtype: torch.dtype, kernel_fn: KernelFn | None = None) -> torch.Tensor:
    """The layer's PSF at its own resolution, the reconstruction sharpening folded in when downsampled."""
    scale = layer.scale
    if kernel_fn is not None:
        kernel = kernel_fn(layer, device, dtype)
    else:
        # Measured against Cycles: the aperture images upright behind the focus plane and turned
        # 180 degrees in front of it.
        kernel = bokeh_kernel(layer.diameter / scale, blades, rotation, ratio, flip=layer.centre < 0,
                              device=device, dtype=dtype)
    if scale > 1 and kernel.numel() > 1:
        sharpen = _RECONSTRUCTION.to(kernel)
        kernel = F.conv2d(F.pad(kernel[None, None], (2, 2, 2, 2)), sharpen[None, None])[0, 0]
    return kernel


def _blur(stack: torch.Tensor, layer: Layer, blades: int, rotation: float, ratio: float) -> torch.Tensor:
    """Blur a (B, C, h, w) premultiplied stack by the layer's bokeh at full resolution, downsampling
    as planned (reduce, blur, enlarge). Kept for callers of the one-layer step; the renderer itself
    composites downsampled layers at their own resolution (:func:`layered_defocus`)."""
    kernel = _layer_kernel(layer, blades, rotation, ratio, stack.device, stack.dtype)
    if kernel.numel() == 1:
        return stack
    scale = layer.scale
    h, w = stack.shape[-2:]
    x = _reduce(stack, scale) if scale > 1 else stack
    x = convolve(x, kernel)
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)[..., :h, :w]
        x = _clamp_stack(x)
    return x


def _reduce(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, C, h, w) to (B, C, ceil(h/s), ceil(w/s)) by a tent (antialiased bilinear) filter.

    A tent rather than a box: it keeps each point's centroid, so a highlight's bokeh does not
    jump by up to scale/2 pixels as it moves across frames.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % scale, (-w) % scale
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return F.interpolate(x, size=(x.shape[-2] // scale, x.shape[-1] // scale), mode="bilinear",
                         antialias=True, align_corners=False)


def _clamp_stack(x: torch.Tensor) -> torch.Tensor:
    """The sharpening overshoots a little at edges: no weight may go negative or exceed full cover."""
    return torch.cat([x[:, :-1].clamp_min(0.0), x[:, -1:].clamp(0.0, 1.0)], dim=1)


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
    merge_px: float = 0.0,
    split: "EdgeSplit | None" = None,
    kernel_fn: KernelFn | None = None,
    position_kernels: "CatsEye | None" = None,
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
        step: layer spacing in pixels of CoC at full resolution near focus (1: no layer spans more
            than a pixel of blur).
        mask: ``"linear"`` (default) shares a pixel between its two nearest layers in proportion,
            so blur follows the CoC continuously; ``"tanh"`` is SteReFo's smoothed step window.
        alpha: sharpness of the ``tanh`` window edges (SteReFo uses 1e3); lower values give
            smoother gradients for training.
        progress: called as ``progress(done, total)`` after each layer.
        merge_px: largest blur error, pixels of CoC, allowed for merging layers away from focus
            (see :func:`plan_layers`); 0 keeps every layer ``step`` apart.
        split: mixed edge pixels split into a near and a far part (:func:`core.edges.split_edges`);
            each part joins the layer of its own depth.
        kernel_fn: ``kernel_fn(layer, device, dtype)`` gives a layer's PSF at the layer's own
            resolution instead of the aperture polygon (a bokeh image, :mod:`core.bokeh`).
        position_kernels: a PSF that changes across the frame (cat's eye, :mod:`core.bokeh`).

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
    # Colour with a weight channel (1, or a split edge pixel's near cover), premultiplied: a
    # layer's stack is then one product with its mask.
    # Channels-last throughout (stacks, accumulators): the depthwise convolutions want it, and the
    # element-wise work runs as fast in it.
    ext = torch.cat([image, torch.ones_like(coc)], dim=1).contiguous(memory_format=torch.channels_last)
    coc1 = coc
    far = None
    if split is not None:
        parts = split.split(image, coc)
        if parts.count:
            bi, yi, xi = parts.index.unbind(1)
            cover = parts.cover.to(image.dtype)[:, None]
            ext[bi, :, yi, xi] = torch.cat([parts.near_colour.to(image.dtype), cover], dim=1)
            coc1 = coc.clone()
            coc1[bi, 0, yi, xi] = parts.near_coc.to(coc.dtype)
            keep = cover[:, 0] < 1.0
            far = (bi[keep], yi[keep], xi[keep], parts.far_coc[keep].to(coc.dtype),
                   torch.cat([parts.far_colour.to(image.dtype), 1.0 - cover], dim=1)[keep])
    with torch.no_grad():
        c_min, c_max = float(coc1.min()), float(coc1.max())
        if far is not None and far[3].numel():
            c_min, c_max = min(c_min, float(far[3].min())), max(c_max, float(far[3].max()))
    layers = plan_layers(c_min, c_max, step, k_max, ratio, merge_px)
    occupancy = _layer_occupancy(coc1, layers, mask, alpha, None if far is None else (far[3], far[1], far[2]))
    differentiable = torch.is_grad_enabled() and (image.requires_grad or coc.requires_grad)
    far_mask: dict[int, torch.Tensor] = {}

    def stack_of(layer: Layer, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """(B, C + 1, y1 - y0, x1 - x0): the layer's premultiplied colour and its mask in a crop."""
        stack = ext[..., y0:y1, x0:x1] * layer.mask(coc1[..., y0:y1, x0:x1], mask, alpha)
        if far is not None and far[0].numel():
            fb, fy, fx, fc, fv = far
            key = id(layer)
            if key not in far_mask:
                far_mask[key] = layer.mask(fc, mask, alpha)
            m = far_mask[key]
            sel = (m > 0) & (fy >= y0) & (fy < y1) & (fx >= x0) & (fx < x1)
            if bool(sel.any()):
                # Distinct pixels: a plain indexed add accumulates nothing twice.
                view = stack.permute(0, 2, 3, 1)
                view[fb[sel], fy[sel] - y0, fx[sel] - x0] += fv[sel] * m[sel, None]
        return stack

    def blur_at(x: torch.Tensor, layer: Layer, kernel: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
        if position_kernels is not None and layer.diameter > 1.0:
            return position_kernels.blur(x, layer, origin, (h, w))
        return convolve(x, kernel)

    # Colour and mask accumulate in one tensor, so each layer composites with one multiply-add.
    acc = image.new_zeros(b, c + 1, h, w).contiguous(memory_format=torch.channels_last)
    done = 0
    for group in _scale_groups(layers):
        scale = group[0][1].scale
        if scale == 1:
            for index, layer in group:
                kernel = _layer_kernel(layer, blades, rotation, ratio, image.device, image.dtype, kernel_fn)
                reach = kernel.shape[-1] // 2
                for y0, y1, x0, x1 in _regions(occupancy[index], reach, h, w):
                    blurred = blur_at(stack_of(layer, y0, y1, x0, x1), layer, kernel, (y0, x0))
                    acc = _over(acc, blurred, y0, y1, x0, x1, differentiable)
                done += 1
                if progress is not None:
                    progress(done, len(layers))
            continue
        # Downsampled layers next to each other in depth composite among themselves at their own
        # resolution ("over" is associative), and the group is enlarged and composited once: the
        # full-resolution work per layer is only cutting out and reducing its pixels.
        plans = []
        for index, layer in group:
            kernel = _layer_kernel(layer, blades, rotation, ratio, image.device, image.dtype, kernel_fn)
            reach = (kernel.shape[-1] // 2 + 1) * scale
            plans.append((layer, kernel, [_aligned(r, scale) for r in _regions(occupancy[index], reach, h, w)]))
        boxes = [r for _, _, regions in plans for r in regions]
        if not boxes:
            done += len(group)
            if progress is not None:
                progress(done, len(layers))
            continue
        gy0, gx0 = min(r[0] for r in boxes), min(r[2] for r in boxes)
        gy1, gx1 = max(r[1] for r in boxes), max(r[3] for r in boxes)
        small = image.new_zeros(b, c + 1, (gy1 - gy0) // scale, (gx1 - gx0) // scale).contiguous(
            memory_format=torch.channels_last)
        for layer, kernel, regions in plans:
            for y0, y1, x0, x1 in regions:
                stack = stack_of(layer, y0, min(y1, h), x0, min(x1, w))
                reduced = _reduce(stack, scale)
                blurred = blur_at(reduced, layer, kernel, (y0, x0))
                small = _over(small, blurred, (y0 - gy0) // scale, (y1 - gy0) // scale,
                              (x0 - gx0) // scale, (x1 - gx0) // scale, differentiable)
            done += 1
            if progress is not None:
                progress(done, len(layers))
        large = F.interpolate(small, scale_factor=scale, mode="bilinear", align_corners=False)
        large = _clamp_stack(large[..., :min(gy1, h) - gy0, :min(gx1, w) - gx0])
        acc = _over(acc, large, gy0, min(gy1, h), gx0, min(gx1, w), differentiable)
    return (acc[:, :c] / acc[:, c:].clamp_min(1e-12)).contiguous()


def _scale_groups(layers: list[Layer]) -> list[list[tuple[int, Layer]]]:
    """Runs of consecutive layers (back to front) that share a downsampling factor."""
    groups: list[list[tuple[int, Layer]]] = []
    for index, layer in enumerate(layers):
        if groups and groups[-1][-1][1].scale == layer.scale:
            groups[-1].append((index, layer))
        else:
            groups.append([(index, layer)])
    return groups


def _aligned(region: tuple[int, int, int, int], scale: int) -> tuple[int, int, int, int]:
    """A crop grown outwards to multiples of ``scale`` (it may then reach past the frame's end),
    so that every reduced layer samples the same grid."""
    y0, y1, x0, x1 = region
    return (y0 // scale * scale, -(-y1 // scale) * scale, x0 // scale * scale, -(-x1 // scale) * scale)


def _over(acc: torch.Tensor, layer: torch.Tensor, y0: int, y1: int, x0: int, x1: int,
          differentiable: bool) -> torch.Tensor:
    """Composite a premultiplied (colour, cover) ``layer`` over ``acc[..., y0:y1, x0:x1]``.

    ``layer`` may be larger than the crop (an aligned, reduced crop past the frame's end): it is cut.
    """
    layer = layer[..., :y1 - y0, :x1 - x0]
    cover = 1.0 - layer[:, -1:]
    if differentiable:
        return _paste(acc, acc[..., y0:y1, x0:x1] * cover + layer, y0, y1, x0, x1)
    acc[..., y0:y1, x0:x1].mul_(cover).add_(layer)
    return acc


def _paste(target: torch.Tensor, region: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """Out-of-place ``target[..., y0:y1, x0:x1] = region`` that autograd can see through."""
    rows = torch.slice_scatter(target[..., y0:y1, :], region, dim=-1, start=x0, end=x1)
    return torch.slice_scatter(target, rows, dim=-2, start=y0, end=y1)


@dataclass(frozen=True)
class LensEffects:
    """The lens features beyond the thin lens, all off by default (see :func:`refocus`).

    Attributes:
        near_blur, far_blur: multipliers of the blur in front of and behind the sharp band.
        sharp_band_m: (near, far) metres kept sharp around the focus distance (far may be inf).
        highlight_threshold, highlight_gain: LDR speculars above the threshold luminance get
            ``gain`` times their energy before the blur (:mod:`core.highlights`); gain 1 is off.
        cat_eye: optical vignetting, 0 (off) to 2: the bokeh clipped towards the frame corners
            (:class:`core.bokeh.CatsEye`).
        bokeh_image: (h, w) kernel image for the bokeh shape instead of the aperture polygon
            (:class:`core.bokeh.ImageBokeh`).
        edge_split: split mixed edge pixels between near and far layers (:mod:`core.edges`);
            ``None`` renders each pixel at its Z-pass depth only.
        preview_scale: render the layers at 1/scale resolution and restore in-focus detail
            (:mod:`core.preview`); 1 renders at full resolution.
    """

    near_blur: float = 1.0
    far_blur: float = 1.0
    sharp_band_m: tuple[float, float] | None = None
    highlight_threshold: float = 0.9
    highlight_gain: float = 1.0
    cat_eye: float = 0.0
    bokeh_image: torch.Tensor | None = None
    edge_split: "EdgeSplit | None" = None
    preview_scale: int = 1


def shaped_coc(depth: torch.Tensor, lens: Lens, focus_distance: torch.Tensor | float | None = None,
               pixel_aspect: float = 1.0, effects: LensEffects | None = None) -> torch.Tensor:
    """(B, 1, H, W) signed CoC, pixels, that :func:`refocus` renders: the lens's, with the sharp
    band and the near/far multipliers of ``effects`` applied (the focus map shows this)."""
    coc = lens.circle_of_confusion(depth, focus_distance, pixel_aspect)
    if effects is None:
        return coc
    h, w = depth.shape[-2:]
    band = None
    if effects.sharp_band_m is not None:
        from .optics import sharp_band

        focus = lens.focus_distance if focus_distance is None else focus_distance
        check(isinstance(focus, (int, float)), "a sharp band needs one focus distance (a float), not a tensor")
        band = sharp_band(lens.with_focus(float(focus)), effects.sharp_band_m[0], effects.sharp_band_m[1], w, h,
                          pixel_aspect)
    if band is not None or effects.near_blur != 1.0 or effects.far_blur != 1.0:
        from .optics import shape_coc

        coc = shape_coc(coc, effects.near_blur, effects.far_blur, band)
    return coc


def default_edge_split() -> "EdgeSplit":
    from .edges import EdgeSplit

    return EdgeSplit()


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
    merge_px: float = DEFAULT_MERGE_PX,
    effects: LensEffects | None = None,
) -> torch.Tensor:
    """Refocus an all-in-focus image with the depth of field of ``lens``.

    Args:
        image: (B, C, H, W) scene-linear all-in-focus image.
        depth: (B, 1, H, W) planar depth in metres (Blender's Z pass), strictly positive.
        lens: camera (focal length, f-stop, sensor, aperture shape); its focus distance is used
            unless ``focus_distance`` is given.
        focus_distance: metres; a float, or a (B, 1, 1, 1) tensor (differentiable).
        k_max, step, mask, alpha, progress, merge_px: see :func:`layered_defocus`; layers away
            from focus are merged by default, as long as no pixel's blur is off by more than 1 px.
        effects: lens features (:class:`LensEffects`); default: mixed edge pixels split
            (:mod:`core.edges`), nothing else. ``LensEffects()`` turns everything off.

    Returns:
        (B, C, H, W) scene-linear image with the lens's depth of field.
    """
    lens.validate()
    check_image(image)
    check_map(depth, image, "depth")
    fx = effects if effects is not None else LensEffects(edge_split=default_edge_split())
    coc = shaped_coc(depth.to(image.dtype), lens, focus_distance, pixel_aspect, fx)
    if fx.highlight_gain != 1.0:
        from .highlights import boost_highlights

        image = boost_highlights(image, fx.highlight_threshold, fx.highlight_gain)
    options: dict = dict(blades=lens.blades, rotation=lens.rotation, ratio=lens.ratio, k_max=k_max, step=step,
                         mask=mask, alpha=alpha, progress=progress, merge_px=merge_px, split=fx.edge_split)
    if fx.bokeh_image is not None:
        from .bokeh import ImageBokeh

        options["kernel_fn"] = ImageBokeh(fx.bokeh_image, lens.ratio)
    if fx.cat_eye > 0.0:
        from .bokeh import CatsEye

        options["position_kernels"] = CatsEye(fx.cat_eye, lens.blades, lens.rotation, lens.ratio)
    if fx.preview_scale > 1:
        from .preview import preview_defocus  # preview renders through layered_defocus, passed in

        return preview_defocus(image, coc, fx.preview_scale, render=layered_defocus, **options)
    return layered_defocus(image, coc, **options)


class LayeredDefocus(torch.nn.Module):
    """Module form of :func:`refocus` for use inside networks (SteReFo's A1/A2 pipelines).

    Holds the lens and the options of :func:`layered_defocus`;
    ``forward(image, depth, focus_distance=None)`` returns the refocused image.
    """

    def __init__(self, lens: Lens, k_max: int = DEFAULT_K_MAX, step: float = 1.0, mask: MaskKind = DEFAULT_MASK,
                 alpha: float = 1e3, **options) -> None:
        super().__init__()
        self.lens = lens
        self.options = dict(k_max=k_max, step=step, mask=mask, alpha=alpha, **options)

    def forward(self, image: torch.Tensor, depth: torch.Tensor,
                focus_distance: torch.Tensor | float | None = None) -> torch.Tensor:
        return refocus(image, depth, self.lens, focus_distance, **self.options)
