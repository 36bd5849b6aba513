"""The ``run`` and ``baseline`` commands: their flags (generated from the settings' declarations) and
what they do."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..common.cli_types import check_writable_dir, finite_float
from .settings import RunSettings, resolve_defaults


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """``run``'s flags, generated from RunSettings' declarations, in --help groups by concern; the model
    flags come from their own declarations beside the models."""
    from ..containers.models.flags import add_model_option_flags
    from .settings import GROUPS, declared_fields, flag_of

    groups = {key: p.add_argument_group(title) for key, title in GROUPS.items()}
    for f in declared_fields():
        meta = f.metadata
        options = dict(meta["argparse"])
        if callable(options.get("choices")):
            options["choices"] = options["choices"]()
        if options.get("action") != "store_true":
            options["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
            if "choices" not in options:
                options.setdefault("metavar", flag_of(f)[2:].upper())
        text = meta["help"]() if callable(meta["help"]) else meta["help"]
        groups[meta["group"]].add_argument(*meta["names"], dest=f.name, help=text, **options)
    add_model_option_flags(groups["models"])


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """The run's settings, with every ``auto`` flag resolved (see settings.resolve_defaults)."""
    return resolve_defaults(_settings_as_given(args))


def _settings_as_given(args: argparse.Namespace) -> RunSettings:
    from .settings import declared_fields

    values = {f.name: getattr(args, f.name) for f in declared_fields() if hasattr(args, f.name)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return RunSettings(
        **values,
        framework=args.framework, precision=args.precision, overlap_batches=args.overlap_batches,
        cuda_graphs=args.cuda_graphs, weights=args.weights, models_dir=Path(args.models_dir), seed=args.seed,
    )

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
    from .plan import PlanError
    from .progress import make_progress
    from .runner import ExperimentRunner

    check_writable_dir(settings.results_dir)
    quiet_cluster_logs()
    progress = make_progress()
    try:
        try:
            runner = ExperimentRunner(settings, ["clipper-bench", *sys.argv[1:]], say=progress.message,
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


def add_baseline_parser(sub: argparse._SubParsersAction) -> None:
    """The ``baseline`` command: only the flags that choose the model, its placement and the time."""
    from ..containers.models import model_names
    from ..containers.models.flags import add_model_option_flags

    p = sub.add_parser(
        "baseline",
        help="measure a model's raw in-process throughput and latency per batch size (no serving)",
        description="Run the model in one process pinned like replica 1 (its cores, its GPU) and time "
                    "batches. Writes baselines.ndjson in a new experiment directory.",
    )
    p.add_argument("-m", "--model_name", required=True, metavar="MODEL",
                   help=f"model to measure: {', '.join(model_names())}")
    p.add_argument("-b", "--batch_sizes", type=int, nargs="+", default=[2], help="batch sizes (default 2)")
    p.add_argument("-c", "--model_cpus", type=int, nargs="+", default=None,
                   help="cores replica 1 would get from (default: all but the frontend's and load generator's)")
    p.add_argument("-p", "--cpus_per_replica_nums", type=int, nargs="+", default=[1],
                   help="cores of the process (default 1)")
    p.add_argument("-g", "--model_gpus", type=int, nargs="+", default=[],
                   help="GPU index of the process (default: CPU only)")
    p.add_argument("--baseline_s", type=finite_float, default=10.0,
                   help="seconds measured per batch size (default 10)")
    p.add_argument("--results_dir", type=Path, default=Path("results"), help="where experiments go (default results/)")
    p.add_argument("--sleep_ms", type=finite_float, default=10.0, help="batch time of the 'sleep' model in ms (default 10)")
    add_model_option_flags(p)
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
