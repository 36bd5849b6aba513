"""The serving engines a sweep can run on, by ``--engine`` name.

Adding an engine is one module with an :class:`~.base.Engine` subclass and one line here; the
command line's choices, the plan's checks and the runner all read this registry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry itself imports nothing heavy: `--help` and replicas read it
    from ..settings import RunSettings
    from .base import Engine

ENGINES: dict[str, str] = {
    "local": "clipper_bench.sweep.engines.local:LocalEngine",
    "docker": "clipper_bench.sweep.engines.docker:DockerEngine",
    "ray": "clipper_bench.sweep.engines.ray:RayEngine",
    "clipper": "clipper_bench.sweep.engines.attached:AttachedEngine",
}


def engine_names() -> list[str]:
    """Every ``--engine`` choice, the default first."""
    return list(ENGINES)


def engine_class(name: str) -> type[Engine]:
    """The engine registered as ``name`` (imported on first use: Docker's and Ray's libraries load
    only when their engine is asked for)."""
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_engine(settings: RunSettings) -> Engine:
    """The engine ``settings.engine`` names, for one experiment."""
    return engine_class(settings.engine)(settings)


__all__ = ["ENGINES", "engine_class", "engine_names", "make_engine"]
