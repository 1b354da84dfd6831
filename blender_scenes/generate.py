"""Render a Refocus training dataset with Cycles, headless, resumable and sharded.

Two ways in, one code path, the same files out::

    python -m blender_scenes.generate --kind defocusnet --count 1000 --out data/fod --seed 0 --shard 0/4
    blender -b -P blender_scenes/generate.py -- --kind defocusnet --count 1000 --out data/fod --seed 0 --shard 0/4

``--count`` is the size of the whole dataset; ``--shard i/N`` renders samples i, i+N, i+2N, ...
of it, so N machines (or a Slurm/Ray array) each run one shard into a shared folder, or into
their own folders merged afterwards (``python -m blender_scenes.validate DIR --reindex``).
Running the same command again skips every finished sample: a killed run resumes where it
stopped. See :mod:`blender_scenes.dataset_io` for the layout and :mod:`dataset_samples` for what
each kind holds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

if not globals().get("__package__"):
    # Run as a script (blender -P): make the repository importable from this file's own path, and
    # let Blender's Python find the project's packages (torch, OpenEXR, OpenCV) in the repo's venv,
    # after its own (Blender 5.0 and the venv are both Python 3.11).
    _repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(_repo))
    sys.path.extend(str(p) for p in sorted(_repo.glob(".venv/lib/python3.*/site-packages")))

from blender_scenes import dataset_io as io  # noqa: E402  (after the path set-up above)
from blender_scenes.dataset_preview import write_preview  # noqa: E402
from blender_scenes.dataset_render import Quality  # noqa: E402
from blender_scenes.dataset_samples import FOCUS_MODES, Options, render_sample  # noqa: E402
from blender_scenes.dataset_scenes import CAMERA_CHOICES  # noqa: E402
from core.cli import EXIT_BAD_INPUT, OneLineParser  # noqa: E402  (usage errors as one line, like refocus)
from core.errors import InputError, check  # noqa: E402
from core.progress import ProgressBar  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="generate", description="Render a Refocus dataset with Cycles (see blender_scenes/generate.py).")
    p.add_argument("--kind", required=True, choices=io.KINDS)
    p.add_argument("--count", required=True, type=int, help="samples in the whole dataset (all shards)")
    p.add_argument("--out", required=True, help="dataset folder (created; resumed if it exists)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--shard", default="0/1", help="render shard i of N: samples i, i+N, ... (default 0/1)")
    p.add_argument("--split", default="train", help="train, or a held-out split: test (deeplens, stereo, sweep); "
                   "test-shape, test-appearance, test-wide-dof, test-medium-dof (defocusnet)")
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"), help="pixels (default 256 256)")
    q = p.add_argument_group("render quality")
    q.add_argument("--samples", type=int, default=4, help="Cycles samples per pixel (default 4)")
    q.add_argument("--no-denoise", action="store_true", help="skip OpenImageDenoise")
    q.add_argument("--bounces", type=int, default=2, help="light-path bounces (default 2)")
    q.add_argument("--threads", type=int, default=0, help="render threads (default 0: all cores)")
    d = p.add_argument_group("defocusnet")
    d.add_argument("--slices", type=int, default=5, help="focal-stack slices (default 5)")
    d.add_argument("--focus", choices=FOCUS_MODES, default="fod",
                   help="fod: FoD500's 0.1 0.15 0.3 0.7 1.5 m; even: evenly in inverse depth; random (default fod)")
    d.add_argument("--f-stop", type=float, default=None, help="f-number (default: f/1, or the test split's)")
    d.add_argument("--camera", choices=CAMERA_CHOICES, default="fod",
                   help="fod: FoD500's 2.9 mm f/1; unseen-50mm, unseen-phone: issue 21's held-out cameras; "
                        "random: a camera drawn per sample, 3..--slices slices (default fod)")
    d.add_argument("--breathing", action="store_true", help="focus breathing: field of view changes with focus")
    d.add_argument("--shake", type=float, nargs=2, default=(0.0, 0.0), metavar=("MM", "DEG"),
                   help="camera shake per slice, up to MM millimetres and DEG degrees (default none)")
    p.add_argument("--dof-renders", type=int, default=2, help="deeplens: depth-of-field renders per sample (default 2)")
    p.add_argument("--frames", type=int, default=16, help="sweep: frames per video (default 16)")
    p.add_argument("--ramps", type=int, default=2, help="sweep: focus ramps per video (default 2)")
    p.add_argument("--no-preview", action="store_true", help="do not write preview.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def options_from(args: argparse.Namespace) -> Options:
    width, height = args.size
    check(args.count >= 1, f"--count must be at least 1, got {args.count}")
    check(16 <= width <= 8192 and 16 <= height <= 8192, f"--size must be 16..8192 pixels, got {width} {height}")
    check(args.samples >= 1, f"--samples must be at least 1, got {args.samples}")
    check(args.bounces >= 0, f"--bounces must be 0 or more, got {args.bounces}")
    check(args.slices >= 1, f"--slices must be at least 1, got {args.slices}")
    check(args.focus != "fod" or args.camera != "fod" or args.slices <= 5, "--focus fod has 5 distances; use --focus even or random for more")
    check(args.f_stop is None or args.f_stop > 0, f"--f-stop must be positive, got {args.f_stop}")
    check(min(args.shake) >= 0, "--shake takes non-negative millimetres and degrees")
    check(args.dof_renders >= 1 and args.frames >= 2 and args.ramps >= 1,
          "--dof-renders and --ramps must be at least 1, --frames at least 2")
    quality = Quality(samples=args.samples, denoise=not args.no_denoise, max_bounces=args.bounces,
                      threads=args.threads)
    return Options(width=width, height=height, quality=quality, slices=args.slices, focus=args.focus,
                   f_stop=args.f_stop, breathing=args.breathing, shake_mm=args.shake[0], shake_deg=args.shake[1],
                   dof_renders=args.dof_renders, frames=args.frames, ramps=args.ramps, camera=args.camera)


def colour_files(folder: Path, names: Sequence[str]) -> list[str]:
    """The EXR files in ``folder`` holding colour (an R, G or B channel): what the denoiser touches."""
    import OpenEXR

    out = []
    for name in names:
        if name.endswith(".exr"):
            header = OpenEXR.File(str(folder / name), header_only=True)
            channels = {c.name.split(".")[-1] for part in header.parts for c in part.header.get("channels", [])}
            if channels & {"R", "G", "B"}:
                out.append(name)
    return out


def render_one(out: Path, kind: str, split: str, index: int, seed: int, options: Options,
               claim: io.Claim) -> None:
    """Render sample ``index`` under ``claim`` into its own temporary folder and commit it."""
    folder = io.start_sample(out, index, claim)
    record = render_sample(kind, split, index, io.sample_seed(seed, kind, split, index), options, folder)
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    varying = colour_files(folder, names) if options.quality.denoise else []
    io.commit_sample(out, index, record, claim, varying)


def generate(kind: str, count: int, out: Path, seed: int = 0, shard: tuple[int, int] = (0, 1), split: str = "train",
             options: Options = Options(), progress: bool = True, preview: bool = True,
             claim_timeout_s: float = io.CLAIM_TIMEOUT_S, manifest: bool = True) -> int:
    """Render the missing samples of shard ``shard`` into ``out``; the number this call rendered.

    Writes dataset.json first (or checks it matches), claims each missing sample before rendering
    it (skipping those another live run holds, and coming back to them once at the end in case
    that run died), commits each sample folder in one rename, and rewrites the manifest (and
    preview) of every complete sample last, unless ``manifest`` is false (a Ray shard: the
    driver writes it once).
    """
    io.check_kind_split(kind, split)
    description = {"format": io.FORMAT_VERSION, "kind": kind, "split": split, "count": count, "seed": seed,
                   "options": options.describe(kind)}
    io.open_dataset(out, description)
    io.sweep(out, claim_timeout_s)
    todo = [i for i in io.shard_indices(count, shard) if not io.is_complete(out, i)]
    bar = ProgressBar(f"{kind} {shard[0]}/{shard[1]}", unit=" samples", enabled=progress)
    start = time.monotonic()
    rendered = 0
    with io.Claims(out, claim_timeout_s) as claims:
        held: list[int] = []
        for attempt in range(2):  # the second pass revisits the samples another run held
            queue, held = (todo, []) if attempt == 0 else (held, [])
            for k, index in enumerate(queue):
                if not io.is_complete(out, index):
                    claim = claims.take(io.sample_name(index))
                    if claim is None:
                        held.append(index)
                    else:
                        try:
                            if not io.is_complete(out, index):  # another run may have just committed it
                                render_one(out, kind, split, index, seed, options, claim)
                                rendered += 1
                        finally:
                            claims.release(claim)
                if attempt == 0:
                    bar(k + 1, len(todo))
        result = None
        if manifest:
            then = (lambda m: write_preview(out) if m["complete"] else None) if preview else None
            result = io.write_manifest(out, claims, then=then)
    io.sweep(out, claim_timeout_s)
    if progress and (todo or held):
        seconds = time.monotonic() - start
        complete = len(io.complete_indices(out)) if result is None else result["complete"]
        rate = f" ({seconds / rendered:.2f} s/sample)" if rendered else ""
        skipped = f"; {len(held)} held by another live run, left to it" if held else ""
        sys.stderr.write(f"{kind}: rendered {rendered} samples in {seconds:.1f} s{rate}{skipped}; "
                         f"{complete}/{count} complete in {out}\n")
    return rendered


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    args = build_parser().parse_args(argv)
    try:
        generate(args.kind, args.count, Path(args.out), args.seed, io.parse_shard(args.shard), args.split,
                 options_from(args), progress=not args.quiet, preview=not args.no_preview)
    except InputError as exc:
        sys.stderr.write(f"generate: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("\ngenerate: interrupted; finished samples are kept, run the same command to resume\n")
        return 130
    return 0


if __name__ == "__main__":
    code = main()
    if code:
        sys.exit(code)
