"""``python -m core ...``: the Refocus command line (see core.cli)."""

from .cli import main

raise SystemExit(main())
