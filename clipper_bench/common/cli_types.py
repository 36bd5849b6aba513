"""Argument types shared by every command's flags."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

DAY_S = 86_400  # every duration: up to a day
DAY_MS = DAY_S * 1000
ANY_DURATION = "up to a day, as every duration"


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


def whole_number(text: str) -> int:
    """An integer flag value; ``1e6`` is taken as 1000000 (the range check then judges it), while
    ``2.5`` and ``nan`` are refused with the flag named."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    return int(value)


def number_text(value: float) -> str:
    """A number as a user would type it: ``86400`` (not ``86400.0``), ``0.1``, ``1e-09``."""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:g}"


@dataclass(frozen=True)
class Range:
    """The values a numeric flag takes, from ``lo`` to ``hi`` (``lo`` itself excluded when
    ``lo_open``), in ``unit``, and ``why`` these limits: shown in ``--help`` and in the one line that
    refuses a value outside them."""

    lo: float
    hi: float
    unit: str = ""
    why: str = ""
    lo_open: bool = False

    def text(self) -> str:
        """``0.1 to 86400 seconds`` or ``above 0 to 1``: the range as --help and errors show it."""
        unit = f" {self.unit}" if self.unit else ""
        lo = f"above {number_text(self.lo)}" if self.lo_open else number_text(self.lo)
        return f"{lo} to {number_text(self.hi)}{unit}"

    def help(self) -> str:
        """The sentence --help appends to the flag's own help."""
        return f"[range: {self.text()}" + (f"; {self.why}]" if self.why else "]")

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (a number, a tuple of numbers or None), or None: the limit
        it breaks and the range to pick from. NaN is outside every range."""
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if v is None:
                continue
            side = self._side(v)
            if side:
                why = f" ({self.why})" if self.why else ""
                return f"must be {side}, got {number_text(v)}{why}; pass a value from {self.text()}"
        return None

    def _side(self, v: float) -> str | None:
        unit = f" {self.unit}" if self.unit else ""
        if v != v:  # NaN: neither above nor below anything
            return "a number"
        if v > self.hi:
            return f"at most {number_text(self.hi)}{unit}"
        if not (v <= self.lo if self.lo_open else v < self.lo):
            return None
        if self.lo == 0 and not self.lo_open:
            return f"0 or more{unit}"
        if v <= 0 and ((self.lo_open and self.lo == 0) or (self.lo == 1 and isinstance(v, int))):
            return "positive"
        at_least = f"above {number_text(self.lo)}" if self.lo_open else f"at least {number_text(self.lo)}"
        return f"positive ({at_least}{unit})" if v <= 0 else f"{at_least}{unit}"


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` report a bad flag in one line on stderr (exit 2), without the usage block
    argparse prints first: ``clipper-bench run: error: argument --warmup: must be ...``."""
    def error(message: str) -> NoReturn:
        """argparse's error, in one line."""
        parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


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
