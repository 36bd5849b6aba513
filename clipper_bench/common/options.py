"""How a setting and its flag are declared, by the core's settings and by each plug-in's options.

A field made with :func:`setting` carries its default, its command-line flag and help, the group of
``--help`` it belongs to (sweep, load, engine, power, models, output), a numeric flag's range with
why its limits are where they are (appended to its help) and its own check. ``run``'s command line,
its sweep file and the CLI reference are generated from these declarations. An engine declares its
own flags the same way, in a frozen dataclass of its own (``engines/<name>/options.py``), which the
engine registry gathers into the run's settings (see ``clipper_bench.engines.engine_options``); so
does a model with options of its own (``ModelSpec.options``, e.g. the sleep model's ``--sleep_ms``),
gathered by the model registry (``clipper_bench.containers.models.model_option_classes``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

from .cli_types import Range


def setting(default: Any, group: str, *names: str, help: str | Callable[[], str], check: Callable | None = None,
            limits: Range | None = None, **argparse_options: Any) -> Any:
    """A settings field with its flag: ``names`` as argparse takes them, ``help`` (or a function
    that makes it when ``--help`` is built), ``limits`` (a numeric flag's Range: appended to its help
    and checked, for every value of a list), ``check(value)`` returning what else is wrong or None,
    and argparse's ``type``, ``nargs``, ``choices`` (a list or a function), ``metavar``, ``action``,
    ``required``."""
    return field(default=default, metadata={"group": group, "names": names, "help": _with_range(help, limits),
                                            "check": _checked(limits, check), "range": limits,
                                            "argparse": argparse_options})


def _with_range(text: str | Callable[[], str], limits: Range | None) -> str | Callable[[], str]:
    if limits is None:
        return text
    if callable(text):
        return lambda: f"{text()} {limits.help()}"
    return f"{text} {limits.help()}"


def _checked(limits: Range | None, check: Callable | None) -> Callable | None:
    """The range check, then the field's own."""
    if limits is None:
        return check
    return lambda value: limits.problem(value) or (check(value) if check else None)


def flag_of(f: Any) -> str:
    """A declared field's long flag (the first ``--`` name)."""
    return next(n for n in f.metadata["names"] if n.startswith("--"))


def add_declared_flag(p: Any, f: Any, **overrides: Any) -> None:
    """Add a declared field's flag to an argparse parser or group: its names, help, choices, type and
    default (``overrides`` replace any of argparse's options or the help, e.g. ``default=None``)."""
    meta = f.metadata
    options = dict(meta["argparse"])
    if callable(options.get("choices")):
        options["choices"] = options["choices"]()
    if options.get("action") != "store_true":
        options["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
        if "choices" not in options:
            options.setdefault("metavar", flag_of(f)[2:].upper())
    text = overrides.pop("help", None) or (meta["help"]() if callable(meta["help"]) else meta["help"])
    options.update(overrides)
    p.add_argument(*meta["names"], dest=f.name, help=text, **options)


def address_problem(text: str | None) -> str | None:
    """What is wrong with a ``HOST[:PORT]`` flag's value, or None."""
    if text is None:
        return None
    host, sep, port = text.rpartition(":")
    if not text.strip() or (sep and (not host or not port.isdigit() or not 0 < int(port) < 65536)):
        return f"{text!r} is not HOST[:PORT] (a port 1-65535): pass e.g. 127.0.0.1:1337"
    return None
