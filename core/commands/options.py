"""Command-line options from a pipeline's parameter dataclass, so the CLI and the worker share
one set of names, types, defaults and units (the dataclass's, see :mod:`core.contract`)."""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from ..contract import REQUIRED, Param, params_of

METAVARS = {"m": "M", "mm": "MM", "px": "PX", "deg": "DEG", "s": "S"}


def add_options(parser: argparse.ArgumentParser | Any, params_type: type, skip: Iterable[str] = (),
                required: Iterable[str] = ()) -> None:
    """Add one option per field of ``params_type`` (``dest`` is the field's name).

    ``skip``: fields the command sets itself; ``required``: fields the command line must give
    although the dataclass has a default (or none, for a field the command must get).
    """
    skip, required = set(skip), set(required)
    for p in params_of(params_type):
        if p.name in skip:
            continue
        _add(parser, p, p.name in required or p.default == REQUIRED)


def _add(parser: Any, p: Param, required: bool) -> None:
    flag = f"--{p.cli}"
    text = p.help + (f", {p.unit}" if p.unit else "")
    if p.type == "bool":
        if p.default is True:
            parser.add_argument(f"--no-{p.cli}", dest=p.name, action="store_false", help=f"not: {text}")
        else:
            parser.add_argument(flag, dest=p.name, action="store_true", help=text)
        return
    kwargs: dict[str, Any] = {"dest": p.name, "help": text}
    if required:
        kwargs["required"] = True
    else:
        kwargs["default"] = tuple(p.default) if isinstance(p.default, list) else p.default
        if p.default is not None:
            kwargs["help"] = f"{text} (default {_show(p.default)})"
    if p.choices:
        kwargs["choices"] = list(p.choices)
    elif p.type in ("float", "int", "floats"):
        kwargs["type"] = int if p.type == "int" else float
        kwargs["metavar"] = METAVARS.get(p.unit, "N")
    if p.type == "floats":
        kwargs["nargs"] = p.length or "+"
    parser.add_argument(flag, **kwargs)


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_show(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def params_from(params_type: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The dataclass from the parsed options (and ``overrides``); its checks raise InputError."""
    values = {}
    for p in params_of(params_type):
        if p.name in overrides:
            values[p.name] = overrides[p.name]
        elif hasattr(args, p.name):
            v = getattr(args, p.name)
            values[p.name] = tuple(v) if isinstance(v, list) else v
    return params_type(**values)
