"""The end of every training command: torch's thread count, then the run, one line and exit 2 on bad input."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

import torch

from core.errors import InputError


def run_training(prog: str, train: Callable[[argparse.Namespace], object], args: argparse.Namespace) -> int:
    """``train(args)`` with ``args.threads`` torch threads (when set); an InputError is one line on
    stderr prefixed with ``prog`` and exit code 2."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        train(args)
    except InputError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return 2
    return 0
