"""Shipped network weights: where they live and the one file format every model uses.

A weight file is a plain dict that ``torch.load(..., weights_only=True)`` reads safely:
``format`` (an int), ``config`` (the network's hyper-parameters, a dict), ``state_dict`` (CPU
tensors) and ``meta`` (what it was trained on, the command, steps, metrics). Loading never imports
training code; each model's ``learned`` module builds its network from ``config``.

Where they are found (:data:`WEIGHTS_DIR`, decided once at import): the folder named by
``$REFOCUS_WEIGHTS``, else a ``weights/`` folder inside the installed ``core`` package (an add-on
zip or a wheel that bundles them), else the checkout's ``models/weights`` (an editable install),
else ``<prefix>/share/refocus/weights`` (a wheel's data files). core never imports ``models``.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .errors import check, fail
from .imageio import atomic_write

WEIGHTS_ENV = "REFOCUS_WEIGHTS"


def find_weights_dir() -> Path:
    """The weights folder: ``$REFOCUS_WEIGHTS``, the package's, the checkout's or the prefix's (see above).

    An unset variable and no folder found give the checkout's path, so that a missing-weights
    error names the place where training writes them.
    """
    named = os.environ.get(WEIGHTS_ENV, "").strip()
    if named:
        return Path(named).expanduser().resolve()
    here = Path(__file__).resolve().parent
    candidates = [here / "weights", here.parent / "models" / "weights",
                  Path(sys.prefix) / "share" / "refocus" / "weights"]
    return next((c for c in candidates if c.is_dir()), candidates[1])


WEIGHTS_DIR = find_weights_dir()
FORMAT = 1


def default_weights(names: Sequence[str], what: str, retrain: str) -> Path:
    """The first of ``names`` present in WEIGHTS_DIR (best first), or a clear error saying how to train."""
    for name in names:
        if (WEIGHTS_DIR / name).is_file():
            return WEIGHTS_DIR / name
    fail(f"no {what} weights in {WEIGHTS_DIR}; train them with '{retrain}'")


def save_weights(path: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model`` (which must have ``config.to_dict()``) and ``meta`` atomically."""
    payload = {"format": FORMAT, "config": model.config.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta}
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


def _one_line(exc: BaseException) -> str:
    """The first sentence of an exception's message, on one line."""
    text = " ".join(str(exc).split())
    text = re.split(r"(?<=[a-z)])\. ", text, maxsplit=1)[0]
    return (text or type(exc).__name__)[:200]


