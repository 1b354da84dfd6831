"""Depth backends: one image in, relative normalised inverse depth out, at a processing size.

Every backend answers the same question: given an sRGB image (B, 3, H, W) in [0, 1] of any size,
what is its normalised inverse depth (B, 1, h, w) in [0, 1] (1 = nearest, 0 = farthest, min-max
normalised per image, DeepLens' convention, seed 003 section 3.1) at the backend's processing
size (h, w)? Two kinds:

* :class:`NetworkBackend`: the built-in :class:`~core.mono.network.MonoDepthNet` (sides multiples
  of 32, longer side 512 by default).
* :class:`OnnxBackend`: any ONNX depth model the artist supplies, run by ONNX Runtime. Depth
  Anything V2 and MiDaS-style exports take one NCHW float image normalised with ImageNet mean and
  std, sides multiples of 14 (518 by default), and return one map of relative inverse depth; the
  input size, normalisation and output kind (inverse depth or depth) are options. Input and output
  names and shapes are read from the model, and a fixed input size in the model wins over the
  option. Nothing is downloaded: the user gives the file.

Upsampling back to the input's size (guided by the full image) is :mod:`core.mono.upsample`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..colour import linear_to_srgb
from ..errors import check, fail

NETWORK_SIZE = 512  # the built-in network's processing size (longer side, pixels) when its weights name none
NETWORK_MULTIPLE = 32
ONNX_SIZE = 518  # Depth Anything V2's size; MiDaS DPT exports also take multiples of 14
ONNX_MULTIPLE = 14
NORMALISATIONS = ("imagenet", "unit")  # ImageNet mean/std, or plain [0, 1]
OUTPUT_KINDS = ("inverse_depth", "depth")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DepthBackend(Protocol):
    """What the Mono Depth pipeline needs from a model."""

    name: str

    def processing_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the model runs at for an input of ``height`` x ``width`` pixels."""
        ...

    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) sRGB in [0, 1] -> (B, 1, h, w) normalised inverse depth at the processing size."""
        ...


def processing_size(height: int, width: int, size: int, multiple: int) -> tuple[int, int]:
    """(h, w) with the longer side about ``size`` pixels, the aspect ratio kept, both sides multiples of ``multiple``.

    Each side is rounded to the nearest multiple (at least one multiple), so the aspect ratio is
    off by at most half a multiple per side.
    """
    check(size >= multiple, f"processing size must be at least {multiple} pixels, got {size}")
    check(height > 0 and width > 0, f"image is empty: {width}x{height}")
    scale = size / max(height, width)

    def side(n: int) -> int:
        return max(multiple, int(round(n * scale / multiple)) * multiple)

    return side(height), side(width)


def network_image(image: torch.Tensor, linear: bool = True) -> torch.Tensor:
    """A (B, C, H, W) image as the (B, 3, H, W) sRGB [0, 1] tensor every backend takes.

    Args:
        image: C = 1 (grey, repeated), 3, or 4 (alpha dropped).
        linear: ``image`` is scene-linear (EXR, or a file read by core.imageio): sRGB-encode it,
            clipping above 1, as the networks were trained on display-referred images.
    """
    check(image.dim() == 4 and image.shape[1] in (1, 3, 4),
          f"image must be (B, 1|3|4, H, W), got {tuple(image.shape)}")
    x = image[:, :3] if image.shape[1] >= 3 else image.expand(-1, 3, -1, -1)
    x = x.float()
    return linear_to_srgb(x) if linear else x.clamp(0.0, 1.0)


def min_max_normalise(values: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(B, 1, h, w) -> per-image min-max normalised to [0, 1]; a constant map gives 0.5 everywhere."""
    flat = values.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    span = high - low
    return torch.where(span > eps, (values - low) / span.clamp_min(eps), torch.full_like(values, 0.5))


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    # Antialias when shrinking: a 4K plate resized to 512 px must not alias fine texture into depth.
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


