"""``--engine clipper``'s own flags: where the running Clipper listens. Declared as the core's settings are
(:func:`clipper_bench.common.options.setting`); the engine registry gathers them into the run's settings,
its command line, ``--help``, sweep files and the CLI reference. Imports nothing of the engine."""

from __future__ import annotations

from dataclasses import dataclass

from ...common.options import address_problem, setting


@dataclass(frozen=True)
class ClipperOptions:
    """``--engine clipper``'s own flags: where the running Clipper listens."""

    clipper_address: str | None = setting(None, 'engine', '--clipper_address', metavar="HOST[:PORT]", check=address_problem, help="--engine clipper: the query frontend (REST, default port 1337) of a Clipper that is already running; the run registers its own app and model there, starts its replicas here and removes both after")
    clipper_admin_address: str | None = setting(None, 'engine', '--clipper_admin_address', metavar="HOST[:PORT]", check=address_problem, help="--engine clipper: its management frontend (default: --clipper_address's host, port 1338)")
    clipper_rpc_address: str | None = setting(None, 'engine', '--clipper_rpc_address', metavar="HOST[:PORT]", check=address_problem, help="--engine clipper: its container RPC port, which the replicas started here connect to (default: --clipper_address's host, port 7000)")
    clipper_binary_address: str | None = setting(None, 'engine', '--clipper_binary_address', metavar="HOST[:PORT]", check=address_problem, help="--engine clipper: its binary query port, for --transport binary (clipper-bench serve has one; Clipper's own does not)")
