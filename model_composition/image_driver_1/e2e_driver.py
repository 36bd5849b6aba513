#!/usr/bin/env python3
"""The original image_driver_1's end-to-end driver, kept where its users expect it.

Serves the image_driver_1 pipeline (VGG -> KPCA-SVM beside Inception -> LightGBM) and sweeps its
stage configurations; it runs ``clipper-bench pipeline`` with the built-in ``image_driver_1``
description unless the first argument names another pipeline file. See ``--help``.
"""

import sys
from pathlib import Path

# Runs from a checkout without installing, too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clipper_bench.entry import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        args = ["image_driver_1", *args]
    sys.exit(main(["pipeline", *args]))