# ---------------------------------------------------------------------------------------- built-in
class NetworkBackend:
    """The built-in :class:`~core.mono.network.MonoDepthNet` (its weights from a core.weights file).

    Args:
        model: a MonoDepthNet (or any module with its forward contract) in eval mode.
        size: processing size, the longer side in pixels (rounded to a multiple of 32); default the
            ``inference_size`` its weight file's meta names (the size chosen on validation), else
            :data:`NETWORK_SIZE`.
    """

    name = "builtin"

    def __init__(self, model: torch.nn.Module, size: int | None = None) -> None:
        meta = getattr(model, "meta", None) or {}
        size = size or int(meta.get("inference_size") or NETWORK_SIZE)
        check(size >= NETWORK_MULTIPLE, f"processing size must be at least {NETWORK_MULTIPLE} pixels, got {size}")
        self.model = model.eval()
        self.size = size

    @classmethod
    def load(cls, path: str | Path | None = None, size: int | None = None,
             device: torch.device | str = "cpu") -> "NetworkBackend":
        """The network with the weights at ``path`` (default: the shipped ones)."""
        from .network import load_model

        return cls(load_model(path, device), size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def processing_size(self, height: int, width: int) -> tuple[int, int]:
        return processing_size(height, width, self.size, NETWORK_MULTIPLE)

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        size = self.processing_size(*image.shape[-2:])
        x = _resize(image.to(self.device, torch.float32), size)
        out = self.model(x)["inverse_depth"]
        # The sigmoid head is trained on min-max normalised targets; renormalise so that every
        # backend hands on the same [0, 1] convention exactly.
        return min_max_normalise(out.float())


# -------------------------------------------------------------------------------------------- ONNX
@dataclass(frozen=True)
class OnnxModelInfo:
    """What is read from an ONNX model: its one image input and the output used.

    ``input_shape``/``output_shape`` hold ints for fixed dimensions and None for dynamic ones.
    """

    input_name: str
    input_shape: tuple[int | None, ...]
    input_type: str
    output_name: str
    output_shape: tuple[int | None, ...]

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(h, w) if the model takes only one input size, else None."""
        h, w = self.input_shape[2], self.input_shape[3]
        return (h, w) if h is not None and w is not None else None


def _dims(shape: Any) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def open_onnx(path: str | Path, device: torch.device | str = "cpu") -> tuple[Any, OnnxModelInfo]:
    """An ONNX Runtime session for ``path`` and its checked :class:`OnnxModelInfo`.

    Raises :class:`~core.errors.InputError` when the file is missing, is not an ONNX model, or its
    input is not one NCHW image (rank 4, 3 channels where the channel count is fixed).
    """
    import onnxruntime as ort

    p = Path(path)
    check(p.is_file(), f"ONNX model not found: {p}")
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: onnxruntime's warnings would flood the worker's stderr
    try:
        session = ort.InferenceSession(str(p), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises InvalidProtobuf, Fail, ... for foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"{p} is not an ONNX model that ONNX Runtime can load ({first[:160]})")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    check(len(inputs) == 1, f"ONNX model {p.name} takes {len(inputs)} inputs; a depth model takes one image")
    check(len(outputs) >= 1, f"ONNX model {p.name} has no outputs")
    inp, out = inputs[0], outputs[0]
    shape = _dims(inp.shape)
    check(len(shape) == 4, f"ONNX model {p.name}'s input '{inp.name}' has rank {len(shape)} "
                           f"({list(inp.shape)}); a depth model takes one NCHW image (rank 4)")
    check(shape[1] in (None, 3), f"ONNX model {p.name}'s input '{inp.name}' has {shape[1]} channels "
                                 f"({list(inp.shape)}); expected an NCHW image with 3")
    check(inp.type in ("tensor(float)", "tensor(float16)"),
          f"ONNX model {p.name}'s input '{inp.name}' is {inp.type}; expected float")
    out_shape = _dims(out.shape)
    check(2 <= len(out_shape) <= 4, f"ONNX model {p.name}'s output '{out.name}' has rank {len(out_shape)}; "
                                    "expected one depth map (H, W), (N, H, W) or (N, 1, H, W)")
    return session, OnnxModelInfo(inp.name, shape, inp.type, out.name, out_shape)


class OnnxBackend:
    """A user-supplied ONNX depth model (Depth Anything V2, MiDaS, or any one-image exporter).

    Args:
        path: the ``.onnx`` file.
        size: processing size, the longer side in pixels, rounded to a multiple of ``multiple``;
            ignored when the model fixes its input size.
        multiple: the side multiple the model needs (14 for ViT patch-14 models, 32 for CNNs).
        normalisation: ``imagenet`` ((x - mean) / std per channel) or ``unit`` (x in [0, 1]).
        output: what the model returns: ``inverse_depth`` (relative disparity, larger is nearer:
            Depth Anything, MiDaS) or ``depth`` (larger is farther; inverted here).
    """

    name = "onnx"

    def __init__(self, path: str | Path, size: int = ONNX_SIZE, multiple: int = ONNX_MULTIPLE,
                 normalisation: str = "imagenet", output: str = "inverse_depth",
                 device: torch.device | str = "cpu") -> None:
        check(multiple >= 1, f"size multiple must be at least 1, got {multiple}")
        check(size >= multiple, f"processing size must be at least {multiple} pixels, got {size}")
        check(normalisation in NORMALISATIONS,
              f"unknown normalisation '{normalisation}' (choose from {', '.join(NORMALISATIONS)})")
        check(output in OUTPUT_KINDS, f"unknown output kind '{output}' (choose from {', '.join(OUTPUT_KINDS)})")
        self.path = Path(path)
        self.session, self.info = open_onnx(path, device)
        self.size, self.multiple = size, multiple
        self.normalisation, self.output = normalisation, output

    def processing_size(self, height: int, width: int) -> tuple[int, int]:
        fixed = self.info.fixed_size
        return fixed if fixed is not None else processing_size(height, width, self.size, self.multiple)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) model input -> (1, 1, h', w') raw output as float32."""
        dtype = np.float16 if self.info.input_type == "tensor(float16)" else np.float32
        feed = {self.info.input_name: x.cpu().numpy().astype(dtype)}
        try:
            raw = self.session.run([self.info.output_name], feed)[0]
        except Exception as exc:  # shape mismatches inside the graph surface only here
            fail(f"ONNX model {self.path.name} failed on a {x.shape[-1]}x{x.shape[-2]} input: "
                 f"{str(exc).strip().splitlines()[0][:160]}")
        raw = np.asarray(raw, dtype=np.float32)
        squeezed = raw.reshape(raw.shape[-2:]) if raw.ndim >= 2 and int(np.prod(raw.shape[:-2])) == 1 else None
        check(squeezed is not None, f"ONNX model {self.path.name} returned shape {raw.shape}; expected one map")
        return torch.from_numpy(np.ascontiguousarray(squeezed))[None, None]

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        size = self.processing_size(*image.shape[-2:])
        x = _resize(image.float().cpu(), size)
        if self.normalisation == "imagenet":
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            x = (x - mean) / std
        maps = []
        for i in range(x.shape[0]):  # many exports fix the batch at 1
            raw = self._run(x[i:i + 1])
            if not bool(torch.isfinite(raw).all()):
                fail(f"ONNX model {self.path.name} returned NaN or infinite values")
            if self.output == "depth":
                positive = raw[raw > 0]
                check(positive.numel() > 0, f"ONNX model {self.path.name} returned no positive depth")
                raw = 1.0 / raw.clamp_min(float(positive.min()))
            if raw.shape[-2:] != torch.Size(size):  # some exports return a fixed or padded size
                raw = F.interpolate(raw, size=size, mode="bilinear", align_corners=False)
            maps.append(raw)
        return min_max_normalise(torch.cat(maps))


def make_backend(model: str = "builtin", size: int | None = None, normalisation: str = "imagenet",
                 output: str = "inverse_depth", multiple: int | None = None,
                 device: torch.device | str = "cpu") -> DepthBackend:
    """The backend for a ``--model`` value.

    Args:
        model: ``builtin`` (the shipped network), a ``.onnx`` file (:class:`OnnxBackend`), or a
            built-in network weight file (``.pt``).
        size: processing size (longer side, pixels); default the network's own (see
            :class:`NetworkBackend`), 518 for ONNX.
        normalisation, output, multiple: ONNX options (see :class:`OnnxBackend`).
    """
    if model == "builtin" or Path(model).suffix.lower() != ".onnx":
        return NetworkBackend.load(None if model == "builtin" else model, size, device)
    return OnnxBackend(model, size or ONNX_SIZE, multiple or ONNX_MULTIPLE, normalisation, output, device)
