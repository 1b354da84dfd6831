"""Worker ops of the depth nodes: ``stereo_depth`` and ``focal_stack_depth`` (see ``core/worker.py``).

Each op is its command's pipeline (``python -m core stereo-depth``, ``python -m core
focal-stack-depth``) on the pixels the compositor wrote for the node's inputs: the same core
functions, the same defaults, the same checks in the same order, so a node equals the command run
on those pixels. The inputs arrive as the EXR files the compositor wrote (RGBA, scene-linear),
which the commands' ``read_image`` would read as the same RGBA arrays; only the first three
channels take part in the matching and the focus measures, as in the commands.

One difference, for the compositor's sake: stereo depth behind infinity (disparity at or below
zero after the convergence offset) is ``inf`` in the command's files but a far finite depth on the
node (``core.focal_stack.slices.MAX_DEPTH_M``, the far limit focal-stack depth already uses),
because Layered Defocus needs a finite depth everywhere.

Core is imported inside the ops: the worker imports this module before it says it is ready, and
the add-on waits for that.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from .worker import Job

SLICE_INPUT = re.compile(r"slice_(\d+)$")  # the Focal Stack Depth node's inputs: slice_1, slice_2, ...
ALIGN_MODES = ("auto", "none", "breathing", "translation", "affine", "homography")  # the command's --align


def _device(params: dict[str, Any]) -> "torch.device":
    from .commands.common import pick_device

    return pick_device(params.get("device", "auto"))


def _weights(learned: Any, refined: bool = False) -> Path:
    """The weights file ``learned`` (``core.stereo.learned`` or ``core.focal_stack.learned``) loads
    by default, as the command does (``refined``: the stereo refiner's), or an error that names the
    file to provide.

    ``default_weights`` says which folder lacks weights and how to train them; the node's message
    also names the file, since the artist cannot see that folder from Blender.
    """
    from .errors import InputError, fail
    from .weights import WEIGHTS_DIR

    find = learned.default_refined_weights if refined else learned.default_weights
    names = learned.REFINED_WEIGHT_FILES if refined else learned.WEIGHT_FILES
    try:
        return find()
    except InputError as exc:
        others = f" (or {', '.join(names[:-1])})" if len(names) > 1 else ""
        fail(f"the learned method needs {WEIGHTS_DIR / names[-1]}{others}, which is missing: {exc}")


def _model(learned: Any, device: "torch.device", refined: bool = False) -> "torch.nn.Module":
    """The network of ``learned`` with its default weights (``refined``: the stereo refiner's),
    loaded once per worker (it serves frame after frame) and again when the file changes
    (retrained while Blender runs)."""
    path = _weights(learned, refined)
    return _load(learned.__name__, str(path), path.stat().st_mtime_ns, str(device))


@lru_cache(maxsize=2)
def _load(module: str, path: str, mtime_ns: int, device: str) -> "torch.nn.Module":
    import importlib

    return importlib.import_module(module).load_model(path, device)


# ----------------------------------------------------------------------------------------- stereo
def stereo_depth_op(job: "Job") -> dict[str, Any]:
    """Disparity, depth and confidence of the ``left`` view of the rectified pair ``left``, ``right``.

    Inputs: ``left``, ``right`` (H, W, 4) scene-linear, the same size.
    Params: ``method`` (``sgbm``, ``learned`` or ``refined``), ``max_disparity`` (pixels, ``None`` for the
    command's default: width / 8 for SGBM, the network's own), ``min_disparity`` (SGBM, pixels,
    default 0), ``camera`` (``core.stereo.StereoCamera`` fields: Blender's stereo camera), ``device``.
    Outputs: ``disparity`` (H, W, 1) pixels, ``x_left - x_right``; ``depth`` (H, W, 1) planar
    metres of the left view (``MAX_DEPTH_M`` at or beyond infinity); ``confidence`` (H, W, 1)
    in [0, 1].
    """
    import torch

    from .commands.common import image_to_tensor
    from .errors import check
    from .focal_stack.slices import MAX_DEPTH_M
    from .stereo import METHODS, StereoCamera, estimate_disparity
    from .stereo.sgbm import check_pair, default_max_disparity, round_disparity_range

    params = job.params
    method = params.get("method", "sgbm")
    check(method in METHODS, f"unknown stereo method {method!r}; use one of {', '.join(METHODS)}")
    camera = StereoCamera(**params["camera"])
    camera.validate()
    device = _device(params)
    left_np, right_np = job.input("left"), job.input("right")
    assert left_np is not None and right_np is not None
    check_pair(left_np, right_np)
    width = left_np.shape[1]
    job.progress(1, 4)

    max_disparity = params.get("max_disparity")
    min_disparity = int(params.get("min_disparity", 0))
    check(max_disparity is None or max_disparity > 0, f"max disparity must be positive, got {max_disparity}")
    if method == "sgbm":
        max_disparity = int(max_disparity) if max_disparity is not None else default_max_disparity(width)
        num, _ = round_disparity_range(max_disparity, min_disparity)
        max_disparity = min_disparity + num
    job.info["max_disparity"] = max_disparity

    model = None
    if method in ("learned", "refined"):
        from .stereo import learned

        model = _model(learned, device, refined=method == "refined")
    left, right = image_to_tensor(left_np, device), image_to_tensor(right_np, device)
    job.progress(2, 4)
    result = estimate_disparity(left, right, method, max_disparity, min_disparity, model)
    job.progress(3, 4)
    with torch.no_grad():
        depth = camera.to_depth(result.disparity.cpu())[0, 0].numpy()
    depth = np.where(np.isfinite(depth), depth, np.float32(MAX_DEPTH_M)).astype(np.float32)
    outputs = {
        "disparity": job.write("disparity", result.disparity[0, 0].detach().cpu().numpy()[..., None]),
        "depth": job.write("depth", depth[..., None]),
        "confidence": job.write("confidence", result.confidence[0, 0].detach().cpu().numpy()[..., None]),
    }
    job.progress(4, 4)
    return outputs


# ------------------------------------------------------------------------------------ focal stack
def focal_stack_depth_op(job: "Job") -> dict[str, Any]:
    """Depth, an all-in-focus image and confidence from the focal stack ``slice_1``, ``slice_2``, ...

    Inputs: ``slice_<k>`` (H, W, 4) scene-linear, all the same size, in socket order (any that are
    not linked are left out by the add-on).
    Params: ``focus_distances`` (metres, one per slice, ``inf`` allowed; ``None`` gives depth as a
    fractional slice index, classical method only), ``focal_length_mm`` (``None`` if unknown:
    enables the focus-breathing correction), ``method`` (``classical`` or ``learned``), ``align``
    (the command's ``--align``, default ``auto``), ``measure``, ``window`` (classical focus
    measure), ``device``.
    Outputs: ``depth`` (H, W, 1) planar metres; ``all_in_focus`` (H, W, 3) scene-linear;
    ``confidence`` (H, W, 1) in [0, 1].
    """
    import torch

    from .errors import check
    from .focal_stack.alignment import align_stack
    from .focal_stack.depth_from_focus import depth_from_focus
    from .focal_stack.focus_measures import MEASURES
    from .focal_stack.slices import check_focus_distances

    params = job.params
    method = params.get("method", "classical")
    check(method in ("classical", "learned"), f"unknown focal stack method {method!r}; use classical or learned")
    align = params.get("align", "auto")
    check(align in ALIGN_MODES, f"unknown alignment {align!r}; use one of {', '.join(ALIGN_MODES)}")
    measure, window = params.get("measure", "modified-laplacian"), int(params.get("window", 9))
    check(measure in MEASURES, f"unknown focus measure {measure!r}; use one of {', '.join(sorted(MEASURES))}")
    check(window >= 1, f"the focus-measure window must be at least 1, got {window}")
    focal_length = params.get("focal_length_mm")
    if focal_length is not None:
        check(focal_length > 0, f"the focal length must be positive, got {focal_length}")
    device = _device(params)

    keys = sorted((int(m.group(1)), key) for key in job.inputs if (m := SLICE_INPUT.match(key)))
    check(len(keys) >= 2, f"a focal stack needs at least 2 slices, got {len(keys)}")
    values = params.get("focus_distances")
    if values is None:
        check(method == "classical", "the learned method needs focus distances")
        distances = None
    else:
        distances = check_focus_distances([float(v) for v in values], len(keys)).tolist()
    model = None
    if method == "learned":
        from .focal_stack import learned

        model = _model(learned, device)

    images: list[np.ndarray] = []
    for number, key in keys:
        image = job.input(key)
        assert image is not None
        if images:
            first = images[0]
            check(image.shape[:2] == first.shape[:2], f"Slice {number} is {image.shape[1]}x{image.shape[0]} but "
                                                      f"Slice {keys[0][0]} is {first.shape[1]}x{first.shape[0]}")
        images.append(image)
    job.progress(1, 4)
    # As the command: colour slices keep RGB (alpha out), grey ones their one channel.
    channels = min(min(i.shape[2] for i in images), 3)
    stack = torch.stack([torch.from_numpy(np.ascontiguousarray(i[..., :channels].transpose(2, 0, 1)))
                         for i in images]).to(device)
    if channels == 1 and method == "learned":
        stack = stack.expand(-1, 3, -1, -1)

    mode = align
    if mode == "auto":
        mode = "translation" if focal_length and distances else "none"
    if mode != "none":
        breathing = focal_length is not None and distances is not None
        check(mode != "breathing" or breathing, "breathing alignment needs the focal length and focus distances")
        stack = align_stack(stack, distances if breathing else None, focal_length if breathing else None,
                            refine=None if mode == "breathing" else mode).images
    job.progress(2, 4)
    with torch.no_grad():
        if method == "learned":
            result = learned.learned_depth(stack, distances, model)
        else:
            result = depth_from_focus(stack, distances, measure=measure, window=window)
    job.progress(3, 4)
    job.info["depth_unit"] = "m" if distances is not None else "slice index"
    outputs = {
        "depth": job.write("depth", result.depth[0, 0].cpu().numpy()[..., None]),
        "all_in_focus": job.write("all_in_focus", result.all_in_focus[0].cpu().numpy().transpose(1, 2, 0)),
        "confidence": job.write("confidence", result.confidence[0, 0].cpu().numpy()[..., None]),
    }
    job.progress(4, 4)
    return outputs
