"""Speed of the built-in Mono Depth network at 512 x 512 (issue 17's target: 0.5 s on the 2-core CPU).

    python -m bench.mono_speed [--repeats N] [--weights W] [--threads N] [--size N]

Times ``MonoDepthNet.forward`` on one sRGB image of ``--size`` pixels square: the shipped weights
(or ``--weights``; a fresh default network when none ship; the architecture, not the values, sets
the time), the minimum of ``--repeats`` runs after a warm-up (the minimum, because other work on a
shared CPU only ever adds time), on the CPU and on CUDA where available. Prints seconds and the
ratio to the target.
"""

from __future__ import annotations

import argparse

import torch

from core.errors import InputError
from core.mono.network import MonoDepthNet, load_model
from bench.timing import best_of

CPU_TARGET_S = 0.5


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mono_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--weights", help="network weights (default: the shipped ones, else a fresh default network)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2: the target machine)")
    p.add_argument("--size", type=int, default=512, help="image side, a multiple of 32 (default 512)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        model = load_model(args.weights)
        source = args.weights or "shipped weights"
    except InputError:
        model, source = MonoDepthNet().eval(), "fresh default network (no weights shipped)"
    params = sum(v.numel() for v in model.parameters())
    image = torch.rand(1, 3, args.size, args.size)
    print(f"Mono Depth {args.size}x{args.size}, {source}, {params / 1e6:.2f} M parameters")
    with torch.inference_mode():
        cpu = best_of(args.repeats, lambda: model(image))
        print(f"  CPU ({args.threads} threads): {cpu:.3f} s  (target {CPU_TARGET_S} s: {cpu / CPU_TARGET_S:.2f}x of it)")
        if torch.cuda.is_available():
            gpu_model, gpu_image = model.cuda(), image.cuda()
            gpu = best_of(args.repeats, lambda: gpu_model(gpu_image), torch.cuda.synchronize)
            print(f"  CUDA ({torch.cuda.get_device_name()}): {gpu * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
