"""The ``pipeline`` command: a pipeline file (or a built-in name) and ``run``'s load, output, engine and
power flags; what the stages run and what is swept come from the file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...common.cli_types import one_line_errors
from ...containers.models import model_option_names
from ...protocol.transports import Transport
from ..settings import GROUPS, MODEL_FIELDS, RunSettings, declared_fields, resolve_defaults

# run's flags that a pipeline file decides per stage, or that need one model
PER_STAGE = {"model_name", "batch_sizes", "num_replicas", "cpus_per_replica_nums", "model_gpus",
             "baseline", "baseline_s", "calibrate", "resume", "gpu_power_limits_w", "gpu_clocks_mhz", "stable",
             "stable_window_s", "stable_tolerance", "repeats", "concurrency"}


def pipeline_fields() -> list:
    """run's declared settings that the pipeline command takes: all but those a pipeline file decides
    per stage (PER_STAGE, and every model's own options, which go in a stage's ``options``)."""
    per_stage = PER_STAGE | set(model_option_names())
    return [f for f in declared_fields() if f.name not in per_stage]


def add_pipeline_parser(sub: argparse._SubParsersAction) -> None:
    """``clipper-bench pipeline PIPELINE [flags]``."""
    from ...containers.models.flags import add_model_option_flags
    from ..cli_args import _add_declared_flag
    from .spec import builtin_names

    p = sub.add_parser(
        "pipeline",
        help="serve several models per query (a pipeline file) and sweep their stage configurations",
        description="Deploy every stage of a pipeline (models chained by the frontend), drive load of "
                    "pipeline queries for each stage configuration, and record end-to-end latency and "
                    "throughput with the per-stage breakdown.",
    )
    p.add_argument("pipeline", metavar="PIPELINE",
                   help=f"a pipeline YAML file, or a built-in one: {', '.join(builtin_names())}")
    groups = {key: p.add_argument_group(title) for key, title in GROUPS.items()}
    for f in pipeline_fields():
        _add_declared_flag(groups[f.metadata["group"]], f)
    groups["load"].add_argument("--concurrency", type=int, default=None, metavar="N",
                                help="closed loop: pipeline queries outstanding in all (default: (batches in "
                                     "flight + 1) x the largest replicas x batch size of any stage)")
    add_model_option_flags(groups["models"])
    p.add_argument("--config", metavar="SWEEP_YAML", default=None,
                   help="take flags from this YAML file (flag names without dashes as keys); flags given here override it")
    one_line_errors(p)
    p.set_defaults(func=cmd_pipeline)


def pipeline_settings(args: argparse.Namespace, query_model: str) -> RunSettings:
    """The run settings of a pipeline experiment (the model is the one whose inputs queries carry)."""
    names = [f.name for f in pipeline_fields()] + list(MODEL_FIELDS)
    values = {n: getattr(args, n) for n in names if hasattr(args, n)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    values["models_dir"] = Path(values["models_dir"])
    values["concurrency"] = (args.concurrency,) if args.concurrency else ()
    if values.get("transport") == Transport.AUTO:  # the frontend chains and resizes inputs: they must reach it
        values["transport"] = Transport.BINARY.value
    return resolve_defaults(RunSettings(model_name=query_model, **values))


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Exit 0 when every configuration was recorded ``ok``, 1 when any was not, 2 for a bad file or flag."""
    from ...common.cli_types import check_writable_dir
    from ...common.errors import UsageError
    from ...containers.models.classical import ModelNotBuiltError
    from ...results.store import ResultsWriteError
    from ..cli_args import quiet_cluster_logs, typed_command_line
    from ..plan import PlanError
    from ..progress import make_progress
    from ..settings import check_declared
    from .runner import PipelineRunner
    from .spec import PipelineError, load_pipeline, query_model

    try:
        spec = load_pipeline(args.pipeline)
        settings = pipeline_settings(args, query_model(spec))
        problem = check_declared(settings)
        if problem:
            raise PlanError(problem)
        _check_engine(settings)
        check_writable_dir(settings.results_dir)
        quiet_cluster_logs()
        progress = make_progress()
        try:
            runner = PipelineRunner(spec, settings, typed_command_line(), say=progress.message, progress=progress)
            runner.run()
        finally:
            progress.close()
    except (PipelineError, PlanError, ModelNotBuiltError, ResultsWriteError) as exc:
        raise UsageError(str(exc)) from None
    return 1 if runner.not_clean else 0


def _check_engine(settings: RunSettings) -> None:
    """Pipelines run on the local engine, over the binary or REST path."""
    from ...engines import DEFAULT_ENGINE, engine_class
    from ..plan import PlanError

    if not engine_class(settings.engine).serves_pipelines:
        raise PlanError(f"pipelines run on --engine {DEFAULT_ENGINE} (the frontend chains the stages); --engine "
                        f"{settings.engine} serves one model per run: use `clipper-bench run` there")
    if settings.transport == Transport.SHM:
        raise PlanError("pipelines take --transport binary or rest (the frontend resizes and chains inputs "
                        "itself, so they cannot stay in the client's shared memory)")
