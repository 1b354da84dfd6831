"""Check a Refocus dataset and report bad samples (no bpy: runs wherever the data is)::

    python -m blender_scenes.validate DIR              # check; exit 1 if anything is wrong
    python -m blender_scenes.validate DIR --reindex    # rebuild manifest.json from the sample folders
    python -m blender_scenes.validate DIR --remove-bad # delete bad samples; rerun generate to redo them
    python -m blender_scenes.validate DIR --sweep      # first remove what dead runs left (claims, temp folders)

Checked per sample: its folder holds a record whose kind, split, index and seed are this
dataset's; every file the record names (views, layers, maps, the kind's fixed files) is listed in
its checksums, and every listed file is there with the recorded size and SHA-256, and nothing else
is (no temporary files, no hidden scratch folders); the record and its checksums are the
manifest's; depth (and disparity) maps are finite and positive; images have the camera's size; the
camera is consistent (focal length in pixels from the lens and sensor, focus distances beyond the
focal length, CoC scales from the f-stops, one file per slice / frame / render); maps derived
from depth agree with it (stereo disparity, DeepLens inverse depth). Dataset-wide: every manifest
sample is on disk and every sample on disk is in the manifest, the manifest's kind, split and
count are dataset.json's, and the folder holds nothing else: a claim or temporary folder means a
run is still going or was killed (``--sweep`` removes those of dead runs).
``--reindex`` is how shards rendered into separate folders and copied together get one manifest.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from core.cli import EXIT_BAD_INPUT
from core.errors import InputError, check
from core.imageio import read_image, read_map
from core.optics import focal_length_pixels

from . import dataset_io as io


@dataclass
class Report:
    """What validation found: ``bad`` maps a sample index to its problems; ``problems`` are dataset-wide."""

    count: int = 0
    complete: int = 0
    bad: dict[int, list[str]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.bad or self.missing or self.problems)

    def lines(self) -> list[str]:
        out = [f"{self.complete}/{self.count} samples complete, {len(self.bad)} bad, {len(self.missing)} missing"]
        out += [f"dataset: {p}" for p in self.problems]
        out += [f"{io.sample_name(i)}: {p}" for i, problems in sorted(self.bad.items()) for p in problems]
        if self.missing:
            shown = ", ".join(io.sample_name(i) for i in self.missing[:10])
            out.append(f"missing: {shown}{' ...' if len(self.missing) > 10 else ''}")
        return out


# Files whose values are depth or disparity (finite and positive everywhere), per kind.
def _positive_maps(record: dict) -> list[str]:
    kind = io.REGISTRY.get(record.get("kind", ""))
    if kind is None or kind.positive_maps is None:
        return ["depth.exr"] if "depth.exr" in record.get("files", {}) else []
    return kind.positive_maps(record)


def _views(record: dict) -> list[dict]:
    """The per-view camera records of a sample (slices, DoF renders, frames)."""
    return record.get("slices") or record.get("dof") or record.get("frames") or []


def _check_camera(record: dict) -> list[str]:
    problems = []
    camera = record.get("camera", {})
    try:
        width, height = int(camera["width"]), int(camera["height"])
        f_px = focal_length_pixels(camera["focal_length_mm"], width, height, camera["sensor_width_mm"],
                                   camera["sensor_height_mm"], camera["sensor_fit"])
    except (KeyError, TypeError, ValueError) as exc:
        return [f"camera record incomplete or invalid: {exc}"]
    if not np.isclose(f_px, camera["focal_length_px"], rtol=1e-6):
        problems.append(f"camera focal_length_px {camera['focal_length_px']} disagrees with the lens ({f_px})")
    f_m = camera["focal_length_mm"] * 1e-3
    for view in _views(record):
        focus = view.get("focus_distance")
        if "file" not in view:
            problems.append("a view record names no file")
        if focus is not None and not focus > f_m:
            problems.append(f"focus distance {focus} m is not beyond the focal length")
        if "coc_px_per_dioptre" in view:
            expected = camera["focal_length_mm"] * 1e-3 / view["f_stop"] * view["focal_length_px"]
            if not np.isclose(expected, view["coc_px_per_dioptre"], rtol=1e-6):
                problems.append(f"view {view.get('file')}: CoC scale disagrees with its f-stop and focal length")
    if record["kind"] == "defocusnet" and len(record.get("slices", [])) != len(record.get("focus_distances", [])):
        problems.append("slice count differs from the focus distances")
    return problems


def _check_files(folder: Path, record: dict) -> list[str]:
    """The record names what it holds, holds what it names, and nothing else lies in its folder."""
    problems = []
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return ["record lists no files"]
    for name in sorted(io.named_files(record) - set(files)):
        problems.append(f"{name} is named by the record but has no checksum (sample cut short)")
    for name, entry in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != entry.get("bytes"):
            problems.append(f"{name} has {path.stat().st_size} bytes, expected {entry.get('bytes')}")
        elif io.sha256(path) != entry.get("sha256"):
            problems.append(f"{name} checksum mismatch (corrupted)")
    for path in sorted(folder.iterdir()):
        if path.name != io.SAMPLE_FILE and path.name not in files:
            what = "folder" if path.is_dir() else "file"
            problems.append(f"stray {what} {path.name} (not in the record)")
    return problems


def check_sample(root: Path, index: int, listed: dict | None, description: dict | None = None) -> list[str]:
    """Problems of one sample folder in place (empty when it is good). ``listed``: its manifest
    entry; ``description``: dataset.json, to check the record belongs to this dataset."""
    folder = io.sample_dir(root, index)
    if not (folder / io.SAMPLE_FILE).is_file():
        return [f"folder has no {io.SAMPLE_FILE} (an incomplete sample)"]
    try:
        record = io.read_json(folder / io.SAMPLE_FILE)
    except InputError as exc:
        return [str(exc)]
    problems = []
    if record.get("index") != index:
        problems.append(f"record is of sample {record.get('index')}, not of its folder's {index}")
    if description is not None:
        for key in ("kind", "split"):
            if record.get(key) != description.get(key):
                problems.append(f"record's {key} {record.get(key)!r} is not the dataset's {description.get(key)!r}")
        if not problems:
            try:
                seed = io.sample_seed(int(description["seed"]), record["kind"], record["split"], index)
                if record.get("seed") != seed:
                    problems.append(f"record's seed {record.get('seed')} is not sample {index}'s ({seed})")
            except (InputError, KeyError, TypeError, ValueError) as exc:
                problems.append(f"cannot check the seed: {exc}")
    files = record.get("files", {})
    if listed is not None:
        if listed.get("files") != files:
            problems.append("record's checksums differ from the manifest's")
        if listed.get("record_sha256") not in (None, io.sha256(folder / io.SAMPLE_FILE)):
            problems.append(f"{io.SAMPLE_FILE} differs from the one the manifest lists")
        if listed.get("digest") not in (None, io.sample_digest(record)):
            problems.append("record's reproducible digest differs from the manifest's")
    problems += _check_files(folder, record)
    if problems:
        return problems
    problems += _check_camera(record)
    shape = (record["camera"]["height"], record["camera"]["width"])
    maps = set(_positive_maps(record))
    loaded: dict[str, np.ndarray] = {}
    for name in sorted(files):
        if not name.endswith(".exr"):
            continue
        try:
            values = read_map(folder / name) if name in maps or "depth" in name else read_image(folder / name)
        except InputError as exc:
            problems.append(str(exc))
            continue
        loaded[name] = values
        if values.shape[:2] != shape:
            problems.append(f"{name} is {values.shape[1]}x{values.shape[0]}, the camera {shape[1]}x{shape[0]}")
        if not np.isfinite(values).all():
            problems.append(f"{name} has NaN or infinite values")
        elif name in maps and not values.min() > 0.0:
            problems.append(f"{name} is not positive everywhere (min {values.min():g})")
    if not problems:
        problems += _check_derived_maps(record, loaded)
    return problems


def _check_derived_maps(record: dict, maps: dict[str, np.ndarray]) -> list[str]:
    """Maps computed from depth must agree with it: disparity = B f_px / Z; DeepLens' normalised
    inverse depth = (1/Z - 1/far) / (1/near - 1/far)."""
    problems = []
    if record["kind"] == "stereo":
        product = record["baseline_m"] * record["focal_length_px"]
        for side in ("left", "right"):
            d, z = maps.get(f"disparity_{side}.exr"), maps.get(f"depth_{side}.exr")
            if d is not None and z is not None and not np.allclose(d * z, product, rtol=1e-4):
                problems.append(f"disparity_{side}.exr disagrees with depth, baseline and focal length")
    if record["kind"] == "deeplens" and "depth.exr" in maps and "inverse_depth.exr" in maps:
        near, far = record["inverse_depth"]["near"], record["inverse_depth"]["far"]
        expected = (1.0 / maps["depth.exr"] - 1.0 / far) / (1.0 / near - 1.0 / far)
        if not np.allclose(maps["inverse_depth.exr"], expected, atol=1e-4):
            problems.append("inverse_depth.exr disagrees with depth.exr and its near/far")
    return problems


def _describe_stray(root: Path, name: str) -> str:
    if name in {p.name for p in io.leftover_partials(root)}:
        return f"temporary sample folder {name} (a run in progress, or a killed one: --sweep removes it)"
    if name in {p.name for p in io.claim_files(root)}:
        return f"claim {name} (a run in progress, or a killed one: --sweep removes it once stale)"
    return f"stray {'folder' if (root / name).is_dir() else 'file'} {name} (no part of a dataset)"


def validate(root: str | Path) -> Report:
    """Check the dataset in ``root``."""
    root = Path(root)
    check(root.is_dir(), f"dataset folder not found: {root}")
    check((root / io.DATASET_FILE).is_file(), f"{root} holds no {io.DATASET_FILE}; is it a dataset folder?")
    description = io.read_json(root / io.DATASET_FILE)
    report = Report(count=int(description["count"]))
    on_disk = io.sample_indices(root)
    present = io.complete_indices(root)
    report.complete = len(present)
    listed: dict[int, dict] = {}
    manifest_path = root / io.MANIFEST_FILE
    if manifest_path.is_file():
        manifest = io.read_json(manifest_path)
        samples = manifest.get("samples", [])
        listed = {s["index"]: s for s in samples}
        for key in ("kind", "split", "count"):
            if manifest.get(key) != description.get(key):
                report.problems.append(f"manifest's {key} {manifest.get(key)!r} is not dataset.json's "
                                       f"{description.get(key)!r}")
        if manifest.get("complete") != len(samples) or len(listed) != len(samples):
            report.problems.append(f"manifest says {manifest.get('complete')} complete but lists "
                                   f"{len(samples)} samples ({len(listed)} distinct)")
        for index in sorted(set(listed) - set(on_disk)):
            report.bad[index] = ["listed in the manifest but its folder is missing"]
        for index in sorted(set(present) - set(listed)):
            report.problems.append(f"sample {io.sample_name(index)} is not in the manifest (run with --reindex)")
    else:
        report.problems.append(f"no {io.MANIFEST_FILE} (run with --reindex)")
    for index in on_disk:
        problems = check_sample(root, index, listed.get(index), description)
        if index >= report.count:
            problems.append(f"index beyond the dataset's count {report.count}")
        if problems:
            report.bad[index] = problems
    placed = set(on_disk)
    report.missing = [i for i in range(report.count) if i not in placed and i not in report.bad]
    for name in io.stray_entries(root):
        report.problems.append(_describe_stray(root, name))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="validate", description="Check a Refocus dataset folder.")
    parser.add_argument("root", help="dataset folder")
    parser.add_argument("--reindex", action="store_true", help="rebuild manifest.json from the sample folders first")
    parser.add_argument("--remove-bad", action="store_true", help="delete bad samples so that generate redoes them")
    parser.add_argument("--sweep", action="store_true",
                        help="first remove what dead runs left: stale claims, their temporary folders and files")
    args = parser.parse_args(argv)
    try:
        root = Path(args.root)
        if args.sweep:
            check(root.is_dir(), f"dataset folder not found: {root}")
            for name in io.sweep(root):
                print(f"removed {name}")
        if args.reindex:
            check((root / io.DATASET_FILE).is_file(), f"{root} holds no {io.DATASET_FILE}")
            io.write_manifest(root)
        report = validate(root)
        for line in report.lines():
            print(line)
        if args.remove_bad and report.bad:
            for index in report.bad:
                shutil.rmtree(io.sample_dir(root, index), ignore_errors=True)
            io.write_manifest(root)
            print(f"removed {len(report.bad)} bad samples; run the same generate command to render them again")
    except InputError as exc:
        sys.stderr.write(f"validate: error: {exc}\n")
        return EXIT_BAD_INPUT
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
