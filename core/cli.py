"""The ``python -m core`` command line: one subcommand per capability.

Every subcommand reports bad input the same way: one line ``refocus <command>: error: ...`` on
stderr, exit code 2, and no output file written. Subcommands live in :mod:`core.commands`, each a
module with ``register(subparsers)``; this module only parses and dispatches.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import InputError
from .outputs import Terminated

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from .commands import commands

    parser = OneLineParser(prog="refocus", description="Depth estimation and physically based refocusing.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in commands():
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as exc:
        sys.stderr.write(f"refocus {args.command}: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write(f"\nrefocus {args.command}: interrupted, nothing written\n")
        return 130
    except Exception as exc:
        from .memory import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        sys.stderr.write(f"refocus {args.command}: error: out of memory: the job is too large for this machine; "
                         f"use a smaller frame (nothing written)\n")
        return EXIT_BAD_INPUT
    except Terminated as exc:  # SIGTERM while writing: core.outputs removed the temporary files
        sys.stderr.write(f"refocus {args.command}: terminated, nothing written\n")
        return int(exc.code)