def read_weights(path: str | Path, what: str) -> dict[str, Any]:
    """The payload of a weight file, checked; ``what`` names the model in error messages.

    Every problem is one :class:`InputError` sentence naming the file: missing, unreadable,
    corrupt, a pickle that needs code to load (refused, never run), or not in the format above.
    """
    p = Path(path)
    check(p.exists(), f"{what} weights file not found: {p}")
    check(p.is_file(), f"{what} weights path is not a file: {p}")
    with open(p, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip; files of torch < 1.6 are a bare pickle (protocol 2+ starts with 0x80).
    check(magic[:2] == b"PK" or magic[:1] == b"\x80", f"cannot read weights {p}: not a PyTorch file "
                                                        f"({what} weights expected)")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses anything that would import or call code; name what it asked for.
        found = re.search(r"(GLOBAL [\w.]+|Unsupported operand \d+)", str(exc))
        fail(f"refused to load {what} weights {p}: the file needs code to load"
             f"{f' ({found.group(1)})' if found else ''}, and only plain tensors and dicts are read")
    except Exception as exc:  # corrupt or foreign files raise a zoo of errors
        fail(f"cannot read weights {p} ({what} weights expected): {_one_line(exc)}")
    check(isinstance(payload, dict), f"{p} is not a {what} weights file (it holds a {type(payload).__name__}, "
                                     f"expected a dict with format, config, state_dict and meta)")
    if "format" not in payload and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        fail(f"{p} is a bare state dict, not a {what} weights file (expected format, config, state_dict and "
             f"meta; save it with core.weights.save_weights)")
    check(payload.get("format") == FORMAT, f"{p} is not a {what} weights file (format {payload.get('format')!r}, "
                                           f"expected {FORMAT})")
    check(isinstance(payload.get("config"), dict), f"{what} weights {p} have no config dict")
    check(isinstance(payload.get("state_dict"), dict), f"{what} weights {p} have no state_dict")
    return payload


def _trained_by(payload: dict[str, Any]) -> str:
    meta = payload.get("meta")
    command = meta.get("command", "") if isinstance(meta, dict) else ""
    found = re.search(r"-m\s+([\w.]+)", command) if isinstance(command, str) else None
    return f" (it was trained by {found.group(1)})" if found else ""


def _shape(t: Any) -> str:
    return "x".join(str(d) for d in tuple(getattr(t, "shape", ()))) or "scalar"


def load_state(model_cls: Callable[[Any], torch.nn.Module], config_cls: type, payload: dict[str, Any],
               path: str | Path, what: str) -> torch.nn.Module:
    """``model_cls(config)`` from a :func:`read_weights` payload, its tensors loaded and checked.

    ``config_cls`` is the network's config dataclass (``from_dict`` is used when it has one).
    Every mismatch is one :class:`InputError` sentence naming the file and what was expected:
    another network's weights (config keys this network does not take), a bad config value,
    missing or unexpected tensors, a tensor of the wrong shape, NaN or infinite weights.
    The model comes back on the CPU in training mode, as ``model_cls`` builds it.
    """
    p = Path(path)
    config = payload.get("config")
    check(isinstance(config, dict), f"{what} weights {p} have no config dict")
    if dataclasses.is_dataclass(config_cls):
        known = [f.name for f in dataclasses.fields(config_cls)]
        unknown = sorted(str(k) for k in config if k not in known)
        takes = f"{', '.join(known[:8])}{' ...' if len(known) > 8 else ''}"
        if unknown and len(unknown) >= len(config) - len(unknown):  # mostly foreign: another model's file
            fail(f"{p} holds another network's weights, not {what}'s{_trained_by(payload)}: its config has "
                 f"{', '.join(unknown[:4])}{' ...' if len(unknown) > 4 else ''}, which {config_cls.__name__} does "
                 f"not take (it takes {takes})")
        check(not unknown, f"{what} weights {p} have unknown config key(s) {', '.join(unknown[:4])} "
                           f"({config_cls.__name__} takes {takes})")
    try:
        build = getattr(config_cls, "from_dict", None)
        cfg = build(config) if callable(build) else config_cls(**config)
        model = model_cls(cfg)
    except Exception as exc:  # TypeError, ValueError, an assert or a torch error from a bad size
        shown = ", ".join(f"{k}={v!r}" for k, v in config.items())
        fail(f"{what} weights {p} have a bad config ({shown[:100]}): {_one_line(exc)[:120]}")
    state = payload.get("state_dict")
    check(isinstance(state, dict), f"{what} weights {p} have no state_dict")
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    check(not not_tensors, f"{what} weights {p}: state_dict entry {not_tensors[:1]} is not a tensor")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [str(k) for k in state if k not in expected]
    wrong = [k for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        fail(f"{what} weights {p} do not fit their config: tensor {k} is {_shape(state[k])}, the network expects "
             f"{_shape(expected[k])}{f' ({len(wrong) - 1} more differ)' if len(wrong) > 1 else ''}")
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing (first {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]})")
        fail(f"{what} weights {p} do not fit their config{_trained_by(payload)}: {', '.join(parts)}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    check(not bad, f"{what} weights {p} hold NaN or infinite values (tensor {bad[0] if bad else ''})")
    try:
        model.load_state_dict(state)
    except Exception as exc:  # a dtype torch cannot copy, say
        fail(f"{what} weights {p} cannot be loaded: {_one_line(exc)[:160]}")
    model.meta = payload.get("meta", {})
    return model
