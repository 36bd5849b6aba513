"""The ``run`` and ``baseline`` commands: their flags (generated from the settings' declarations) and
what they do."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..common.cli_types import check_writable_dir, one_line_errors
from ..common.options import add_declared_flag
from ..containers.models.base import model_option_names
from .settings import (
    GROUPS,
    MODEL_FIELD_RANGES,
    MODEL_FIELDS,
    RunSettings,
    declared_fields,
    resolve_defaults,
)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """``run``'s flags, generated from RunSettings' declarations, in --help groups by concern; the model
    flags come from their own declarations beside the models."""
    from ..containers.models.flags import add_model_option_flags

    groups = {key: p.add_argument_group(title) for key, title in GROUPS.items()}
    for f in declared_fields():
        _add_declared_flag(groups[f.metadata["group"]], f)
    add_model_option_flags(groups["models"])
    add_model_flag_ranges(p)


def add_model_flag_ranges(p: argparse.ArgumentParser) -> None:
    """Append the ranges the settings declare for the model flags (``--seed``) to their --help."""
    for action in p._actions:
        if action.dest in MODEL_FIELD_RANGES and action.help:
            action.help = f"{action.help} {MODEL_FIELD_RANGES[action.dest][1].help()}"


def _add_declared_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup, f: Any) -> None:
    """One RunSettings field's flag, as declared (its default, help, choices, type)."""
    add_declared_flag(p, f)


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """The run's settings, with every ``auto`` flag resolved (see settings.resolve_defaults)."""
    return resolve_defaults(_settings_as_given(args))


def _settings_as_given(args: argparse.Namespace) -> RunSettings:
    names = [f.name for f in declared_fields()] + list(MODEL_FIELDS)
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    values["models_dir"] = Path(values["models_dir"])
    return RunSettings(**values)


def quiet_cluster_logs() -> None:
    """clipper_admin and the manager log every step at INFO; the runner prints its own summary."""
    import logging

    for name in ("clipper_admin", "clipper_bench.manager"):
        logging.getLogger(name).setLevel(logging.WARNING)


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="sweep batch sizes x replicas for one model and record the results",
        description="Deploy a model for every (replicas x cores per replica x batch size), drive load, "
                    "and write one record per configuration.",
    )
    one_line_errors(p)
    add_run_flags(p)
    p.add_argument("--config", metavar="SWEEP_YAML", default=None,
                   help="take every flag from this YAML file (flag names without dashes as keys, lists for "
                        "swept ones); flags given here override it. Each experiment writes its own as sweep.yaml")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Exit 0 when every configuration was recorded ``ok``, 1 when any was not (failed, no answers or
    degraded: the run's last lines and the records say why)."""
    not_clean = _run_experiment(settings_from_args(args), baseline_only=False)
    return 1 if not_clean else 0


def _run_experiment(settings: RunSettings, baseline_only: bool) -> list[str]:
    """Validate, then run; every problem a user can fix becomes one UsageError line.
    Returns the ``runs.ndjson`` lines of configurations not recorded ``ok``."""
    from ..common.errors import UsageError
    from ..containers.models import UnknownModelError
    from ..containers.models.classical import ModelNotBuiltError
    from ..results.store import ResultsWriteError
    from .baseline import BaselineError
    from .plan import PlanError, check_numbers
    from .progress import make_progress
    from .runner import ExperimentRunner

    try:  # bad numbers are refused before anything is written or started
        check_numbers(settings)
    except (UnknownModelError, PlanError) as exc:
        raise UsageError(str(exc)) from None
    check_writable_dir(settings.results_dir)
    quiet_cluster_logs()
    progress = make_progress()
    try:
        try:
            runner = ExperimentRunner(settings, typed_command_line(), say=progress.message,
                                      progress=progress)
        except (UnknownModelError, PlanError) as exc:
            raise UsageError(str(exc)) from None
        try:
            runner.run(baseline_only=baseline_only)
        except (BaselineError, ModelNotBuiltError, ResultsWriteError) as exc:
            raise UsageError(str(exc)) from None
    finally:
        progress.close()
    return runner.not_clean


# the settings that matter to a baseline (the others keep their defaults)
BASELINE_FIELDS = ("model_name", "batch_sizes", "model_cpus", "cpus_per_replica_nums", "model_gpus", "baseline_s",
                   "results_dir")  # and every model's own options (model_option_names)


def add_baseline_parser(sub: argparse._SubParsersAction) -> None:
    """The ``baseline`` command: only the flags that choose the model, its placement and the time,
    declared once with the run's (RunSettings), plus the model flags."""
    from ..containers.models.flags import add_model_option_flags

    p = sub.add_parser(
        "baseline",
        help="measure a model's raw in-process throughput and latency per batch size (no serving)",
        description="Run the model in one process pinned like replica 1 (its cores, its GPU) and time "
                    "batches. Writes baselines.ndjson in a new experiment directory.",
    )
    one_line_errors(p)
    declared = {f.name: f for f in declared_fields()}
    for name in (*BASELINE_FIELDS, *model_option_names()):
        _add_declared_flag(p, declared[name])
    add_model_option_flags(p)
    add_model_flag_ranges(p)
    p.set_defaults(func=cmd_baseline)


def cmd_baseline(args: argparse.Namespace) -> int:
    """Measure the model in-process only: the run's settings with every other flag at its default."""
    run = argparse.ArgumentParser(add_help=False)
    add_run_flags(run)
    full = run.parse_args(["-m", args.model_name])
    for key, value in vars(args).items():
        setattr(full, key, value)
    full.baseline = True
    full.idle_s = 0.0  # nothing is served: no idle power to compare with
    _run_experiment(settings_from_args(full), baseline_only=True)
    return 0


def typed_command_line(argv: list[str] | None = None) -> list[str]:
    """The command as the user typed it, runnable again from the same directory:
    ``python model_composition/image_driver_1/driver.py ...`` for the original's entry point (which
    runs ``run`` without saying so), else ``clipper-bench ...``."""
    argv = sys.argv if argv is None else argv
    if argv and Path(argv[0]).name in ("driver.py", "e2e_driver.py"):
        return ["python", argv[0], *argv[1:]]
    return ["clipper-bench", *argv[1:]]
