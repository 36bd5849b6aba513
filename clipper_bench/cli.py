"""The ``clipper-bench`` command line: run, serve and container.

Errors a user can fix end the program with one line on stderr and exit status 2; results that could
not be written (a full disk) with one line and exit status 3; Ctrl-C and SIGTERM, in every command,
with one line and exit status 130. Nothing else calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from . import __version__
from .common.errors import UsageError
from .containers.models.flags import (
    add_model_option_flags,
    add_model_own_flags,
    own_options_from_args,
)


def _container_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "container",
        help="run one model container (reads Clipper's CLIPPER_* environment variables)",
        description="Serve one model over Clipper's model-container RPC protocol.",
    )
    p.add_argument("--model_name", default=os.environ.get("CLIPPER_MODEL_NAME"),
                   help="registry model to serve (default: $CLIPPER_MODEL_NAME)")
    add_model_option_flags(p)
    add_model_own_flags(p)
    p.set_defaults(func=_cmd_container)


def _cmd_container(args: argparse.Namespace) -> int:
    # Pin before numpy or any framework starts a thread pool.
    from .common.pinning import pin_from_environment

    cpus = pin_from_environment()
    from .common.processes import become_child

    gpu = os.environ.get("CUDA_VISIBLE_DEVICES") or "none"
    title = os.environ.get("CLIPPER_BENCH_TITLE") or (
        f"clipper-bench replica {args.model_name} cpus={','.join(map(str, cpus)) if cpus else 'any'} gpu={gpu}"
    )
    become_child(title)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("clipper_bench.container").info(
        "placement: cpus=%s CUDA_VISIBLE_DEVICES=%r OMP_NUM_THREADS=%s",
        sorted(os.sched_getaffinity(0)), os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("OMP_NUM_THREADS"),
    )
    from .containers.runner import Container, ContainerSettings, install_stop_handlers

    spec, input_type, port = _container_model_spec(args)
    model = _load_container_model(spec, args)
    settings = ContainerSettings(
        model_name=os.environ.get("CLIPPER_MODEL_NAME", args.model_name),
        model_version=os.environ.get("CLIPPER_MODEL_VERSION", "1"),
        clipper_ip=os.environ.get("CLIPPER_IP", "127.0.0.1"),
        clipper_port=port,
        input_type=input_type,
    )
    container = Container(model, settings)
    install_stop_handlers(container)
    container.serve_forever()
    return 0


def _container_model_spec(args: argparse.Namespace):
    """The model spec, input type and frontend RPC port of a container, from its flags and
    Clipper's container environment."""
    from .containers.models import UnknownModelError, get_model_spec
    from .protocol.types import parse_input_type

    if not args.model_name:
        raise UsageError("no model to serve: pass --model_name or set CLIPPER_MODEL_NAME")
    try:
        spec = get_model_spec(args.model_name)
    except UnknownModelError as exc:
        raise UsageError(str(exc)) from None
    try:
        input_type = parse_input_type(os.environ.get("CLIPPER_INPUT_TYPE", spec.input_type.api_name))
        port = int(os.environ.get("CLIPPER_PORT", "7000"))
    except ValueError as exc:
        raise UsageError(f"bad container environment: {exc}") from None
    if input_type != spec.input_type:
        raise UsageError(
            f"model '{spec.name}' takes {spec.input_type.api_name}, CLIPPER_INPUT_TYPE says {input_type.api_name}"
        )
    return spec, input_type, port


