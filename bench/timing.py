"""Timing helpers the benches share: the best of several warm runs."""

from __future__ import annotations

import time
from typing import Callable


def best_of(repeats: int, run: Callable[[], object], sync: Callable[[], object] = lambda: None) -> float:
    """Seconds of the fastest of ``repeats`` runs of ``run`` after one warm-up; ``sync`` waits for
    queued GPU work (``torch.cuda.synchronize``) so that it is counted."""
    run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)
