"""The op contract between the add-on and core: one declared spec per operation.

Every capability (Layered Defocus, Stereo Depth, ...) is one pipeline in :mod:`core.pipelines`,
with a frozen parameter dataclass that holds the defaults, the units (in the field names: ``_m``,
``_mm``, ``_px``, ``_deg``) and the range checks, in one place. Its :class:`OpSpec` adds the wire
keys of its inputs and outputs. Three parties read the same spec:

* the worker (:mod:`core.worker`) turns a request's JSON into the dataclass with
  :meth:`OpSpec.parse` (unknown keys and wrong types are refused, ranges are the dataclass's);
* the command line builds its options from the same dataclass (:func:`core.commands.options`);
* the add-on builds each node's sockets from the spec's inputs and outputs, keyed explicitly,
  and marks a node unavailable when the running core lacks its op (the worker's ready message
  carries every spec as JSON, :meth:`OpSpec.to_json`).

This module imports neither torch nor bpy (nor the pipelines' heavy modules): the add-on and a
build step read it in Blender's own Python. :func:`all_specs` imports each pipeline module, which
import torch only inside their functions.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from .errors import check, fail

PROTOCOL_VERSION = 2  # bump when a request, an answer or a spec's JSON changes shape
REQUIRED = "required"  # a Param's default when the caller must give it


@dataclass(frozen=True)
class Input:
    """An image a node takes: ``key`` on the wire, ``label`` on the socket.

    ``kind``: ``color`` (RGBA, scene-linear) or ``value`` (one channel: depth in metres, a distance).
    ``repeat``: the number of numbered sockets (``slice_1`` ... ``slice_<repeat>``) for a list input.
    """

    key: str
    label: str
    kind: Literal["color", "value"]
    description: str = ""
    required: bool = True
    repeat: int = 1

    def keys(self) -> list[str]:
        return [self.key] if self.repeat == 1 else [f"{self.key}_{k}" for k in range(1, self.repeat + 1)]


@dataclass(frozen=True)
class Output:
    """A result: ``key`` on the wire, ``label`` on the socket; ``passthrough``: the input key shown
    instead while the node has no valid result (``None``: magenta for colours, zero for values)."""

    key: str
    label: str
    kind: Literal["color", "value"]
    description: str = ""
    passthrough: str | None = None


@dataclass(frozen=True)
class Param:
    """One parameter, read from a field of the op's dataclass.

    ``type``: ``float``, ``int``, ``bool``, ``str``, ``floats`` (a list of numbers) or ``json`` (any
    JSON value); ``optional``: ``None`` is allowed; ``choices`` for an enumeration; ``unit`` and
    ``help`` from the field's metadata; ``default`` is :data:`REQUIRED` when the caller must give it;
    ``length``: the exact length of a ``floats`` value (0: any).
    """

    name: str
    type: str
    default: Any
    optional: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""
    help: str = ""
    length: int = 0
    cli: str = ""


@dataclass(frozen=True)
class OpSpec:
    """One operation: its name, inputs, outputs and the dataclass of its parameters."""

    name: str
    title: str
    params_type: type
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    command: str = ""  # its ``python -m core`` subcommand (none for the worker's test op)

    @property
    def params(self) -> tuple[Param, ...]:
        return params_of(self.params_type)

    def input_keys(self) -> list[str]:
        return [k for i in self.inputs for k in i.keys()]

    def parse(self, values: Any) -> Any:
        """The op's parameter dataclass from a JSON object; :class:`InputError` on any mismatch."""
        check(isinstance(values, dict), f"{self.name}: params must be a JSON object, got {type(values).__name__}")
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        check(not unknown, f"{self.name}: unknown parameter(s) {', '.join(unknown)}; "
                           f"this core knows {', '.join(sorted(known))}")
        kwargs = {name: coerce(known[name], value, self.name) for name, value in values.items()}
        missing = [p.name for p in self.params if p.default == REQUIRED and p.name not in kwargs]
        check(not missing, f"{self.name}: missing parameter(s) {', '.join(missing)}")
        return self.params_type(**kwargs)

    def check_inputs(self, given: Any) -> None:
        """Refuse input keys the op does not take, and required inputs that are missing."""
        check(isinstance(given, dict), f"{self.name}: inputs must be a JSON object")
        allowed = set(self.input_keys())
        unknown = sorted(set(given) - allowed)
        check(not unknown, f"{self.name}: unknown input(s) {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}")
        for i in self.inputs:
            if i.required and i.repeat == 1:
                check(i.key in given, f"the {i.label} input is not connected")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "command": self.command,
                "inputs": [dataclasses.asdict(i) for i in self.inputs],
                "outputs": [dataclasses.asdict(o) for o in self.outputs],
                "params": [dataclasses.asdict(p) for p in self.params]}


