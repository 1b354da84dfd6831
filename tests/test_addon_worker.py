"""The worker process (core/worker.py) driven by the add-on's own client (addon/worker_client.py).

Real processes, real files: the client starts ``python -m core.worker`` with this Python, sends
requests over the pipe and reads the answers, as the add-on does inside Blender.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from addon.cache import ResultCache, result_key
from addon.errors import RefocusError
from addon.worker_client import WorkerClient
from core.defocus import refocus
from core.contract import PROTOCOL_VERSION
from core.imageio import write_exr
from core.optics import Lens

LENS = {"focal_length_mm": 50.0, "f_stop": 1.4, "focus_distance": 1.5}  # core.optics.Lens
PARAMS = {"focal_length_mm": 50.0, "f_stop": 1.4, "focus_distance_m": 1.5}  # the op's parameters


@pytest.fixture(scope="module")
def client() -> WorkerClient:
    worker = WorkerClient(sys.executable)
    worker.start()
    yield worker
    worker.close()


def _inputs(tmp: Path, h: int = 40, w: int = 56) -> tuple[dict, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    image = rng.random((h, w, 4), dtype=np.float32) * 2.0  # HDR values pass through
    depth = np.full((h, w), 3.0, np.float32)
    depth[:, : w // 2] = 1.5
    write_exr(tmp / "image.exr", {c: image[..., i] for i, c in enumerate("RGBA")})
    write_exr(tmp / "depth.exr", {"V": depth})
    return {"image": {"path": str(tmp / "image.exr")}, "depth": {"path": str(tmp / "depth.exr")}}, image, depth


def _core(image: np.ndarray, depth: np.ndarray, lens: Lens) -> np.ndarray:
    out = refocus(torch.from_numpy(image.transpose(2, 0, 1).copy())[None], torch.from_numpy(depth)[None, None], lens)
    return out[0].numpy().transpose(1, 2, 0)


def test_ready_message_names_the_protocol_and_ops(client: WorkerClient) -> None:
    assert client.alive
    assert client.info["protocol"] == PROTOCOL_VERSION
    assert set(client.info["specs"]) == set(client.info["ops"])
    assert "layered_defocus" in client.info["ops"]
    assert client.start_seconds > 0.0


def test_layered_defocus_equals_core(client: WorkerClient, tmp_path: Path) -> None:
    inputs, image, depth = _inputs(tmp_path)
    result = client.run("layered_defocus", inputs, PARAMS, {"image": str(tmp_path / "out.npy")})
    out = np.load(result["outputs"]["image"]["path"])
    assert out.shape == image.shape
    np.testing.assert_allclose(out, _core(image, depth, Lens(**LENS)), atol=1e-6)
    assert result["info"]["focus_distance_m"] == pytest.approx(1.5)


def test_linked_focus_distance_and_focus_point_override_the_lens(client: WorkerClient, tmp_path: Path) -> None:
    inputs, image, depth = _inputs(tmp_path)
    write_exr(tmp_path / "focus.exr", {"V": np.full((3, 3), 3.0, np.float32)})
    linked = client.run("layered_defocus", {**inputs, "focus_distance": {"path": str(tmp_path / "focus.exr")}},
                        PARAMS, {"image": str(tmp_path / "a.npy")})
    picked = client.run("layered_defocus", inputs, {**PARAMS, "focus_point": [0.9, 0.5]},
                        {"image": str(tmp_path / "b.npy")})
    expected = _core(image, depth, Lens(**{**LENS, "focus_distance": 3.0}))
    for result in (linked, picked):
        assert result["info"]["focus_distance_m"] == pytest.approx(3.0)
        np.testing.assert_allclose(np.load(result["outputs"]["image"]["path"]), expected, atol=1e-6)


def test_a_linked_focus_without_a_value_falls_back_to_the_node_focus_and_says_so(client: WorkerClient,
                                                                                  tmp_path: Path) -> None:
    """A Focus Track that failed writes zeros: the node refocuses at its own distance, never passes through."""
    inputs, image, depth = _inputs(tmp_path)
    write_exr(tmp_path / "zeros.exr", {"V": np.zeros((3, 3), np.float32)})
    result = client.run("layered_defocus", {**inputs, "focus_distance": {"path": str(tmp_path / "zeros.exr")}},
                        PARAMS, {"image": str(tmp_path / "z.npy")})
    assert result["info"]["focus_distance_m"] == pytest.approx(1.5)
    assert any("holds no distance" in w for w in result["warnings"])
    np.testing.assert_allclose(np.load(result["outputs"]["image"]["path"]), _core(image, depth, Lens(**LENS)), atol=1e-6)


@pytest.mark.parametrize("case, message", [
    ("no_depth", "the Depth input is not connected"),
    ("small_depth", "the image is 56x40 but the depth is 28x20"),
    ("negative_depth", "depth must be positive everywhere"),
    ("zero_f_stop", "the f-stop must be above 0"),
])
def test_bad_input_is_one_sentence_and_the_worker_keeps_serving(client: WorkerClient, tmp_path: Path,
                                                                case: str, message: str) -> None:
    inputs, _, depth = _inputs(tmp_path)
    params = dict(PARAMS)
    if case == "no_depth":
        del inputs["depth"]
    elif case == "small_depth":
        write_exr(tmp_path / "depth.exr", {"V": depth[::2, ::2]})
    elif case == "negative_depth":
        write_exr(tmp_path / "depth.exr", {"V": -depth})
    else:
        params["f_stop"] = 0.0
    request = client.submit("layered_defocus", inputs, params, {"image": str(tmp_path / "out.npy")})
    client.wait(request)
    assert request.kind == "input"
    assert message in str(request.error)
    assert not (tmp_path / "out.npy").exists()
    assert client.alive


def test_unknown_op_is_reported_as_unsupported(client: WorkerClient, tmp_path: Path) -> None:
    with pytest.raises(RefocusError, match="no 'no_such_op' operation"):
        client.run("no_such_op", {}, {}, {})


def test_cancel_stops_a_request_and_the_next_one_runs(client: WorkerClient, tmp_path: Path) -> None:
    inputs, image, _ = _inputs(tmp_path)
    slow = client.submit("echo", {"image": inputs["image"]}, {"steps": 200, "seconds": 0.02},
                         {"image": str(tmp_path / "slow.npy")})
    client.cancel(slow)
    client.wait(slow)
    assert slow.kind == "cancelled"
    assert not (tmp_path / "slow.npy").exists()
    quick = client.run("echo", {"image": inputs["image"]}, {"steps": 2}, {"image": str(tmp_path / "quick.npy")})
    np.testing.assert_array_equal(np.load(quick["outputs"]["image"]["path"]), image)


def test_progress_reaches_the_client(client: WorkerClient, tmp_path: Path) -> None:
    inputs, _, _ = _inputs(tmp_path)
    seen: list[tuple[int, int]] = []
    client.run("echo", {"image": inputs["image"]}, {"steps": 5}, {"image": str(tmp_path / "e.npy")},
               progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (5, 5)


def test_a_crash_fails_the_open_request_with_the_reason(tmp_path: Path) -> None:
    worker = WorkerClient(sys.executable)
    worker.start()
    inputs, _, _ = _inputs(tmp_path)
    request = worker.submit("echo", {"image": inputs["image"]}, {"steps": 500, "seconds": 0.02},
                            {"image": str(tmp_path / "e.npy")})
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.wait(request)
    assert request.kind == "crashed"
    assert "stopped unexpectedly (killed by signal 9)" in str(request.error)
    assert not worker.alive
    worker.close()


def test_a_python_without_refocus_says_why_it_cannot_start(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(RefocusError, match="could not start the Refocus worker: ModuleNotFoundError: No module named 'torch'"):
        WorkerClient(str(fake)).start()
    with pytest.raises(RefocusError, match="cannot start the worker Python"):
        WorkerClient(str(tmp_path / "missing")).start()


def test_result_cache_is_bounded_and_keyed_by_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.exr", tmp_path / "b.exr"
    a.write_bytes(b"same pixels")
    b.write_bytes(b"same pixels")
    key_a = result_key("node", "layered_defocus", 1, {"f": 2.0}, [("image", str(a))])
    assert key_a == result_key("node", "layered_defocus", 1, {"f": 2.0}, [("image", str(b))])
    assert key_a != result_key("node", "layered_defocus", 2, {"f": 2.0}, [("image", str(a))])
    assert key_a != result_key("node", "layered_defocus", 1, {"f": 2.8}, [("image", str(a))])
    cache = ResultCache(capacity_bytes=3 * 4000)
    for k in range(5):
        cache.put(f"k{k}", {"image": np.zeros(1000, np.float32)})
        cache.get("k0")  # the most recently used survives
    assert set(cache.entries) == {"k0", "k3", "k4"}
    assert cache.size <= cache.capacity


def test_cache_keys_follow_pixels_not_the_frame_number_in_the_exr_header(tmp_path: Path) -> None:
    """A still writes Frame "001" into its EXRs, an animation "1": the same pixels, one key."""
    import OpenEXR

    pixels = np.random.default_rng(3).random((20, 30), dtype=np.float32)
    for name, frame, values in (("still", "001", pixels), ("anim", "1", pixels), ("other", "1", pixels + 1e-3)):
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, "Frame": frame}
        OpenEXR.File(header, {"R": values}).write(str(tmp_path / f"{name}.exr"))
    assert (tmp_path / "still.exr").read_bytes() != (tmp_path / "anim.exr").read_bytes()
    key = lambda name: result_key("n", "layered_defocus", 1, {}, [("image", str(tmp_path / f"{name}.exr"))])
    assert key("still") == key("anim")
    assert key("still") != key("other")
