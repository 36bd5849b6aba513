"""``clipper-bench run --config sweep.yaml``: every flag of ``run`` as a key of a YAML mapping (its long
name without dashes, lists for the swept ones); flags on the command line override the file. Each
experiment writes the sweep it ran, resolved, as ``sweep.yaml``: ``run --config`` with that file
reproduces it.

    model_name: lgbm
    num_replicas: [1, 2]
    batch_sizes: [1, 8, 32]
    duration: 30
    rate: [100, 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from ..common.errors import UsageError
from .settings import MODEL_FIELDS, RunSettings, declared_fields, flag_of

NOT_IN_FILE = ("resume",)  # how a run was started, not what it measures


def config_path(argv: list[str]) -> str | None:
    """The value of ``--config FILE`` (or ``--config=FILE``) in ``argv``, if any."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def apply_config_file(parser: argparse.ArgumentParser, path: str) -> None:
    """Make the file's values the parser's defaults (so flags given override them); UsageError naming
    the key and the fix for anything the run command would not take."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc.strerror}); pass a readable YAML file") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path} must map flags to values, for example 'batch_sizes: [1, 8, 32]'")
    actions = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                actions[option[2:]] = action
        actions.setdefault(action.dest, action)
    defaults = {}
    for key, value in data.items():
        action = actions.get(str(key).replace("-", "_"))
        if action is None or action.dest in ("help", "config", *NOT_IN_FILE):
            raise UsageError(f"--config {path}: unknown key '{key}'; use run's flag names without dashes "
                             "(clipper-bench run --help)")
        defaults[action.dest] = _value(action, key, value, path)
        action.required = False  # the file gave it
    parser.set_defaults(**defaults)


def _value(action: argparse.Action, key: str, value: Any, path: str) -> Any:
    """``value`` converted as argparse converts the flag's text, and checked against its choices."""
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise UsageError(f"--config {path}: '{key}' is on or off: write true or false")
        return value
    if value is None:  # the flag's default, as the resolved file writes it (model_cpus, weights, ...)
        return None
    many = action.nargs in ("+", "*")
    if isinstance(value, list) and not many:
        raise UsageError(f"--config {path}: '{key}' takes one value, got a list")
    items = value if isinstance(value, list) else [value]
    try:
        converted = [action.type(str(v)) if action.type and v is not None else v for v in items]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise UsageError(f"--config {path}: '{key}': {exc}") from None
    bad = [v for v in converted if action.choices is not None and v not in action.choices]
    if bad:
        raise UsageError(f"--config {path}: '{key}' must be one of {', '.join(map(str, action.choices))}, got {bad[0]}")
    return converted if many else converted[0]


def sweep_file(settings: RunSettings) -> dict[str, Any]:
    """The resolved sweep as the file ``--config`` takes: every flag's long name and its value."""
    data: dict[str, Any] = {}
    for f in declared_fields():
        if f.name in NOT_IN_FILE:
            continue
        data[flag_of(f)[2:]] = _plain(getattr(settings, f.name))
    for name in MODEL_FIELDS:
        data[name] = _plain(getattr(settings, name))
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_sweep_file(path: Path, settings: RunSettings) -> None:
    """Write the resolved sweep (YAML) to ``path``."""
    text = "# the sweep this experiment ran, resolved: clipper-bench run --config <this file> reruns it\n"
    path.write_text(text + yaml.safe_dump(sweep_file(settings), sort_keys=False))