# ------------------------------------------------------------------------------------ parameters
def param(default: Any = REQUIRED, *, unit: str = "", help: str = "", cli: str = "") -> Any:
    """A dataclass field with its unit and help text, for a pipeline's parameter dataclass.

    ``cli``: the command-line option's name when it is not the field's name less its unit
    (``focus_distance_m`` is ``--focus-distance``)."""
    metadata = {"unit": unit, "help": help, "cli": cli}
    if default == REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (immutable) for a sequence default")
    return dataclasses.field(default=default, metadata=metadata)


def params_of(cls: type) -> tuple[Param, ...]:
    """The :class:`Param` of every field of the dataclass ``cls`` (in field order)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        kind, optional, choices, length = _describe(hints[f.name], f"{cls.__name__}.{f.name}")
        default = REQUIRED if f.default is dataclasses.MISSING else f.default
        if isinstance(default, tuple):
            default = list(default)
        out.append(Param(f.name, kind, default, optional, choices, f.metadata.get("unit", ""),
                         f.metadata.get("help", ""), length, f.metadata.get("cli", "") or cli_name(f.name)))
    return tuple(out)


UNIT_SUFFIXES = ("_m", "_mm", "_px", "_deg", "_s")


def cli_name(field_name: str) -> str:
    """``focus_distance_m`` -> ``focus-distance``: the field's name less its unit, in kebab case."""
    for suffix in UNIT_SUFFIXES:
        if field_name.endswith(suffix):
            field_name = field_name[: -len(suffix)]
            break
    return field_name.replace("_", "-")


def _describe(hint: Any, where: str) -> tuple[str, bool, tuple[str, ...], int]:
    optional = False
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        check(len(args) == 1, f"{where}: a parameter has one type (or None)")
        hint, origin = args[0], typing.get_origin(args[0])
    if origin is Literal:
        return "str", optional, tuple(str(a) for a in typing.get_args(hint)), 0
    if origin is tuple:
        args = typing.get_args(hint)
        length = 0 if (len(args) == 2 and args[1] is Ellipsis) else len(args)
        return "floats", optional, (), length
    if hint in (float, int, bool, str):
        return hint.__name__, optional, (), 0
    return "json", optional, (), 0


def coerce(p: Param, value: Any, op: str = "") -> Any:
    """``value`` (from JSON or the command line) as parameter ``p`` wants it, or :class:`InputError`."""
    where = f"{op}: " if op else ""
    if value is None:
        check(p.optional, f"{where}{p.name} must be given")
        return None
    if p.type == "bool":
        check(isinstance(value, bool), f"{where}{p.name} must be true or false, got {value!r}")
        return value
    if p.type in ("float", "int"):
        check(isinstance(value, (int, float)) and not isinstance(value, bool),
              f"{where}{p.name} must be a number, got {value!r}")
        if p.type == "int":
            check(float(value).is_integer(), f"{where}{p.name} must be a whole number, got {value!r}")
            return int(value)
        return float(value)
    if p.type == "str":
        check(isinstance(value, str), f"{where}{p.name} must be a string, got {value!r}")
        check(not p.choices or value in p.choices,
              f"{where}{p.name} must be one of {', '.join(p.choices)}, got {value!r}")
        return value
    if p.type == "floats":
        check(isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in value),
              f"{where}{p.name} must be a list of numbers, got {value!r}")
        check(not p.length or len(value) == p.length, f"{where}{p.name} takes {p.length} numbers, got {len(value)}")
        return tuple(float(v) for v in value)
    return value


def check_finite(name: str, *values: float | None) -> None:
    """Every given number is finite (NaN and infinity are refused with the parameter's name)."""
    for v in values:
        check(v is None or math.isfinite(v), f"{name} must be a finite number, got {v}")


def check_range(name: str, value: float | None, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` with ``low_open``); ``None`` passes (an unset option)."""
    if value is None:
        return
    check_finite(name, value)
    if low is not None:
        ok = value > low if low_open else value >= low
        check(ok, f"{name} must be {'above' if low_open else 'at least'} {low:g}, got {value:g}")
    if high is not None:
        check(value <= high, f"{name} must be at most {high:g}, got {value:g}")


# ------------------------------------------------------------------------------------ registry
def all_specs() -> dict[str, OpSpec]:
    """Every op spec of this core, by name: the ``SPEC`` of each module in :mod:`core.pipelines`."""
    from . import pipelines

    specs: dict[str, OpSpec] = {}
    for info in pkgutil.iter_modules(pipelines.__path__):
        module = importlib.import_module(f"{pipelines.__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, OpSpec):
            if spec.name in specs:
                fail(f"two pipelines declare the op {spec.name!r}")
            specs[spec.name] = spec
    return specs


def specs_json() -> dict[str, Any]:
    """What the worker's ready message and the add-on's shipped copy hold: version and every spec."""
    return {"protocol": PROTOCOL_VERSION, "ops": {n: s.to_json() for n, s in sorted(all_specs().items())}}


def main() -> int:
    """``python -m core.contract [--write PATH]``: print (or write) the specs as JSON for the add-on."""
    import json
    import sys

    from core import contract  # run as __main__, this module is a second copy: use the package's

    text = json.dumps(contract.specs_json(), indent=1, sort_keys=True) + "\n"
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
