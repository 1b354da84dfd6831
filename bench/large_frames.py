"""Peak memory and time of every command on a large frame (8000x6000 by default).

    python -m bench.large_frames [--size 8000x6000] [--slices 3] [--only defocus,stereo,focal]
                                 [--out out/bench/large] [--keep]

Synthetic inputs are written once under ``OUT`` (8-bit PNG images, an EXR depth): a textured
frame with depth from 1 to 10 m for ``defocus``, a rectified pair (a backdrop 24 px and a box
48 px apart) for ``stereo-depth``, and ``--slices`` slices focused near to far for
``focal-stack-depth``. Each command then runs alone in a fresh process under ``/usr/bin/time -v``
(psutil polling where that is missing), which reports its peak resident memory and wall time.
Printed: one row per command with both, against the bound of issue 15 (4 GiB at 8000x6000).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BOUND_GIB = 4.0


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8 sRGB texture with detail at several scales, built without float frames."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.uint16)
    for cell, weight in ((64, 3), (16, 3), (4, 2)):
        small = rng.integers(0, 256, (h // cell + 2, w // cell + 2, 3), dtype=np.uint8)
        out += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC if cell > 4 else cv2.INTER_NEAREST) * weight
    return (out // 8).astype(np.uint8)


def write_png(path: Path, rgb_u8: np.ndarray) -> None:
    cv2.imwrite(str(path), rgb_u8[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])


def make_inputs(out: Path, w: int, h: int, slices: int) -> dict[str, list[str]]:
    """Write the inputs once; returns each command's argument list."""
    import OpenEXR

    out.mkdir(parents=True, exist_ok=True)
    image, depth = out / "image.png", out / "depth.exr"
    left, right = out / "left.png", out / "right.png"
    stack = [out / f"slice_{i}.png" for i in range(slices)]
    distances = [round(float(d), 3) for d in np.geomspace(1.0, 10.0, slices)]
    if not all(p.exists() for p in (image, depth, left, right, *stack)):
        tex = texture(h, w + 64, 0)
        write_png(image, np.ascontiguousarray(tex[:, :w]))
        ramp = np.linspace(1.0, 10.0, w, dtype=np.float32)[None, :].repeat(h, 0)
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                     {"Z": ramp}).write(str(depth))
        del ramp
        l_img = np.ascontiguousarray(tex[:, 32:32 + w])
        r_img = np.ascontiguousarray(tex[:, 56:56 + w])  # backdrop 24 px
        y0, y1, x0, x1 = h // 3, 2 * h // 3, w // 3, 2 * w // 3
        box = texture(y1 - y0, x1 - x0, 1)
        l_img[y0:y1, x0:x1] = box
        r_img[y0:y1, x0 - 48:x1 - 48] = box  # box 48 px
        write_png(left, l_img)
        write_png(right, r_img)
        del l_img, r_img
        # Slices: the left half is sharpest in the near slices, the right half in the far ones.
        for i, p in enumerate(stack):
            sharp_near = abs(i - 0) + 0.5
            sharp_far = abs(i - (slices - 1)) + 0.5
            s = tex[:, :w].copy()
            half = w // 2
            s[:, :half] = cv2.GaussianBlur(s[:, :half], (0, 0), sharp_near)
            s[:, half:] = cv2.GaussianBlur(s[:, half:], (0, 0), sharp_far)
            write_png(p, s)
            del s
        del tex
    res = out / "results"
    res.mkdir(exist_ok=True)
    return {
        "defocus": ["defocus", "--image", str(image), "--depth", str(depth), "--focus-distance", "3",
                    "--f-stop", "2", "--focal-length", "50", "--output", str(res / "refocused.exr")],
        "stereo": ["stereo-depth", "--left", str(left), "--right", str(right), "--output", str(res / "disparity.pfm"),
                   "--max-disparity", "64"],
        "focal": ["focal-stack-depth", "--stack", *map(str, stack), "--focus-distances", *map(str, distances),
                  "--depth", str(res / "fs_depth.exr"), "--aif", str(res / "fs_aif.png"),
                  "--confidence", str(res / "fs_conf.exr")],
    }


def measure(argv: list[str]) -> tuple[int, float, float, str]:
    """(exit code, peak RSS GiB, wall seconds, last stderr line) of ``python -m core argv``."""
    cmd = [sys.executable, "-m", "core", *argv]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if Path("/usr/bin/time").exists():
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
        seconds = (int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))) if wall else float("nan")
        peak = int(rss.group(1)) / 2**20 if rss else float("nan")
        lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("\t")]
        code = proc.returncode
        if "Command exited with non-zero status" in proc.stderr:
            code = int(re.search(r"non-zero status (\d+)", proc.stderr).group(1))
        return code, peak, seconds, (lines[-1] if lines else "")[:120]
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    _, err = proc.communicate()
    lines = [line for line in err.splitlines() if line.strip()]
    return proc.returncode, peak / 2**30, time.perf_counter() - start, (lines[-1] if lines else "")[:120]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="8000x6000", help="WxH (default 8000x6000)")
    ap.add_argument("--slices", type=int, default=3, help="focal stack slices (default 3)")
    ap.add_argument("--only", default="defocus,stereo,focal", help="commands to run, comma separated")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench" / "large"), help="inputs and outputs folder")
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out) / f"{w}x{h}"
    commands = make_inputs(out, w, h, args.slices)
    rows = []
    for name in args.only.split(","):
        code, peak, seconds, last = measure(commands[name])
        rows.append((name, code, peak, seconds, last))
        print(f"{name}: exit {code}, peak {peak:.2f} GiB, {seconds:.0f} s  ({last})", flush=True)
    bound = BOUND_GIB
    print(f"\n| command ({w}x{h}{', ' + str(args.slices) + ' slices' if 'focal' in args.only else ''}) "
          f"| exit | time | peak memory | within {bound:.1f} GiB |")
    print("|---|---|---|---|---|")
    for name, code, peak, seconds, _ in rows:
        print(f"| {name} | {code} | {seconds:.0f} s | {peak:.2f} GiB | {'yes' if peak <= bound else 'NO'} |")
    if not args.keep:
        shutil.rmtree(out / "results", ignore_errors=True)
    return 0 if all(r[1] == 0 and r[2] <= bound for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
