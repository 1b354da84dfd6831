"""The op contract (core.contract): one declared spec per op, and every party that speaks it agrees.

Fast: no Cycles render. The node check starts one Python with the real bpy and inspects the
registered node classes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import build_parser
from core.contract import REQUIRED, all_specs, params_of, specs_json
from core.worker.ops import registry

ROOT = Path(__file__).resolve().parents[1]


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def _normal(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("op", sorted(all_specs()))
def test_the_cli_and_the_worker_accept_the_same_parameters_with_the_same_defaults(op: str) -> None:
    spec = all_specs()[op]
    assert spec.command, f"{op} has no command"
    actions = {a.dest: a for a in _subparsers()[spec.command]._actions}
    for p in spec.params:
        assert p.name in actions, f"{spec.command} lacks --{p.cli} ({p.name})"
        action = actions[p.name]
        if p.default == REQUIRED:
            assert action.required, p.name
        else:
            assert _normal(action.default) == _normal(p.default), (p.name, action.default, p.default)
            # The worker takes the default too: parsing an empty request gives the same value.
    required = {p.name: (1.0 if p.type in ("float", "int") else "x") for p in spec.params if p.default == REQUIRED}
    if not required or all(p.type in ("float", "int") for p in spec.params if p.default == REQUIRED):
        parsed = _try_parse(spec, required)
        if parsed is not None:
            for p in spec.params:
                if p.default != REQUIRED:
                    assert _normal(getattr(parsed, p.name)) == _normal(p.default), p.name


def _try_parse(spec, values):
    from core.errors import InputError

    try:
        return spec.parse(values)
    except InputError:  # defaults alone may not be a valid request (e.g. no focus): checked elsewhere
        return None


def test_every_pipeline_op_is_served_by_the_worker_with_the_same_spec() -> None:
    ops = registry()
    for name, spec in all_specs().items():
        assert name in ops, f"the worker lacks the {name} op"
        assert ops[name].spec is spec


def test_the_worker_refuses_unknown_and_mistyped_parameters() -> None:
    from core.errors import InputError

    spec = all_specs()["layered_defocus"]
    with pytest.raises(InputError, match="unknown parameter"):
        spec.parse({"focal_length_mm": 50, "f_stop": 2, "focus_distance_m": 2, "step": 1})  # the old name
    with pytest.raises(InputError, match="must be a number"):
        spec.parse({"focal_length_mm": "50", "f_stop": 2, "focus_distance_m": 2})
    with pytest.raises(InputError, match="missing parameter"):
        spec.parse({"f_stop": 2, "focus_distance_m": 2})
    with pytest.raises(InputError, match="blades must be 0"):
        spec.parse({"focal_length_mm": 50, "f_stop": 2, "focus_distance_m": 2, "blades": 100000000})
    with pytest.raises(InputError, match="layer step"):
        spec.parse({"focal_length_mm": 50, "f_stop": 2, "focus_distance_m": 2, "step_px": 1e-9})


def _run_without(blocked: tuple[str, ...], code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python whose imports of the ``blocked`` modules fail."""
    prelude = f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_specs_import_without_torch_opencv_or_bpy() -> None:
    """The add-on's side reads the specs in Blender's Python: no heavy import behind them."""
    proc = _run_without(("torch", "cv2", "bpy", "OpenEXR", "onnxruntime"),
                        "from core.contract import specs_json\nprint(len(specs_json()['ops']))\n")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(all_specs())


def test_the_addon_ships_the_specs_of_this_core() -> None:
    shipped = json.loads((ROOT / "addon" / "op_specs.json").read_text())
    assert shipped == json.loads(json.dumps(specs_json())), \
        "addon/op_specs.json is stale: run python -m core.contract --write addon/op_specs.json"


def test_every_field_has_a_unit_or_help() -> None:
    for spec in all_specs().values():
        for p in params_of(spec.params_type):
            assert p.help, f"{spec.name}.{p.name} has no help text"


def test_every_refocus_node_maps_onto_its_op_spec(tmp_path: Path) -> None:
    """Sockets carry the spec's keys, and what a node sends in its default state is a valid
    request: every key a parameter of the op, every value of its type and range."""
    from addon_fixtures import run_session

    nodes = run_session("nodes", tmp_path, script=ROOT / "tests" / "contract_nodes_session.py")
    nodes.pop("stderr")
    specs = all_specs()
    assert {n["op"] for n in nodes.values()} <= set(specs), "a node's op is missing from core"
    for idname, node in nodes.items():
        spec = specs[node["op"]]
        assert node["unavailable"] == "", (idname, node["unavailable"])
        assert node["inputs"] == spec.input_keys(), idname
        assert node["outputs"] == [o.key for o in spec.outputs], idname
        assert node["error"] == "", (idname, node["error"])
        spec.parse(node["params"])  # raises InputError naming the offending key


def test_the_command_line_answers_help_without_torch() -> None:
    """``python -m core --help`` must answer at once: nothing behind it imports torch or OpenCV."""
    proc = _run_without(("torch", "cv2", "OpenEXR", "onnxruntime"),
                        "from core.cli import build_parser\nbuild_parser().format_help()\n")
    assert proc.returncode == 0, proc.stderr
