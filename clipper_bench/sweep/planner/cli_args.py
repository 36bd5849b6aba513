"""``clipper-bench plan``: the cheapest configuration that serves a rate within a p99 bound, predicted
from measured profiles, written as a pipeline file, and with ``--validate`` deployed and measured."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...common.cli_types import finite_float, one_line_errors
from ...containers.models.flags import add_model_own_flags
from .objectives import OBJECTIVES


def add_plan_parser(sub: argparse._SubParsersAction) -> None:
    """``clipper-bench plan EXPERIMENT_DIR... (-m MODEL | --pipeline FILE) --rate QPS --slo_p99_ms MS``."""
    p = sub.add_parser(
        "plan",
        help="pick the cheapest configuration that serves a rate within a p99 bound, from measured profiles",
        description="Predict, from experiments already measured (run sweeps of each model), the cheapest "
                    "per-stage replicas, batch sizes and cores that serve --rate within --slo_p99_ms; write it "
                    "as a pipeline file; with --validate, deploy it and measure it.",
    )
    p.add_argument("experiments", nargs="+", metavar="EXPERIMENT_DIR", help="measured run experiments (profiles)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("-m", "--model_name", metavar="MODEL", help="plan one model")
    what.add_argument("--pipeline", metavar="PIPELINE", help="plan a pipeline (file or built-in name)")
    add_model_own_flags(p, default=None, help="-m MODEL, for a model with this option of its own: the value to "
                                              "plan for (default: the one its profiles hold)")
    p.add_argument("--rate", type=finite_float, required=True, metavar="QPS", help="the arrival rate to serve")
    p.add_argument("--arrival", default="poisson", help="constant, poisson (default), gamma:CV or trace:FILE")
    p.add_argument("--slo_p99_ms", type=slo_bounds, required=True, metavar="MS[,MS...]",
                   help="end-to-end p99 bound; several, comma-separated (150,500), plan each into a plan file of "
                        "its own (plan-<name>-slo<MS>.yaml), the points of a cost-against-SLO curve")
    p.add_argument("--minimize", choices=OBJECTIVES, default="gpus",
                   help="what to spend least of (default gpus; ties broken by gpus, cores, replicas, energy)")
    p.add_argument("--max_replicas", type=int, default=8, help="most replicas per stage considered (default 8)")
    p.add_argument("--hop_ms", type=finite_float, default=0.5,
                   help="the frontend's hand-off and RPC per stage, added by the estimator (default 0.5 ms, "
                        "measured on the 2-core machine; docs/benchmarks.md)")
    p.add_argument("--headroom", type=finite_float, default=0.1,
                   help="plan for a predicted p99 this share under the bound (default 0.1: 90 ms for 100 ms), "
                        "room for what the estimator leaves out")
    p.add_argument("--max_utilisation", type=finite_float, default=0.85,
                   help="refuse plans in which the rate takes more than this share of a stage's full-batch "
                        "capacity (default 0.85): near saturation the p99 hangs on every error in the service times")
    p.add_argument("-c", "--model_cpus", type=int, nargs="+", default=None, help="cores the replicas may use")
    p.add_argument("--oversubscribe", action="store_true", help="let replicas share cores")
    p.add_argument("--out", type=Path, default=None,
                   help="the plan file (default <results_dir>/plan-<name>.yaml; with several bounds, -slo<MS> is "
                        "added before the suffix)")
    p.add_argument("--validate", action="store_true", help="deploy the plan and its coarse baseline and measure them")
    p.add_argument("-d", "--duration", dest="duration_s", type=finite_float, default=10.0,
                   help="window of each validation repeat, and the estimator's (default 10 s)")
    p.add_argument("--warmup", dest="warmup_s", type=finite_float, default=2.0, help="warm-up (default 2 s)")
    p.add_argument("--repeats", type=int, default=3, help="validation windows per plan (default 3)")
    p.add_argument("--results_dir", type=Path, default=Path("results"), help="where validations go (default results/)")
    one_line_errors(p)
    p.set_defaults(func=cmd_plan)


def slo_bounds(text: str) -> tuple[float, ...]:
    """``--slo_p99_ms``: one bound or several, comma-separated (``150,500``), each a positive number."""
    values = tuple(finite_float(v) for v in text.split(",") if v.strip())
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be positive numbers of ms, comma-separated, got {text!r}")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"names a bound twice: {text!r}")
    return values


def cmd_plan(args: argparse.Namespace) -> int:
    """Exit 0 when a plan was found (and, with --validate, met the SLO as measured), 1 when not, 2 for bad input."""
    from ...common.errors import UsageError
    from ...results.frame import ResultsError
    from ..pipeline.spec import PipelineError
    from .plan_cmd import run_plan
    from .profiles import ProfileError

    if args.rate <= 0 or args.duration_s <= 0 or args.repeats < 1 or args.max_replicas < 1:
        raise UsageError("--rate, -d, --repeats and --max_replicas must be positive")
    if not 0 < args.max_utilisation <= 1:
        raise UsageError(f"--max_utilisation must be above 0 and at most 1, got {args.max_utilisation:g}")
    if not 0 <= args.headroom < 1:
        raise UsageError(f"--headroom must be at least 0 and below 1, got {args.headroom:g}")
    try:
        return run_plan(args)
    except (ProfileError, PipelineError, ResultsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
