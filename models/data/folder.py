"""Dataset folders written by ``blender_scenes.generate``, read as torch tensors, lazily.

The layout is :mod:`blender_scenes.dataset_io`'s: ``dataset.json``, ``manifest.json`` and one
folder per sample with ``sample.json`` and EXR files. Only samples the manifests list are read,
so a folder still being rendered (or resumed) never hands out a half-written sample.

At scale: opening a dataset reads its ``dataset.json`` and manifest only, and keeps per sample
just its index, which folder holds it and its record's checksum; records and images are read
when an item is asked for, in whichever DataLoader worker asks. One dataset may be several
folders (shards rendered apart and never merged), read as one. With ``verify=True`` each
sample's files are checked against the manifest's checksums the first time a process reads it
(a corrupt or truncated file raises :class:`core.errors.InputError` naming it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from blender_scenes import dataset_io as io
from core.errors import check, fail
from core.imageio import read_image, read_map


class DatasetFolder:
    """The samples of one dataset of a given kind, in one folder or several (its shards).

    Args:
        root: the folder ``generate --out`` wrote, or a list of folders holding shards of one
            dataset (the same dataset.json; each sample in one of them).
        kind: the kind the caller reads (``defocusnet``, ``deeplens``, ``stereo``, ``sweep``, ...).
        split: the split expected (e.g. ``train``), or ``None`` for whichever the folder holds:
            a training script passing ``"train"`` can never read a held-out test folder.
        allow_incomplete: read a dataset whose manifests list fewer samples than were asked for.
        verify: check each sample's record and files against the manifest the first time this
            process reads it (costs one extra read of its files, once).
    """

    def __init__(self, root: str | Path | Sequence[str | Path], kind: str, split: str | None = None,
                 allow_incomplete: bool = False, verify: bool = False) -> None:
        roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
        check(len(roots) > 0, "no dataset folder given")
        self.roots, self.verify = roots, verify
        self.root = roots[0]
        self.description: dict[str, Any] = {}
        where: dict[int, tuple[int, str]] = {}
        for k, folder in enumerate(roots):
            description = self._open(folder, kind, split)
            if not self.description:
                self.description = description
            check(description == self.description,
                  f"{folder} holds another dataset than {roots[0]} (its dataset.json differs)")
            for entry in io.read_json(folder / io.MANIFEST_FILE)["samples"]:
                index = int(entry["index"])
                if index in where:
                    fail(f"sample {io.sample_name(index)} is in both {roots[where[index][0]]} and {folder}")
                where[index] = (k, str(entry.get("record_sha256", "")))
        self.split = self.description.get("split")
        self.indices = sorted(where)
        # Compact per-sample state: DataLoader workers get a copy of it (one int and 64 bytes each).
        self._root_of = np.array([where[i][0] for i in self.indices], dtype=np.int32)
        self._record_sha = np.array([where[i][1] for i in self.indices], dtype="S64")
        self._verified: set[int] = set()
        place = roots[0] if len(roots) == 1 else f"{len(roots)} folders from {roots[0]}"
        check(len(self.indices) > 0, f"{place} has no complete sample")
        check(allow_incomplete or len(self.indices) >= int(self.description["count"]),
              f"{place} lists {len(self.indices)} of {self.description['count']} samples; finish rendering "
              f"(rerun generate), or after shards ran apart run python -m blender_scenes.validate {self.root} "
              f"--reindex, or pass allow_incomplete=True")

    @staticmethod
    def _open(root: Path, kind: str, split: str | None) -> dict[str, Any]:
        check(root.is_dir(), f"dataset folder not found: {root}")
        check((root / io.DATASET_FILE).is_file(), f"{root} holds no {io.DATASET_FILE}; is it a dataset folder?")
        description = io.read_json(root / io.DATASET_FILE)
        check(description.get("kind") == kind, f"{root} holds a {description.get('kind')!r} dataset, not {kind!r}")
        check(split is None or description.get("split") == split,
              f"{root} holds split {description.get('split')!r}, not {split!r}")
        check((root / io.MANIFEST_FILE).is_file(),
              f"{root} has no manifest; run: python -m blender_scenes.validate {root} --reindex")
        return description

    def __len__(self) -> int:
        return len(self.indices)

    def folder(self, i: int) -> Path:
        return io.sample_dir(self.roots[int(self._root_of[i])], self.indices[i])

    def record(self, i: int) -> dict[str, Any]:
        """Item ``i``'s record (sample.json), its files checked first when ``verify`` and not yet."""
        folder = self.folder(i)
        record = io.read_json(folder / io.SAMPLE_FILE)
        if self.verify and i not in self._verified:
            self.check_files(i, record)
            self._verified.add(i)
        return record

    def check_files(self, i: int, record: dict[str, Any] | None = None) -> None:
        """Raise InputError unless item ``i``'s record is the manifest's and every file it lists
        has the recorded size and SHA-256."""
        folder = self.folder(i)
        expected = self._record_sha[i].decode()
        if expected and io.sha256(folder / io.SAMPLE_FILE) != expected:
            fail(f"{folder / io.SAMPLE_FILE} differs from the manifest's record (corrupted or replaced)")
        record = io.read_json(folder / io.SAMPLE_FILE) if record is None else record
        for name, entry in sorted(record.get("files", {}).items()):
            path = folder / name
            check(path.is_file(), f"{path} is missing")
            size = path.stat().st_size
            check(size == entry["bytes"], f"{path} has {size} bytes, the manifest says {entry['bytes']} (truncated?)")
            check(io.sha256(path) == entry["sha256"], f"{path} fails its checksum (corrupted)")


def read_colour(path: Path) -> torch.Tensor:
    """An EXR colour file as a (C, H, W) float32 tensor, scene-linear (C = 3, or 4 with alpha)."""
    return torch.from_numpy(np.ascontiguousarray(read_image(path).transpose(2, 0, 1)))


def read_plane(path: Path) -> torch.Tensor:
    """A one-channel EXR (depth in metres, disparity in pixels) as a (1, H, W) float32 tensor."""
    return torch.from_numpy(read_map(path))[None]


def scalars(values: list[float]) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32)
