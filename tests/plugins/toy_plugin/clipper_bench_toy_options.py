"""The toy engine's own flag, declared as the core's are (``clipper_bench.common.options.setting``):
run's --help, sweep files and the declared checks follow. A module apart from the engine's, which
imports nothing of the engine: the run's settings gather the options before any engine is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from clipper_bench.common.options import setting


def _label_problem(label: str) -> str | None:
    return "must not be empty: pass a word, e.g. --toy_label demo" if not label.strip() else None


@dataclass(frozen=True)
class ToyOptions:
    """The toy engine's own flag, declared as the core's are: run's --help, sweep files and checks
    follow."""

    toy_label: str = setting("toy", "engine", "--toy_label", check=_label_problem,
                             help="--engine toy: a label for the toy engine (default toy)")
