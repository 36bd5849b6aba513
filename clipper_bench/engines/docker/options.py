"""``--engine docker``'s own flags. Declared as the core's settings are
(:func:`clipper_bench.common.options.setting`); the engine registry gathers them into the run's settings,
its command line, ``--help``, sweep files and the CLI reference. Imports nothing of the engine."""

from __future__ import annotations

from dataclasses import dataclass

from ...common.options import setting


@dataclass(frozen=True)
class DockerOptions:
    """``--engine docker``'s own flags."""

    docker_host_network: bool = setting(False, 'engine', '--docker_host_network', action="store_true", help="--engine docker: run every container on the host's network (all traffic on 127.0.0.1) "
                        "instead of a network of its own")
    query_frontend_image: str = setting("clipper/query_frontend:0.4.1", 'engine', '--query_frontend_image', help="--engine docker: the query frontend image (default Clipper 0.4.1's; clipper-bench/frontend "
                        "is clipper-bench's own, which needs no registry and serves the binary path)")
    mgmt_frontend_image: str = setting("clipper/management_frontend:0.4.1", 'engine', '--mgmt_frontend_image', help="--engine docker: the management frontend image (unused with clipper-bench/frontend)")
