"""The console script's entry point: Ctrl-C while the program is still importing exits cleanly too."""

from __future__ import annotations

import sys

INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """Import the CLI, then run it; an interrupt during the (slow) imports exits 130 without a traceback."""
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print("clipper-bench: interrupted", file=sys.stderr)
        return INTERRUPTED
    return cli_main(argv)
