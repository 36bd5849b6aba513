"""Argument types shared by every command's flags."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def finite_float(text: str) -> float:
    """A float flag value that is a real number: ``nan``, ``inf`` and ``1e999`` are refused at once,
    with the flag named, instead of failing every configuration later."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port number, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {value}")
    return value


def check_writable_dir(path: Path, flag: str = "--results_dir", what: str = "results directory") -> None:
    """Make ``path`` if needed and prove it writable, or raise UsageError naming the flag to change."""
    from .errors import UsageError

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{what} {path} is not writable ({exc.strerror}); pass {flag} DIR") from None
