"""The serving engines a sweep can run on, by ``--engine`` name.

Each engine has one home here: ``local.py``, and a package for each engine with a manager or an
application of its own (``docker/``, ``clipper/``, ``ray/``: ``engine.py`` beside it). Adding an engine
is one module with an :class:`~.base.Engine` subclass and one line here (or, from a separate package, an entry point in the ``clipper_bench.engines`` group whose value is
``module:Class``); the command line's choices, the plan's checks and the runner all read this registry.

The registry imports nothing of the sweep, not even for type checking: the sweep's ``settings.py``
and ``plan.py`` read it, and ``base.py`` (which imports both) sits above them, so imports run one way.
:func:`~.base.make_engine` makes the engine for one experiment.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..common.plugins import ENGINE_OPTIONS_GROUP, ENGINES_GROUP, plugins

DEFAULT_ENGINE = "local"  # the first of ENGINES: --engine's default

ENGINES: dict[str, str] = {
    "local": "clipper_bench.engines.local.engine:LocalEngine",
    "docker": "clipper_bench.engines.docker.engine:DockerEngine",
    "ray": "clipper_bench.engines.ray.engine:RayEngine",
    "clipper": "clipper_bench.engines.clipper.engine:AttachedEngine",
}


# Each engine's own flags: a frozen dataclass of ``setting`` fields in a module that imports nothing of
# the engine (the settings read these before any engine is loaded). A plug-in adds its own through an
# entry point in ENGINE_OPTIONS_GROUP, named as its engine.
ENGINE_OPTIONS: dict[str, str] = {
    "local": "clipper_bench.engines.local.options:LocalOptions",
    "docker": "clipper_bench.engines.docker.options:DockerOptions",
    "ray": "clipper_bench.engines.ray.options:RayOptions",
    "clipper": "clipper_bench.engines.clipper.options:ClipperOptions",
}


def engine_options() -> list[type[Any]]:
    """Every engine's options class, the built-ins' in ENGINES' order, then the plug-ins'."""
    classes = []
    for path in ENGINE_OPTIONS.values():
        module, _, cls = path.partition(":")
        classes.append(getattr(importlib.import_module(module), cls))
    return classes + [ep.load() for ep in plugins(ENGINE_OPTIONS_GROUP, ENGINE_OPTIONS).values()]


def engine_names() -> list[str]:
    """Every ``--engine`` choice, the default first, then the installed plug-ins' (entry points)."""
    return [*ENGINES, *plugins(ENGINES_GROUP, ENGINES)]


def engine_class(name: str) -> type[Any]:
    """The engine registered as ``name``, an :class:`~.base.Engine` subclass (imported on first use:
    Docker's and Ray's libraries load only when their engine is asked for); a built-in's name is
    never a plug-in's."""
    if name not in ENGINES:
        extra = plugins(ENGINES_GROUP, ENGINES)
        if name in extra:
            return extra[name].load()
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["DEFAULT_ENGINE", "ENGINES", "ENGINE_OPTIONS", "engine_class", "engine_names", "engine_options"]
