"""Classical depth from focus in horizontal bands: bounded memory for large frames and deep stacks.

:func:`core.focal_stack.depth_from_focus.depth_from_focus` holds the whole stack and several
(N, 1, H, W) volumes at once: 11 GiB for three 8000x6000 slices. Every step of the method but
three is local (the focus measure's window, the guided filter's two boxes of radius r), so the
frame can be cut into bands of rows, each processed with a halo of rows above and below wide
enough that its own rows come out as in the whole frame. The three global quantities are taken
from the whole frame first or last, as the whole-frame method takes them:

* the guided-filter radius (1/64 of the frame's longer side, :func:`default_radius`);
* each slice's noise level (:func:`core.focal_stack.noise.noise_sigma` of the full slice);
* the confidence's texture scale (a quantile of every pixel's peak response), applied once all
  bands are done.

The slices themselves live in a :class:`SliceStore`: in memory while they fit a budget, else in a
temporary file of float16 rows (each band reads its rows back), so memory is one band's working
set and the outputs, whatever the number of slices.
"""

from __future__ import annotations

import contextlib
import tempfile
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..colour import linear_to_srgb
from ..errors import check
from .depth_from_focus import (_TINY, ML_NOISE, FocusMeasure, FocusResult, default_radius, inverse_to_metres,
                               refine_peak, spread_over)
from .focus_measures import focus_measure, luminance
from .guided_filter import guided_filter
from .slices import check_focus_distances, depth_from_dioptres, dioptres

IN_MEMORY_BYTES = 1536 * 2**20  # slices up to this size stay in memory (float32), larger go to disk (float16)
BAND_BYTES = 1024 * 2**20  # working set of one band
# Per pixel of a band: the guided filter's temporaries for one slice at a time (~60 bytes), and per
# slice its luminance, filtered focus measure and weight (12 bytes).
BAND_BYTES_PER_PIXEL = 60
BAND_BYTES_PER_SLICE_PIXEL = 12


