"""A toy clipper-bench plug-in's model: it answers as noop plus an offset, its own flag. One file and
one entry point, the flag with it. The run's settings read the model's options when they are built,
so this module imports nothing of clipper_bench's engines or sweep (only what models may use)."""

from __future__ import annotations

from dataclasses import dataclass

from clipper_bench.common.cli_types import Range, whole_number
from clipper_bench.common.options import setting
from clipper_bench.containers.models import Model, ModelSpec
from clipper_bench.protocol.types import InputType


@dataclass(frozen=True)
class ToyModelOptions:
    """The toy model's own flag: run, serve, container, plan and pipeline files offer it."""

    toy_offset: int = setting(0, "models", "--toy_offset", type=whole_number,
                              help="-m toy: added to every answer (default 0)",
                              limits=Range(0, 1000, "", "a toy's answers stay short"))


class ToyModel(Model):
    """Each input's number of elements plus an offset, as ASCII digits."""

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def predict(self, inputs):
        """Each input's length plus the offset, as ASCII digits."""
        return [str(len(x) + self.offset).encode() for x in inputs]


MODEL = ModelSpec(name="toy", input_type=InputType.DOUBLES, input_shape=(4,),
                  description="a plug-in's model: answers as noop, plus --toy_offset",
                  build=lambda opts: ToyModel(opts.of(ToyModelOptions).toy_offset), options=ToyModelOptions)
