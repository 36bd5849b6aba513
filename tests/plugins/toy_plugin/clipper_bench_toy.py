"""A toy clipper-bench plug-in: a model that answers as noop, the local engine under another name, and
a power source that reads a constant 42 W. Each is one definition here and one entry point; the
engine's own flag is declared in clipper_bench_toy_options.py, which imports nothing of the engine
(the run's settings read it before any engine is loaded)."""

from __future__ import annotations

import time

from clipper_bench.containers.models import Model, ModelSpec
from clipper_bench.engines.local.engine import LocalEngine
from clipper_bench.power.source import SCOPE_NODE, PowerSource, Reading
from clipper_bench.protocol.types import InputType


class ToyModel(Model):
    """Each input's number of elements, as noop answers."""

    def predict(self, inputs):
        """Each input's length as ASCII digits."""
        return [str(len(x)).encode() for x in inputs]


MODEL = ModelSpec(name="toy", input_type=InputType.DOUBLES, input_shape=(4,),
                  description="a plug-in's model: answers as noop", build=lambda opts: ToyModel())


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