class SliceStore:
    """N slices of one size, (H, W, C) float, readable band by band.

    In memory (float32) when ``N * H * W * C * 4 <= in_memory_bytes``; otherwise each slice is
    written as float16 rows to one temporary file, removed by :meth:`close` (or the ``with``).
    """

    def __init__(self, count: int, height: int, width: int, channels: int,
                 in_memory_bytes: int | None = None, folder: str | None = None, measure_noise: bool = False) -> None:
        check(count >= 1 and height >= 1 and width >= 1 and channels >= 1, "a slice store needs a size")
        self.shape = (count, height, width, channels)
        budget = IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes
        self.on_disk = count * height * width * channels * 4 > budget
        self.measure_noise = measure_noise  # only the noise floor needs it (a full-frame luminance per slice)
        self.dtype = np.dtype(np.float16 if self.on_disk else np.float32)
        self._slices: list[np.ndarray | None] = [None] * count
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".refocus-slices-") if self.on_disk else None
        self.noise = np.zeros(count, np.float64)

    def __enter__(self) -> "SliceStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._slices = [None] * self.shape[0]

    def _slice_bytes(self) -> int:
        _, h, w, c = self.shape
        return h * w * c * self.dtype.itemsize

    def put(self, index: int, image: np.ndarray) -> None:
        """Store slice ``index`` (H, W, C) scene-linear (and with ``measure_noise`` its noise level)."""
        _, h, w, c = self.shape
        check(image.shape == (h, w, c), f"slice {index} is {image.shape}, the store holds {(h, w, c)}")
        if self.measure_noise:
            from .noise import noise_sigma

            grey = linear_to_srgb(luminance(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]))
            self.noise[index] = float(noise_sigma(grey)[0])
            del grey
        if self._file is None:
            self._slices[index] = np.ascontiguousarray(image, dtype=np.float32)
            return
        self._file.seek(index * self._slice_bytes())
        for y in range(0, h, 256):  # converting a band of rows at a time keeps the copy small
            self._file.write(np.ascontiguousarray(image[y:y + 256], dtype=np.float16).tobytes())

    def rows(self, index: int, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0:y1`` of slice ``index``, (y1 - y0, W, C) float32."""
        _, h, w, c = self.shape
        if self._file is None:
            stored = self._slices[index]
            assert stored is not None, f"slice {index} was never stored"
            return stored[y0:y1]
        row = w * c * self.dtype.itemsize
        self._file.seek(index * self._slice_bytes() + y0 * row)
        data = np.frombuffer(self._file.read((y1 - y0) * row), dtype=self.dtype)
        return data.reshape(y1 - y0, w, c).astype(np.float32)

    def band(self, index: int, y0: int, y1: int) -> torch.Tensor:
        """Rows ``y0:y1`` of slice ``index``: (1, C, rows, W) float32."""
        return torch.from_numpy(np.ascontiguousarray(self.rows(index, y0, y1).transpose(2, 0, 1)))[None]


def halo_rows(window: int, radius: int) -> int:
    """Rows a band needs above and below: the focus measure's reach plus the guided filter's two boxes."""
    return window // 2 + 2 + 2 * radius + 2


def band_rows(count: int, width: int, halo: int, budget_bytes: int | None = None) -> int:
    """Rows per band (without halo) so that a band of ``count`` slices fits ``budget_bytes``
    (default :data:`BAND_BYTES`); at least the halo, so the overlap never more than triples the work."""
    budget = BAND_BYTES if budget_bytes is None else budget_bytes
    per_row = width * (BAND_BYTES_PER_PIXEL + count * BAND_BYTES_PER_SLICE_PIXEL)
    rows = budget // max(1, per_row) - 2 * halo
    return max(64, halo, int(rows))


def _bands(height: int, rows: int, halo: int) -> Iterator[tuple[int, int, int, int]]:
    for y0 in range(0, height, rows):
        y1 = min(y0 + rows, height)
        yield y0, y1, max(0, y0 - halo), min(height, y1 + halo)


def depth_from_focus_banded(
    store: SliceStore,
    focus_distances: Sequence[float] | torch.Tensor | None = None,
    *,
    measure: FocusMeasure = "modified-laplacian",
    window: int = 9,
    radius: int | None = None,
    eps: float = 1e-3,
    sharpness: float = 4.0,
    noise_floor: float = 0.0,
    rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    uncertainty: bool = True,
) -> FocusResult:
    """:func:`core.focal_stack.depth_from_focus.depth_from_focus` of the slices in ``store``, band by band.

    Arguments as ``depth_from_focus`` (``store`` holding the aligned slices), plus ``rows`` per
    band (default :func:`band_rows`), ``progress(done, total)`` after each band, and
    ``uncertainty=False`` to skip the two uncertainty maps (left ``None``; 8 bytes a pixel less).
    Returns the same :class:`FocusResult` ((1, ., H, W) CPU tensors); a frame that fits one band
    gives the whole-frame result to float rounding.
    """
    n, h, w, c = store.shape
    check(n >= 2, f"a focal stack needs at least 2 slices, got {n}")
    check(window >= 1, f"focus window must be at least 1 pixel, got {window}")
    check(noise_floor <= 0 or store.measure_noise, "a noise floor needs a SliceStore made with measure_noise=True")
    if focus_distances is not None:
        inv = dioptres(check_focus_distances(focus_distances, n))
        order = torch.argsort(inv)
        positions = inv[order]
    else:
        order = torch.arange(n)
        positions = torch.arange(n, dtype=torch.float64)
    r = default_radius(h, w) if radius is None else radius
    halo = halo_rows(window, r)
    rows = rows if rows is not None else band_rows(n, w, halo)
    check(rows >= 1, f"bands need at least one row, got {rows}")
    floor = None
    if measure == "modified-laplacian" and noise_floor > 0:
        # As core.focal_stack.depth_from_focus.noise_floored: one floor, the noisiest slice's.
        sigma = torch.from_numpy(store.noise).to(torch.float32)
        floor = float((noise_floor * ML_NOISE * sigma).max().clamp_min(1e-4))

    depth = torch.empty(1, 1, h, w)
    aif = torch.empty(1, c, h, w)
    spread_metres = torch.empty(1, 1, h, w) if uncertainty else None
    spread_map = torch.empty(1, 1, h, w) if uncertainty else None
    # The confidence's two factors wait for the frame-wide texture scale; half floats suffice for one.
    prominence = torch.empty(1, 1, h, w, dtype=torch.float16)
    peak_map = torch.empty(1, 1, h, w)
    pos = positions.to(torch.float32)
    bands = list(_bands(h, rows, halo))
    ordered = order.tolist()
    for i, (y0, y1, a, b) in enumerate(bands):
        keep = slice(y0 - a, y1 - a)
        # filtered_focus_volume one slice at a time: the guided filter is per slice (the slices are
        # its channels), so only the guide, the mean luminance of all slices, needs them together.
        greys = [linear_to_srgb(luminance(store.band(k, a, b))) for k in ordered]
        guide = torch.stack(greys).mean(dim=0)
        planes = []
        for k in range(n):
            raw = focus_measure(greys[k], measure, window)
            greys[k] = None  # type: ignore[call-overload]
            filtered = guided_filter(guide, raw, r, eps).clamp_min(0.0) if r > 0 else raw
            planes.append(filtered[..., keep, :])
            del raw, filtered
        del guide, greys
        volume = torch.cat(planes)  # (N, 1, rows, W)
        del planes
        if floor is not None:
            volume = (volume - floor).clamp_min(0.0) + floor
        refined, _ = refine_peak(volume, pos)
        weights = torch.softmax(sharpness * volume.clamp_min(_TINY).log(), dim=0)
        depth[..., y0:y1, :] = depth_from_dioptres(refined) if focus_distances is not None else refined
        if spread_map is not None and spread_metres is not None:
            spread = spread_over(weights, pos, refined)
            spread_map[..., y0:y1, :] = spread
            spread_metres[..., y0:y1, :] = inverse_to_metres(spread, refined) if focus_distances is not None else spread
        blend = aif[..., y0:y1, :]
        blend.zero_()
        for j, k in enumerate(ordered):  # the all-in-focus blend, one slice's rows at a time
            blend += weights[j:j + 1] * store.band(k, y0, y1)
        peak = volume.max(dim=0, keepdim=True).values
        prominence[..., y0:y1, :] = (peak - volume.mean(dim=0, keepdim=True)) / peak.clamp_min(_TINY)
        peak_map[..., y0:y1, :] = peak
        del volume, weights
        if progress is not None:
            progress(i + 1, len(bands))
    # The texture scale of core.focal_stack.depth_from_focus.confidence_map, from the whole frame.
    flat = peak_map.flatten()
    sample = flat[:: max(1, flat.numel() // 65536)]
    tau = 0.05 * float(torch.quantile(sample.float(), 0.9)) + _TINY
    confidence = peak_map  # computed in place, band by band: no second full-frame map
    for y0, y1, _, _ in bands:
        peak = peak_map[..., y0:y1, :]
        confidence[..., y0:y1, :] = (prominence[..., y0:y1, :].float() * peak / (peak + tau)).clamp(0.0, 1.0)
    del prominence
    return FocusResult(depth=depth, all_in_focus=aif, confidence=confidence, uncertainty=spread_metres,
                       inverse_uncertainty=spread_map)


@contextlib.contextmanager
def stored_slices(images: Sequence[np.ndarray], folder: str | None = None) -> Iterator[SliceStore]:
    """A :class:`SliceStore` holding ``images`` (a convenience for tests and small stacks)."""
    first = images[0]
    with SliceStore(len(images), first.shape[0], first.shape[1], first.shape[2], folder=folder,
                    measure_noise=True) as store:
        for i, image in enumerate(images):
            store.put(i, image)
        yield store


def estimate_bytes(count: int, height: int, width: int, channels: int) -> int:
    """Peak memory of :func:`depth_from_focus_banded` and its outputs, bytes (a planning figure)."""
    outputs = height * width * (channels * 4 + 4 + 4 + 2)  # all-in-focus, depth, peak/confidence, prominence
    store = count * height * width * channels * 4
    if store > IN_MEMORY_BYTES:
        store = 0
    return outputs + store + BAND_BYTES
