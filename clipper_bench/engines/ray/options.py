"""``--engine ray``'s own flags. Declared as the core's settings are
(:func:`clipper_bench.common.options.setting`); the engine registry gathers them into the run's settings,
its command line, ``--help``, sweep files and the CLI reference. Imports nothing of the engine."""

from __future__ import annotations

from dataclasses import dataclass

from ...common.options import setting


@dataclass(frozen=True)
class RayOptions:
    """``--engine ray``'s own flags."""

    ray_address: str | None = setting(None, 'engine', '--ray_address', help="--engine ray: join this existing Ray cluster (host:port of its head; default: start a "
                        "local Ray on 127.0.0.1 for the run)")
    ray_ingress: str = setting("http", 'engine', '--ray_ingress', choices=["http", "handle"], help="--engine ray: load through Serve's HTTP proxy (Clipper's JSON) or deployment handles")
    ray_load_from: str = setting("nodes", 'engine', '--ray_load_from', choices=["nodes", "driver"], help="--engine ray: run the -n load clients as Ray actors spread over the cluster's nodes, client i on node i mod N (nodes, the default), or as processes on the driver's host (driver)")
    ray_http_host: str = setting("127.0.0.1", 'engine', '--ray_http_host', help="--engine ray: address Serve's HTTP proxy (on the head node) binds to (default 127.0.0.1; 0.0.0.0 for load from other hosts with --ray_ingress http)")
