"""Third-party plug-ins, found through Python entry points.

A separate package registers an engine, a model or a power source by declaring an entry point in
one of the groups below (``[project.entry-points."clipper_bench.models"]`` in its pyproject.toml);
each registry reads its group here and lets its built-ins win a name clash, with one warning line.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib.metadata import EntryPoint, entry_points

ENGINES_GROUP = "clipper_bench.engines"
ENGINE_OPTIONS_GROUP = "clipper_bench.engine_options"  # an engine's own flags (see engines.ENGINE_OPTIONS)
MODELS_GROUP = "clipper_bench.models"
POWER_SOURCES_GROUP = "clipper_bench.power_sources"


@cache
def plugin_entry_points(group: str) -> tuple[EntryPoint, ...]:
    """The entry points installed in ``group``, by name, the first of each name only (read once)."""
    seen: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        seen.setdefault(ep.name, ep)
    return tuple(seen[name] for name in sorted(seen))


def warn_clash(group: str, name: str) -> None:
    """Say, in one line on stderr, that a plug-in's ``name`` is a built-in's and is ignored."""
    print(f"clipper-bench: plug-in {name!r} in {group} has a built-in's name; the built-in is used",
          file=sys.stderr)


def plugins(group: str, builtin: set[str] | dict) -> dict[str, EntryPoint]:
    """The entry points of ``group`` whose names no built-in has (warning once for each that does)."""
    out = {}
    for ep in plugin_entry_points(group):
        if ep.name in builtin:
            _warn_once(group, ep.name)
        else:
            out[ep.name] = ep
    return out


@cache
def _warn_once(group: str, name: str) -> None:
    warn_clash(group, name)
