#!/usr/bin/env python3
"""Clipper's image_driver_1 entry point, kept where its users expect it.

Same flags as the original (``-m``, ``-d``, ``-b``, ``-r``, ``-c``, ``-p``, ``-g``, ``-n``) plus
clipper-bench's own; it runs ``clipper-bench run`` with them. See ``--help``.
"""

import sys
from pathlib import Path

# Runs from a checkout without installing, too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clipper_bench.entry import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
