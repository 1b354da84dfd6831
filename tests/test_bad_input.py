"""Issue 15: bad or hostile input to the three commands, with real files.

Every row runs the command line in process and checks the rule: exit code 2, exactly one line on
stderr (``refocus <command>: error: ...``) and nothing written, neither an output nor a temporary
file. A few rows are valid input that used to be refused (they must succeed), and two run a real
process (SIGTERM while it works; a stale temporary file of a killed run swept).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.cli import main
from core.imageio import read_image, read_map, write_exr, write_image, write_map

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "models" / "weights"
LENS = ["--f-stop", "2", "--focal-length", "50", "--sensor-width", "6"]


# ------------------------------------------------------------------------------------ the inputs
def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w + 8, h + 8), interpolation=cv2.INTER_CUBIC)[4:4 + h, 4:4 + w], 0, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    f: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        (d / name).write_bytes(data)
        f[name] = d / name

    img = texture(24, 32)
    write_image(d / "image.png", img)
    write_image(d / "image.jpg", img)
    write_exr(d / "depth.exr", {"Z": np.linspace(1, 5, 24 * 32, dtype=np.float32).reshape(24, 32)})
    base = texture(48, 80, 1)
    write_image(d / "left.png", base[:, 8:72])
    write_image(d / "right.png", base[:, 12:76])
    write_image(d / "left.jpg", base[:, 8:72])
    write_image(d / "grey.png", base[:, 8:72, :1])
    write_image(d / "one.png", np.full((1, 1, 3), 0.5, np.float32))
    for i, sigma in enumerate((0.3, 1.0, 2.0)):
        write_image(d / f"s{i}.png", cv2.GaussianBlur(img, (0, 0), sigma))
    write_image(d / "s0.jpg", img)
    for name in ("image.png", "depth.exr", "left.png", "right.png", "grey.png", "one.png", "s0.png", "s1.png",
                 "s2.png", "image.jpg", "left.jpg", "s0.jpg"):
        f[name] = d / name

    jpg = (d / "image.jpg").read_bytes()
    put("truncated.jpg", jpg[: len(jpg) * 2 // 3])
    put("corrupt.jpg", jpg[:-200] + b"\xff" * 8 + jpg[-192:])  # libjpeg: "Corrupt JPEG data", grey rows
    left_jpg = (d / "left.jpg").read_bytes()
    put("left_truncated.jpg", left_jpg[: len(left_jpg) // 2])
    put("left_corrupt.jpg", left_jpg[:-300] + b"\xff" * 8 + left_jpg[-292:])
    s0 = (d / "s0.jpg").read_bytes()
    put("slice_corrupt.jpg", s0[:-200] + b"\xff" * 8 + s0[-192:])
    put("slice_truncated.jpg", s0[: len(s0) * 2 // 3])
    png = (d / "image.png").read_bytes()
    put("truncated.png", png[: len(png) // 2])

    nan_img = img.copy()
    nan_img[3, 4, 0] = np.nan
    nan_img[10, 20, 2] = np.inf
    write_image(d / "nan.exr", nan_img)
    f["nan.exr"] = d / "nan.exr"
    nan_left = base[:, 8:72].copy()
    nan_left[5, 5] = np.nan
    write_image(d / "nan_left.exr", nan_left)
    f["nan_left.exr"] = d / "nan_left.exr"
    nan_slice = cv2.GaussianBlur(img, (0, 0), 1.0)
    nan_slice[7, 7, 1] = np.nan
    write_image(d / "nan_slice.exr", nan_slice)
    f["nan_slice.exr"] = d / "nan_slice.exr"

    pixels = np.ones((24, 32), "<f4").tobytes()
    put("bad_header.pfm", b"P7\n32 24\n-1.0\n" + pixels)
    put("bad_scale.pfm", b"Pf\n32 24\nabc\n" + pixels)
    put("zero_scale.pfm", b"Pf\n32 24\n0\n" + pixels)
    put("negative.pfm", b"Pf\n-32 24\n-1.0\n" + pixels)
    put("truncated.pfm", b"Pf\n32 24\n-1.0\n" + pixels[:1000])
    np.save(d / "truncated_src.npy", np.ones((24, 32), np.float32))
    put("truncated.npy", (d / "truncated_src.npy").read_bytes()[:500])

    write_image(d / "px.png", np.full((1, 1, 3), 0.5, np.float32))
    np.save(d / "px.npy", np.full((1, 1), 2.0, np.float32))
    write_image(d / "row.png", texture(4, 16)[:1])
    np.save(d / "row.npy", np.linspace(1, 3, 16, dtype=np.float32)[None])
    for name in ("px.png", "px.npy", "row.png", "row.npy"):
        f[name] = d / name

    put("binary_focus.txt", bytes(range(256)) * 4)

    stereo = torch.load(WEIGHTS / "stereonet_tiny.pt", weights_only=True)
    dff = torch.load(WEIGHTS / "dff_small.pt", weights_only=True)
    bad_key = dict(dff, config=dict(dff["config"], bogus=3))
    torch.save(bad_key, d / "bad_key.pt")
    wrong_shape = dict(dff, config=dict(dff["config"], width=16))
    torch.save(wrong_shape, d / "wrong_shape.pt")
    stereo_bad_shape = dict(stereo, config=dict(stereo["config"], features=8))
    torch.save(stereo_bad_shape, d / "stereo_wrong_shape.pt")

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo this ran > " + str(d / "pwned"),))

    with open(d / "malicious.pt", "wb") as fh:
        pickle.dump({"format": 1, "config": {}, "state_dict": {}, "x": Payload()}, fh, protocol=2)
    for name in ("bad_key.pt", "wrong_shape.pt", "stereo_wrong_shape.pt", "malicious.pt"):
        f[name] = d / name
    f["stereonet"] = WEIGHTS / "stereonet_tiny.pt"
    f["dff"] = WEIGHTS / "dff_small.pt"
    f["dir"] = d
    return f


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A folder nobody can create files in: mode 0555, made immutable too when we run as root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    immutable = False
    if _writable(folder):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    if not _writable(folder):
        yield folder
    else:  # no way to make a folder read-only here: /proc refuses new files to everyone
        yield Path("/proc")
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    os.chmod(folder, 0o755)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_bytes(b"")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


def cli(args, capsys) -> tuple[int, list[str]]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def refused(args, capsys, *folders: Path, match: str = "") -> str:
    """Run a command that must be refused: exit 2, one line, and nothing new in ``folders``."""
    before = {f: sorted(os.listdir(f)) for f in folders if f.is_dir() and f != Path("/proc")}
    code, lines = cli(args, capsys)
    command = str(args[0])
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"refocus {command}: error: "), lines
    assert match.lower() in lines[0].lower(), lines[0]
    for folder, names in before.items():
        assert sorted(os.listdir(folder)) == names, f"{folder} changed"
    return lines[0]


def defocus(image, depth, output, *extra):
    return ["defocus", "--image", image, "--depth", depth, "--focus-distance", "2", *LENS, "--output", output,
            "--quiet", *extra]


def stereo(left, right, output, *extra):
    return ["stereo-depth", "--left", left, "--right", right, "--output", output, "--quiet", *extra]


def focal(slices, depth, aif, *extra):
    return ["focal-stack-depth", "--stack", *slices, "--focus-distances", "0.5", "1", "2", "--depth", depth,
            "--aif", aif, "--quiet", *extra]


def slices(files):
    return [files["s0.png"], files["s1.png"], files["s2.png"]]


# -------------------------------------------------------------------------------- output, writing
def test_stereo_second_output_in_a_read_only_folder(files, capsys, out, read_only):
    refused(stereo(files["left.png"], files["right.png"], out / "d.pfm", "--depth", read_only / "z.exr",
                   "--baseline", "0.1", "--focal-length", "50"), capsys, out, match="cannot write")


def test_stereo_confidence_in_a_read_only_folder(files, capsys, out, read_only):
    refused(stereo(files["left.png"], files["right.png"], out / "d.pfm", "--confidence", read_only / "c.exr"),
            capsys, out, match="cannot write")


def test_focal_stack_aif_in_a_read_only_folder(files, capsys, out, read_only):
    refused(focal(slices(files), out / "d.exr", read_only / "a.png"), capsys, out, match="cannot write")


def test_focal_stack_confidence_in_a_read_only_folder(files, capsys, out, read_only):
    refused(focal(slices(files), out / "d.exr", out / "a.png", "--confidence", read_only / "c.exr"), capsys, out,
            match="cannot write")


@pytest.mark.parametrize("ext", [".exr", ".png"])
def test_defocus_output_in_a_read_only_folder(files, capsys, read_only, ext):
    refused(defocus(files["image.png"], files["depth.exr"], read_only / f"o{ext}"), capsys, match="cannot write")


@pytest.mark.parametrize("ext", [".exr", ".pfm", ".npy"])
def test_map_outputs_in_a_read_only_folder(files, capsys, read_only, ext):
    refused(stereo(files["left.png"], files["right.png"], read_only / f"d{ext}"), capsys, match="cannot write")
    refused(focal(slices(files), read_only / f"d{ext}", read_only / "a.png"), capsys, match="cannot write")


@pytest.mark.parametrize("command", ["defocus", "stereo-depth", "focal-stack-depth"])
def test_an_output_that_is_a_folder(files, capsys, out, command):
    (out / "x.exr").mkdir()
    if command == "defocus":
        args = defocus(files["image.png"], files["depth.exr"], out / "x.exr")
    elif command == "stereo-depth":
        args = stereo(files["left.png"], files["right.png"], out / "x.exr")
    else:
        args = focal(slices(files), out / "x.exr", out / "a.png")
    refused(args, capsys, out, match="is a folder")


def test_stereo_outputs_with_the_same_path(files, capsys, out):
    refused(stereo(files["left.png"], files["right.png"], out / "d.pfm", "--depth", out / "d.pfm", "--baseline",
                   "0.1", "--focal-length", "50"), capsys, out, match="same file")
    refused(stereo(files["left.png"], files["right.png"], out / "d.pfm", "--confidence", out / "sub/../d.pfm"),
            capsys, out, match="same file")


def test_focal_stack_outputs_with_the_same_path(files, capsys, out):
    refused(focal(slices(files), out / "x.exr", out / "x.exr"), capsys, out, match="same file")
    refused(focal(slices(files), out / "x.exr", out / "a.png", "--confidence", out / "x.exr"), capsys, out,
            match="same file")


def test_an_output_that_is_an_input_is_not_clobbered_half_way(files, capsys, out, tmp_path):
    # Writing over an input is allowed (it was read first) and happens whole, by one rename.
    image = tmp_path / "in.exr"
    write_image(image, read_image(files["image.png"]))
    code, lines = cli(defocus(image, files["depth.exr"], image), capsys)
    assert code == 0, lines
    assert read_image(image).shape == (24, 32, 3)


def test_sigterm_while_working_leaves_nothing(files, tmp_path):
    # A frame big enough to take a few seconds; SIGTERM lands during the work or the writing.
    big = tmp_path / "big"
    big.mkdir()
    write_image(big / "i.png", texture(600, 800, 3))
    write_exr(big / "d.exr", {"Z": np.linspace(1, 9, 600 * 800, dtype=np.float32).reshape(600, 800)})
    before = sorted(os.listdir(big))
    proc = subprocess.Popen([sys.executable, "-m", "core", *map(str, defocus(big / "i.png", big / "d.exr",
                                                                             big / "o.exr", "--step", "0.2"))],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    after = sorted(os.listdir(big))
    assert after in (before, sorted(before + ["o.exr"])), after  # never a temporary file
    if "o.exr" in after:  # it finished first: then the file is whole
        assert read_image(big / "o.exr").shape == (600, 800, 3)
    else:
        assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)


def test_stale_temporaries_of_a_killed_run_are_swept(files, capsys, out):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / f".o.exr.{dead.pid}-0123abcd.refocus-tmp.exr").write_bytes(b"x" * 1000)
    (out / f".o.{dead.pid}.tmp.exr").write_bytes(b"x" * 1000)  # the naming of earlier releases
    code, lines = cli(defocus(files["image.png"], files["depth.exr"], out / "o.exr"), capsys)
    assert code == 0, lines
    assert sorted(os.listdir(out)) == ["o.exr"]


# ------------------------------------------------------------------------------------ bad images
@pytest.mark.parametrize("name", ["truncated.jpg", "corrupt.jpg", "truncated.png"])
def test_damaged_image_for_defocus(files, capsys, out, name):
    refused(defocus(files[name], files["depth.exr"], out / "o.exr"), capsys, out, match=name)


@pytest.mark.parametrize("name,match", [("left_truncated.jpg", "truncated"), ("left_corrupt.jpg", "Corrupt JPEG")])
def test_damaged_left_image(files, capsys, out, name, match):
    refused(stereo(files[name], files["right.png"], out / "d.pfm"), capsys, out, match=match)


@pytest.mark.parametrize("name,match", [("slice_truncated.jpg", "truncated"), ("slice_corrupt.jpg", "Corrupt JPEG")])
def test_damaged_slice(files, capsys, out, name, match):
    refused(focal([files["s0.png"], files[name], files["s2.png"]], out / "d.exr", out / "a.png"), capsys, out,
            match=match)


def test_nan_pixels_are_refused_in_every_command(files, capsys, out):
    refused(defocus(files["nan.exr"], files["depth.exr"], out / "o.exr"), capsys, out, match="NaN or infinite")
    refused(stereo(files["nan_left.exr"], files["right.png"], out / "d.pfm"), capsys, out, match="NaN or infinite")
    refused(focal([files["s0.png"], files["nan_slice.exr"], files["s2.png"]], out / "d.exr", out / "a.png"),
            capsys, out, match="NaN or infinite")


@pytest.mark.parametrize("policy", ["zero", "nearest"])
def test_nan_pixels_repaired_when_asked(files, capsys, out, policy):
    code, lines = cli(defocus(files["nan.exr"], files["depth.exr"], out / "o.exr", "--nan-policy", policy), capsys)
    assert code == 0, lines
    assert np.isfinite(read_image(out / "o.exr")).all()


@pytest.mark.parametrize("name,match", [("bad_header.pfm", "not a PFM file"), ("bad_scale.pfm", "bad scale"),
                                        ("zero_scale.pfm", "bad scale"), ("negative.pfm", "bad width '-32'"),
                                        ("truncated.pfm", "truncated"), ("truncated.npy", "truncated.npy")])
def test_malformed_depth_maps(files, capsys, out, name, match):
    refused(defocus(files["image.png"], files[name], out / "o.exr"), capsys, out, match=match)


@pytest.mark.parametrize("image,depth", [("px.png", "px.npy"), ("row.png", "row.npy")])
def test_tiny_but_valid_depth_maps(files, capsys, out, image, depth):
    code, lines = cli(defocus(files[image], files[depth], out / "o.exr"), capsys)
    assert code == 0, lines
    assert read_image(out / "o.exr").shape[:2] == read_map(files[depth]).shape


def test_grey_left_with_rgb_right(files, capsys, out):
    refused(stereo(files["grey.png"], files["right.png"], out / "d.pfm"), capsys, out, match="channel")


def test_a_one_pixel_pair(files, capsys, out):
    refused(stereo(files["one.png"], files["one.png"], out / "d.pfm"), capsys, out)


# ------------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("extra,match", [
    (["--blades", "100000000"], "blades"),
    (["--step", "1e-9"], "step"),
    (["--device", "bogus"], "unknown device"),
    (["--k-max", "100001"], "k_max"),
])
def test_defocus_parameters_out_of_range(files, capsys, out, extra, match):
    refused(defocus(files["image.png"], files["depth.exr"], out / "o.exr", *extra), capsys, out, match=match)


def test_focus_box_nan(files, capsys, out):
    args = ["defocus", "--image", files["image.png"], "--depth", files["depth.exr"], "--focus-box", "nan", "0", "10",
            "10", *LENS, "--output", out / "o.exr", "--quiet"]
    refused(args, capsys, out, match="focus box")


@pytest.mark.parametrize("extra,match", [
    (["--min-disparity", "-100000"], "min disparity"),
    (["--max-disparity", "100000"], "max disparity"),
    (["--max-disparity", "4000"], "wider than"),
    (["--device", "bogus"], "unknown device"),
])
def test_stereo_parameters_out_of_range(files, capsys, out, extra, match):
    refused(stereo(files["left.png"], files["right.png"], out / "d.pfm", *extra), capsys, out, match=match)


@pytest.mark.parametrize("extra,match", [(["--window", "100001"], "window"), (["--device", "bogus"], "unknown device"),
                                         (["--method", "physical", "--focal-length", "50"], "needs the camera")])
def test_focal_stack_parameters_out_of_range(files, capsys, out, extra, match):
    refused(focal(slices(files), out / "d.exr", out / "a.png", *extra), capsys, out, match=match)


def test_binary_focus_file(files, capsys, out):
    args = ["focal-stack-depth", "--stack", *slices(files), "--focus-file", files["binary_focus.txt"],
            "--depth", out / "d.exr", "--aif", out / "a.png", "--quiet"]
    refused(args, capsys, out, match="focus file")


# ---------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize("weights,match", [("stereonet", "another network"), ("bad_key.pt", "unknown config key"),
                                           ("wrong_shape.pt", "do not fit"), ("malicious.pt", "refused")])
def test_focal_stack_weights(files, capsys, out, weights, match):
    refused(focal(slices(files), out / "d.exr", out / "a.png", "--method", "learned", "--weights", files[weights]),
            capsys, out, match=match)
    assert not (files["dir"] / "pwned").exists()


@pytest.mark.parametrize("weights,match", [("dff", "another network"), ("stereo_wrong_shape.pt", "do not fit"),
                                           ("malicious.pt", "refused")])
def test_stereo_weights(files, capsys, out, weights, match):
    refused(stereo(files["left.png"], files["right.png"], out / "d.pfm", "--method", "learned", "--weights",
                   files[weights]), capsys, out, match=match)
    assert not (files["dir"] / "pwned").exists()


# ----------------------------------------------------------------------------------------- memory
def test_a_job_that_cannot_fit_in_memory_is_refused_before_work(files, capsys, out, monkeypatch):
    monkeypatch.setenv("REFOCUS_MEMORY_LIMIT", "1M")
    line = refused(defocus(files["image.png"], files["depth.exr"], out / "o.exr"), capsys, out, match="memory")
    assert "MiB" in line
    refused(stereo(files["left.png"], files["right.png"], out / "d.pfm"), capsys, out, match="needs about")
    refused(focal(slices(files), out / "d.exr", out / "a.png"), capsys, out, match="needs about")


def test_a_frame_whose_header_asks_for_terabytes(files, capsys, out):
    # A PNG header claiming 100000 x 100000 pixels: refused from the header, nothing decoded.
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (out.parent / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    refused(defocus(out.parent / "huge.png", files["depth.exr"], out / "o.exr"), capsys, out, match="memory")


def test_running_out_of_memory_is_one_line(tmp_path):
    # Address space capped below what the job takes (the estimate is told there is plenty):
    # the allocation failure, wherever it strikes, is one line and exit 2, and nothing is written.
    import resource

    write_image(tmp_path / "i.png", texture(2000, 3000, 4))
    write_exr(tmp_path / "d.exr", {"Z": np.full((2000, 3000), 3.0, np.float32)})
    out = tmp_path / "out"
    out.mkdir()

    env = dict(os.environ, REFOCUS_MEMORY_LIMIT="1T", OMP_NUM_THREADS="1")
    # What the libraries alone map (a CUDA build of torch maps far more than a CPU one), plus 400 MiB.
    probe = ("import core.cli, core.defocus, core.pipelines.defocus, cv2, OpenEXR, torch\n"
             "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmPeak')][0])")
    baseline_kib = int(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                                      check=True).stdout.strip())
    limit = baseline_kib * 1024 + 400 * 2**20

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "core", *map(str, defocus(tmp_path / "i.png", tmp_path / "d.exr",
                                                                          out / "o.exr"))],
                          cwd=ROOT, env=env, preexec_fn=cap, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "out of memory" in lines[0], lines
    assert os.listdir(out) == []
