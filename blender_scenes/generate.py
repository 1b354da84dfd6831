"""Render a Refocus training dataset with Cycles, headless, resumable and sharded.

Two ways in, one code path, the same files out::

    python -m blender_scenes.generate --kind defocusnet --count 1000 --out data/fod --seed 0 --shard 0/4
    blender -b -P blender_scenes/generate.py -- --kind defocusnet --count 1000 --out data/fod --seed 0 --shard 0/4

``--count`` is the size of the whole dataset; ``--shard i/N`` renders samples i, i+N, i+2N, ...
of it, so N machines (or a Slurm/Ray array) each run one shard into a shared folder, or into
their own folders merged afterwards (``python -m blender_scenes.validate DIR --reindex``).
Running the same command again skips every finished sample: a killed run resumes where it
stopped. Any number of runs may share one folder at once (a Slurm requeue while the old task still
runs, a second user): each claims a sample before rendering it and skips samples another live run
holds, so none is rendered twice or overwritten (see :mod:`blender_scenes.dataset_io`).

On a Ray cluster, one command renders it all, each shard a Ray task running one short process
(see :mod:`blender_scenes.ray_runner`)::

    python -m blender_scenes.generate --kind defocusnet --count 10000 --out /shared/fod --ray HEAD:6379

See :mod:`blender_scenes.dataset_io` for the layout and :mod:`dataset_samples` for what each kind
holds.
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
    p = OneLineParser(prog="generate", description="Render a Refocus dataset with Cycles (see blender_scenes/generate.py).",
                      allow_abbrev=False)  # --ray passes every option it does not know to the shards as given
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
    d.add_argument("--independent-noise", action="store_true",
                   help="a Cycles seed per render, so slices do not share one noise pattern")
    d.add_argument("--shake", type=float, nargs=2, default=(0.0, 0.0), metavar=("MM", "DEG"),
                   help="camera shake per slice, up to MM millimetres and DEG degrees (default none)")
    p.add_argument("--dof-renders", type=int, default=2, help="deeplens: depth-of-field renders per sample (default 2)")
    p.add_argument("--frames", type=int, default=16, help="sweep: frames per video (default 16)")
    p.add_argument("--ramps", type=int, default=2, help="sweep: focus ramps per video (default 2)")
    p.add_argument("--no-preview", action="store_true", help="do not write preview.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    c = p.add_argument_group("many processes and machines")
    c.add_argument("--claim-timeout", type=float, default=io.CLAIM_TIMEOUT_S, metavar="S",
                   help="break another host's claim on a sample when it was not refreshed for S seconds "
                        f"(default {io.CLAIM_TIMEOUT_S:g}; a dead process on this host is noticed at once)")
    c.add_argument("--no-manifest", action="store_true", help="leave manifest.json to the caller (a Ray driver)")
    c.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="render the shards as Ray tasks, each one short generator process; ADDRESS of a running "
                        "cluster (HOST:6379, auto), or none to start a local one (see blender_scenes/ray_runner.py)")
    c.add_argument("--ray-shards", type=int, default=None, metavar="N", help="with --ray: shards (default: one per "
                   "--shard-size samples)")
    c.add_argument("--shard-size", type=int, default=25, help="with --ray: samples per shard, i.e. per Blender "
                   "process (default 25)")
    c.add_argument("--ray-cpus", type=int, default=None, help="with --ray and no ADDRESS: CPUs of the local cluster "
                   "(default all)")
    c.add_argument("--ray-repo", default=None, help="with --ray: the repository's path on the worker nodes "
                   "(default this one's)")
    c.add_argument("--retries", type=int, default=2, help="with --ray: times a failed shard is tried again (default 2)")
    return p


# Options of the driver only: a Ray shard's process gets every other argument as given.
_DRIVER_OPTIONS = {"--ray": "?", "--ray-shards": 1, "--shard-size": 1, "--ray-cpus": 1, "--ray-repo": 1,
                   "--retries": 1, "--out": 1, "--shard": 1, "--threads": 1, "--quiet": 0, "--no-preview": 0,
                   "--no-manifest": 0}


def shard_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` without the driver's own options (what every Ray shard is started with)."""
    out, i = [], 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        takes = _DRIVER_OPTIONS.get(name)
        if takes is None:
            out.append(argv[i])
        elif "=" not in argv[i]:
            if takes == 1 or (takes == "?" and i + 1 < len(argv) and not argv[i + 1].startswith("-")):
                i += 1
        i += 1
    return out


def describe(kind: str, count: int, seed: int, split: str, options: Options) -> dict:
    """dataset.json's content."""
    return {"format": io.FORMAT_VERSION, "kind": kind, "split": split, "count": count, "seed": seed,
            "options": options.describe(kind)}


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
                   dof_renders=args.dof_renders, frames=args.frames, ramps=args.ramps, camera=args.camera,
                   independent_noise=args.independent_noise)


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
    io.open_dataset(out, describe(kind, count, seed, split, options))
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


def finish(out: Path, preview: bool = True) -> dict:
    """Write the manifest (and preview) of what ``out`` holds now; the manifest."""
    return io.write_manifest(out, then=(lambda m: write_preview(out) if m["complete"] else None) if preview else None)


def run_on_ray(args: argparse.Namespace, argv: Sequence[str], options: Options) -> int:
    from blender_scenes import ray_runner

    check(args.shard.strip() == "0/1", "--ray splits the dataset itself; leave out --shard (it is for Slurm arrays)")
    check(args.shard_size >= 1, f"--shard-size must be at least 1, got {args.shard_size}")
    io.check_kind_split(args.kind, args.split)
    figures = ray_runner.run(shard_arguments(argv), args.kind, args.count, Path(args.out),
                             describe(args.kind, args.count, args.seed, args.split, options),
                             address=args.ray or None, shards=args.ray_shards, shard_size=args.shard_size,
                             threads=max(args.threads, 1), retries=args.retries, num_cpus=args.ray_cpus,
                             repo=Path(args.ray_repo) if args.ray_repo else ray_runner.REPO,
                             progress=not args.quiet, finish=lambda out: finish(out, not args.no_preview))
    if not args.quiet:
        sys.stderr.write(f"{args.kind}: ray rendered {figures['rendered']} samples in {figures['seconds']:.1f} s "
                         f"({figures['samples_per_s']:.2f} samples/s) as {figures['shards']} shards on "
                         f"{len(figures['nodes'])} node(s), {figures['retried']} retried; "
                         f"{figures['complete']}/{args.count} complete in {args.out}\n")
    return 1 if figures["failed"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    args = build_parser().parse_args(argv)
    try:
        options = options_from(args)
        if args.ray is not None:
            return run_on_ray(args, argv, options)
        check(args.claim_timeout > 0, f"--claim-timeout must be positive, got {args.claim_timeout}")
        generate(args.kind, args.count, Path(args.out), args.seed, io.parse_shard(args.shard), args.split,
                 options, progress=not args.quiet, preview=not args.no_preview, claim_timeout_s=args.claim_timeout,
                 manifest=not args.no_manifest)
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
