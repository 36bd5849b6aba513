"""Calibration models that make the serving path itself measurable.

* ``noop`` answers at once (each output is the number of elements of its input), so what is
  measured is the engine, the transport and the load generator.
* ``noop-image`` does the same for a 224x224x3 uint8 image (``vgg``'s input) with a 16-byte answer:
  the image data path (150 KB per query) without a GPU.
* ``sleep`` takes ``sleep_ms`` per batch, whatever its size, so the ideal throughput of a
  configuration is known exactly: replicas x batch size / sleep time.
* ``crash`` is ``noop`` except that an input whose first value is negative makes it raise, as a
  model with a bug would: it shows what a model failing in service does to a run (the replica
  exits, its queries are answered with errors, the rest carry on).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...common.cli_types import ANY_DURATION, DAY_MS, Range, finite_float
from ...common.options import setting
from ...protocol.types import InputType
from .base import Model, ModelSpec, register


@dataclass(frozen=True)
class SleepOptions:
    """The sleep model's own option: how long each batch takes."""

    sleep_ms: float = setting(10.0, "models", "--sleep_ms", type=finite_float,
                              help="batch time of the 'sleep' model in ms (default 10)",
                              limits=Range(0, DAY_MS, "ms", ANY_DURATION))


class NoopModel(Model):
    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """Each input's number of elements as ASCII digits, at once."""
        return [str(len(x)).encode() for x in inputs]


class NoopImageModel(Model):
    """Answers each image with 16 bytes at once: the image data path without a model."""

    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """Each input's length as 16 zero-padded ASCII digits, at once."""
        return [b"%016d" % len(x) for x in inputs]


class ModelCrash(RuntimeError):
    """What the ``crash`` model raises."""


class CrashModel(Model):
    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """As noop, but raise ModelCrash if any input's first value is negative."""
        for x in inputs:
            if len(x) and x[0] < 0:
                raise ModelCrash(f"crash model: input starting with {x[0]:g} is poison")
        return [str(len(x)).encode() for x in inputs]


class SleepModel(Model):
    def __init__(self, sleep_ms: float) -> None:
        if sleep_ms < 0:
            raise ValueError(f"sleep_ms must be at least 0, got {sleep_ms}")
        self.sleep_s = sleep_ms / 1000.0

    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """As noop, but return ``sleep_ms`` after the call began, whatever the batch size."""
        deadline = time.perf_counter() + self.sleep_s
        outputs = [str(len(x)).encode() for x in inputs]
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        return outputs


register(
    ModelSpec(
        name="noop",
        input_type=InputType.DOUBLES,
        input_shape=(8,),
        description="answers at once; measures the serving path",
        build=lambda opts: NoopModel(),
    )
)
register(
    ModelSpec(
        name="noop-bytes",
        input_type=InputType.BYTES,
        input_shape=(64,),
        description="noop for bytes inputs: answers each input's length",
        build=lambda opts: NoopModel(),
    )
)
register(
    ModelSpec(
        name="noop-image",
        input_type=InputType.BYTES,
        input_shape=(224, 224, 3),
        description="answers a 224x224x3 uint8 image (vgg's input) with 16 bytes at once: the image data "
                    "path without compute, measurable and testable without a GPU",
        build=lambda opts: NoopImageModel(),
        output_description="16 bytes (the input's length, zero-padded)",
    )
)
register(
    ModelSpec(
        name="sleep",
        input_type=InputType.DOUBLES,
        input_shape=(8,),
        description="each batch takes --sleep_ms milliseconds, whatever its size",
        build=lambda opts: SleepModel(opts.of(SleepOptions).sleep_ms),
        options=SleepOptions,
    )
)
register(
    ModelSpec(
        name="crash",
        input_type=InputType.DOUBLES,
        input_shape=(8,),
        description="noop that raises on an input whose first value is negative (fault tests)",
        build=lambda opts: CrashModel(),
    )
)
