"""``clipper-bench serve``: the local engine with one model deployed, serving until Ctrl-C (for use
with another load generator, or to look at it by hand)."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

from ..common.cli_types import finite_float, port
from ..common.errors import UsageError
from ..containers.models.flags import (
    add_model_own_flags,
    own_option_args,
    own_option_problem,
    own_options_from_args,
)

# Clipper's (binary: ours; metrics: its Prometheus exporter's, as ``run --metrics_port``'s default)
DEFAULT_PORTS = {"query": 1337, "admin": 1338, "rpc": 7000, "binary": 1339, "metrics": 1390}


def metrics_port(text: str) -> int:
    """``--metrics_port``: a TCP port, or 0 for none."""
    return 0 if text.strip() == "0" else port(text)


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    """The ``serve`` command and its flags."""
    p = sub.add_parser(
        "serve",
        help="start the local engine alone and keep it running until Ctrl-C",
        description="Start the local Clipper-compatible engine; optionally deploy a model and link an app of the same name.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    moves = "; when it is taken a free port is used, and said. A port given here that is taken is an error"
    for what, text in (("query", "Clipper's query port"), ("admin", "Clipper's management port"),
                       ("rpc", "Clipper's container RPC port"), ("binary", "the binary query port")):
        p.add_argument(f"--{what}_port", type=port, default=None,
                       help=f"{text} (default {DEFAULT_PORTS[what]}{moves})")
    p.add_argument("--metrics_port", type=metrics_port, default=None,
                   help="serve Prometheus' /metrics (the frontend's histograms, meters and counters) on this port, as "
                        f"Clipper's exporter does, and as run does (default {DEFAULT_PORTS['metrics']}{moves}; 0 turns it off)")
    p.add_argument("-m", "--model_name", default=None, help="also deploy this model, with an app of the same name")
    p.add_argument("-r", "--num_replicas", type=int, default=1, help="replicas of -m (default 1)")
    p.add_argument("-b", "--batch_size", type=int, default=-1,
                   help="largest batch of -m (default -1: Clipper's default, unbounded)")
    p.add_argument("--slo_ms", type=finite_float, default=500.0, help="the app's latency SLO in ms (default 500)")
    add_model_own_flags(p)  # each model's own options (the sleep model's --sleep_ms), as it declares them
    p.add_argument("--log_dir", type=Path, default=None, help="where process logs go (default: a temporary directory)")
    p.set_defaults(func=cmd_serve)


def requested_ports(args: argparse.Namespace) -> tuple[dict[str, int], tuple[str, ...]]:
    """The ports ``serve`` asks for, and those that may move (the flags left at their defaults)."""
    ports = {what: getattr(args, f"{what}_port") for what in DEFAULT_PORTS}
    movable = tuple(what for what, value in ports.items() if value is None)
    return {what: DEFAULT_PORTS[what] if value is None else value for what, value in ports.items()}, movable


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _checked_model(args: argparse.Namespace) -> Any:
    """The spec of ``-m`` (None without one), its own options checked as run checks them; UsageError
    naming the problem otherwise."""
    from ..containers.models import UnknownModelError, get_model_spec

    problem = own_option_problem(own_options_from_args(args))
    if problem:
        raise UsageError(problem)
    if not args.model_name:
        return None
    try:
        return get_model_spec(args.model_name)
    except UnknownModelError as exc:
        raise UsageError(str(exc)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from clipper_admin import ClipperConnection
    from clipper_admin.exceptions import ClipperException

    from .images import model_image
    from .manager import LocalContainerManager

    spec = _checked_model(args)
    ports, movable = requested_ports(args)
    manager = LocalContainerManager(
        host=args.host, query_port=ports["query"], admin_port=ports["admin"], rpc_port=ports["rpc"],
        binary_port=ports["binary"], metrics_port=ports["metrics"], fallback_ports=movable, announce=lambda line: print(line, flush=True),
        log_dir=args.log_dir, container_args=own_option_args(own_options_from_args(args)),
    )
    signal.signal(signal.SIGTERM, _interrupt)  # also during start-up: stop at once, reap everything
    conn = ClipperConnection(manager)
    try:
        try:
            manager.start_clipper()  # as conn.start_clipper() does, less its second line on a failure
            conn.connect()
            if spec is not None:
                name = spec.name
                conn.register_application(name, spec.input_type.api_name, "TIMEOUT", int(args.slo_ms * 1000))
                conn.deploy_model(name, "1", spec.input_type.api_name, model_image(name),
                                  num_replicas=args.num_replicas, batch_size=args.batch_size)
                conn.link_model_to_app(name, name)
                manager.set_input_size(name, "1", spec.input_size)
        except ClipperException as exc:
            raise UsageError(f"could not start the engine: {exc.msg if hasattr(exc, 'msg') else exc}") from None
        print(f"query frontend   http://{manager.get_query_addr()}  (POST /<app>/predict, GET /metrics)")
        print(f"admin frontend   http://{manager.get_admin_addr()}  (clipper_admin, /admin/...)")
        print(f"container RPC    tcp://{manager.host}:{manager.rpc_port}")
        print(f"binary queries   tcp://{manager.get_binary_addr()}")
        prometheus = manager.get_prometheus_addr()
        print(f"prometheus       {f'http://{prometheus}/metrics' if prometheus else 'off (--metrics_port 0)'}")
        print(f"logs             {manager.log_dir}")
        if spec is not None:
            print(f"app '{spec.name}' serves model '{spec.name}' with {args.num_replicas} replica(s); try:")
            example = ",".join(["0.5"] * spec.input_size) if spec.input_size <= 16 else "..."
            print(f"  curl -s -X POST -d '{{\"input\": [{example}]}}' http://{manager.get_query_addr()}/{spec.name}/predict")
        print("Ctrl-C to stop", flush=True)
        while True:
            time.sleep(0.5)
            if manager.frontend is None or not manager.frontend.alive():
                raise UsageError(f"the frontend exited; see {manager.log_dir / 'frontend.log'}")
    except KeyboardInterrupt:
        pass
    finally:
        manager.stop_all()
        print("stopped", flush=True)
    return 0
