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

import os
import sys
from pathlib import Path
from typing import Any, Sequence

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


def read_weights(path: str | Path, what: str) -> dict[str, Any]:
    """The payload of a weight file, checked; ``what`` names the model in error messages."""
    p = Path(path)
    check(p.is_file(), f"weights file not found: {p}")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign files raise a zoo of unpickling errors
        fail(f"cannot read weights {p}: {exc}")
    check(isinstance(payload, dict) and payload.get("format") == FORMAT, f"{p} is not a {what} weights file")
    return payload
