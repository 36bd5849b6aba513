"""A toy clipper-bench plug-in's engine and power source: the local engine under another name, and a
power source that reads a constant 42 W. Each is one definition here and one entry point; the
engine's own flag is declared in clipper_bench_toy_options.py, which imports nothing of the engine
(the run's settings read it before any engine is loaded). The toy model, with its own flag, is
clipper_bench_toy_model.py."""

from __future__ import annotations

import time

from clipper_bench.engines.local.engine import LocalEngine
from clipper_bench.power.source import SCOPE_NODE, PowerSource, Reading


class ToyEngine(LocalEngine):
    """The local engine, registered by a plug-in."""

    name = "toy"


class ToySource(PowerSource):
    """A whole-machine meter that always reads 42 W."""

    name = "toy"
    scope = SCOPE_NODE

    def __init__(self, target: str, name: str = "toy", credentials_file=None, poll_s: float = 1.0):
        self.name = name
        self.watts = float(target or 42)

    def open(self) -> None:
        """Nothing to open."""

    def read(self) -> list[Reading]:
        """One channel at a constant power."""
        return [Reading(channel=f"{self.name}_node", power_w=self.watts, t=time.time())]