def _load_container_model(spec, args: argparse.Namespace):
    """Build the model and run every batch size it may be asked for once, before it connects."""
    import numpy as np

    from .containers.models import ModelOptions
    from .containers.models.classical import ModelNotBuiltError
    from .containers.models.image import ModelLoadError

    try:
        model = spec.build(ModelOptions(
            framework=args.framework, precision=args.precision,
            weights=args.weights, models_dir=args.models_dir, seed=args.seed,
            overlap_batches=args.overlap_batches, cuda_graphs=args.cuda_graphs,
            own=own_options_from_args(args),
        ))
        if args.warm_batch_size > 0:
            pool = spec.make_inputs(1, seed=args.seed)
            decoded = np.frombuffer(pool[0].tobytes(), dtype=spec.input_type.dtype)
            for size in model.warm_batch_sizes(args.warm_batch_size):
                model.predict([decoded] * size)
    except (ModelLoadError, ModelNotBuiltError, ValueError, OSError) as exc:
        raise UsageError(f"model '{spec.name}' could not be loaded: {exc}") from None
    return model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipper-bench",
        description="Benchmark model serving: latency, throughput and energy against batch size and replicas.",
    )
    parser.add_argument("--version", action="version", version=f"clipper-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from .containers.models.build_cli import add_build_parser
    from .report.cli_args import add_report_parser
    from .server.serve_cli import add_serve_parser
    from .sweep.cli_args import add_baseline_parser, add_run_parser
    from .sweep.pipeline.cli_args import add_pipeline_parser
    from .sweep.planner.cli_args import add_plan_parser

    add_run_parser(sub)
    add_baseline_parser(sub)
    add_pipeline_parser(sub)
    add_plan_parser(sub)
    add_build_parser(sub)
    add_serve_parser(sub)
    add_report_parser(sub)
    _container_parser(sub)
    parser.set_defaults(subcommands=sub.choices)  # the parsers by command (run's takes --config files)
    return parser


USAGE_EXIT = 2  # bad flags, or a problem on the machine the user can fix
RESULTS_WRITE_EXIT = 3  # results could not be written (a full disk, a lost mount)
INTERRUPTED_EXIT = 130  # Ctrl-C or SIGTERM


_signalled: list[str] = []  # the stop signals this process received (see main)


def _sigterm(signum: int, frame: object) -> None:
    """SIGTERM is handled like Ctrl-C in every command (commands that need more install their own)."""
    _signalled.append(signal.Signals(signum).name)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _sigint(signum: int, frame: object) -> None:
    """Ctrl-C: as Python's own handler, remembering that it came (see main)."""
    _signalled.append(signal.Signals(signum).name)
    raise KeyboardInterrupt


def _exit_code(exc: BaseException) -> int:
    """3 when the error is (or was raised while handling) a results file that could not be written,
    else 2."""
    from .results.store import ResultsWriteError

    seen: BaseException | None = exc
    for _ in range(8):  # the chain the command layers made: UsageError from ResultsWriteError
        if seen is None:
            break
        if isinstance(seen, ResultsWriteError):
            return RESULTS_WRITE_EXIT
        seen = seen.__cause__ or seen.__context__
    return USAGE_EXIT


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clipper-bench`` console script."""
    # Ctrl-C must always stop a run cleanly, even when a shell started us with SIGINT ignored
    # (as non-interactive shells do for background jobs); SIGTERM the same way.
    signal.signal(signal.SIGINT, _sigint)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser()
        if argv and argv[0] in ("run", "pipeline"):
            from .sweep.sweep_file import apply_config_file, config_path

            path = config_path(argv)
            if path is not None:
                apply_config_file(parser._defaults["subcommands"][argv[0]], path)
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"clipper-bench: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    except OSError as exc:
        if _exit_code(exc) != RESULTS_WRITE_EXIT:
            raise
        print(f"clipper-bench: error: {exc}", file=sys.stderr)  # a results write no command layer caught
        return RESULTS_WRITE_EXIT
    except KeyboardInterrupt as exc:
        print(f"clipper-bench: interrupted ({exc})" if str(exc) else "clipper-bench: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Exception:
        if not _signalled:
            raise
        # The signal's KeyboardInterrupt came back as another error: raised inside a C extension's
        # import ("ImportError: initialization failed") or a library's own handler. Still a stop.
        print(f"clipper-bench: interrupted (signal {_signalled[0]})", file=sys.stderr)
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
