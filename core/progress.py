"""A progress bar on stderr for long work, with rate and time left.

Core functions take a plain ``progress(done, total)`` callable; this class is one such callable for
the command line. On a terminal it redraws one line; in a log (CI, a render farm) it prints a line
every few seconds instead of flooding it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Callable ``bar(done, total)`` that draws ``label [#####.....] 12/60 3.1/s ETA 0:05``.

    Nothing is drawn for work that ends within ``delay`` seconds.
    """

    def __init__(self, label: str, stream: TextIO | None = None, unit: str = "", min_interval: float = 0.1,
                 log_interval: float = 5.0, delay: float = 0.5, enabled: bool = True) -> None:
        self.label = label
        self.unit = f" {unit.strip()}" if unit.strip() else ""
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = min_interval if self.tty else log_interval
        self.start = time.monotonic()
        self.delay = delay  # short jobs finish before a bar would help; stay silent for them
        self.last_draw = -1e9
        self.drawn = False
        self.finished = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or self.finished:
            return
        now = time.monotonic()
        final = done >= total
        if now - self.start < self.delay and not self.drawn:
            return
        if not final and now - self.last_draw < self.interval:
            return
        self.drawn = True
        self.last_draw = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        width = 24
        filled = int(width * done / max(total, 1))
        line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{self.unit} "
                f"{rate:.1f}/s {'ETA ' + _clock(eta) if not final else 'in ' + _clock(elapsed)}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.finished = final


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
