"""What this project asks of a Ray cluster: its live nodes, where a process runs, and the clock
offset of a remote process, each a small function over Ray's public API.

Nodes on one machine (a loopback test cluster) share one *host*: ``host_id`` (hostname and the
kernel's boot id) tells hosts apart, so that what exists once per machine (RAPL, the GPUs) is
sampled once however many Ray nodes run there.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CLOCK_PROBES = 8
HEAD_RESOURCE = "node:__internal_head__"


@dataclass(frozen=True)
class NodeInfo:
    """One live Ray node."""

    node_id: str
    node_ip: str
    hostname: str
    is_head: bool
    cpus: float
    gpus: float

    def to_json(self) -> dict[str, Any]:
        """The node as the record stores it."""
        return asdict(self)


def alive_nodes() -> list[NodeInfo]:
    """The cluster's live nodes, head first, then by node id (this process must be connected)."""
    import ray

    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        nodes.append(NodeInfo(n["NodeID"], n["NodeManagerAddress"], n.get("NodeManagerHostname", ""),
                              HEAD_RESOURCE in res, float(res.get("CPU", 0)), float(res.get("GPU", 0))))
    return sorted(nodes, key=lambda x: (not x.is_head, x.node_id))


def host_id() -> str:
    """This machine's identity: hostname and boot id (two Ray nodes on one machine share it)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def where_am_i() -> dict[str, Any]:
    """Node, host and process of the calling Ray worker."""
    import ray

    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(), "host_id": host_id(), "pid": os.getpid()}


class RemoteClock:
    """What the driver asks of any of its actors before using it: its clock (for
    :func:`clock_offset_ns`) and where it runs. Actor classes inherit it."""

    def clock_ns(self) -> int:
        """This node's wall clock."""
        return time.time_ns()

    def where(self) -> dict[str, Any]:
        """The node, host and process this actor runs in."""
        return where_am_i()


def on_node(node_id: str) -> Any:
    """The scheduling strategy that puts an actor on ``node_id`` and nowhere else."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def clock_offset_ns(actor: Any, probes: int = CLOCK_PROBES) -> tuple[int, int]:
    """(offset, round trip) in ns of ``actor``'s wall clock against this process's, taken from the
    probe with the shortest round trip (its error is at most half of that round trip).

    ``actor`` must have a ``clock_ns`` method returning ``time.time_ns()``; a positive offset
    means its clock is ahead of ours.
    """
    import ray

    best: tuple[int, int] | None = None
    for _ in range(probes):
        t0 = time.time_ns()
        remote = ray.get(actor.clock_ns.remote())
        t1 = time.time_ns()
        rtt = t1 - t0
        if best is None or rtt < best[1]:
            best = (remote - (t0 + t1) // 2, rtt)
    assert best is not None
    return best


def actor_alive(actor_id: str) -> bool:
    """Whether the actor ``actor_id`` is alive, as the cluster's control store says.

    Ray's public state API needs the dashboard, which this project does not start; the control
    store's actor table is read through ``ray._private.state`` instead. Where that is missing (a
    future Ray), the actor counts as alive: the replica count then rests on Serve's own status.
    """
    try:
        from ray._private.state import state

        info = state.actor_table(actor_id)
    except (ImportError, AttributeError):
        return True
    return bool(info) and info.get("State") == "ALIVE"
