"""Load clients as Ray actors spread over a cluster's nodes (``--engine ray``, ``--load_from nodes``).

Client ``i`` runs on node ``i mod N`` of the N live nodes (head first), pinned to the core plan's
client cores of that node, and runs exactly the loop a client process runs here
(:func:`clipper_bench.load.client.run`). The contract is that of :func:`orchestrate.run_clients`:
every client gets ready (its input pool built), one start time is fixed, each client's raw data
comes back and is written where the spec says, and every actor is killed on return, on error and
on Ctrl-C.

Clocks: before the start each client's wall-clock offset from the driver is measured (the probe
with the shortest round trip, :func:`clock_offset_ns`). The start time is sent in the client's own
clock, and its raw data is moved onto the driver's clock before it is written, so percentiles and
windows merge across nodes as they do on one host. The offset, its round trip and the node are
written into the raw data file itself (``node_id``, ``node_ip``, ``hostname``, ``clock_offset_ns``,
``clock_rtt_ns``) and read back by :meth:`ClientData.from_npz` as ``site``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..common.ray_cluster import NodeInfo, RemoteClock, clock_offset_ns, on_node
from .orchestrate import READY_TIMEOUT_S, START_MARGIN_S, LoadError
from .spec import LoadSpec
from .stats import ClientData


class LoadClientActor(RemoteClock):
    """One load client inside a Ray worker: ``run`` in one thread, the rest answered beside it."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._go = threading.Event()
        self._start_at = 0.0

    def run(self, spec_json: str) -> bytes:
        """Build the input pool, wait for :meth:`go`, generate the load; the raw data file's bytes."""
        from ..common.pinning import pin_all_threads
        from .client import run

        spec = LoadSpec(**json.loads(spec_json))
        if spec.cpus:
            pin_all_threads(spec.cpus)
        with tempfile.TemporaryDirectory(prefix="clipper-bench-client-") as tmp:
            out = str(Path(tmp) / "raw.npz")
            run(dataclasses.replace(spec, out_path=out, cpus=tuple(spec.cpus)), self._wait_for_start)
            return Path(out).read_bytes()

    def _wait_for_start(self) -> float:
        self._ready.set()
        self._go.wait()
        return self._start_at

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the client is ready to start within ``timeout_s``."""
        return self._ready.wait(timeout_s)

    def go(self, start_at_wall: float) -> None:
        """Start sending at ``start_at_wall`` (this node's clock)."""
        self._start_at = start_at_wall
        self._go.set()


def _actor_class() -> Any:
    import ray

    return ray.remote(num_cpus=0, max_concurrency=4)(LoadClientActor)


def write_moved_raw(data: bytes, out_path: str, site: dict[str, Any]) -> None:
    """Write a client's raw data file with its times moved onto the driver's clock and ``site``
    (node, clock offset and round trip) stored beside them; atomically."""
    with np.load(io.BytesIO(data), allow_pickle=False) as raw:
        arrays = {k: raw[k] for k in raw.files}
    arrays["anchor_wall_ns"] = np.int64(int(arrays["anchor_wall_ns"]) - site["clock_offset_ns"])
    for key in ("clock_offset_ns", "clock_rtt_ns"):
        arrays[key] = np.int64(site[key])
    for key in ("node_id", "node_ip", "hostname"):
        arrays[key] = np.str_(site[key])
    tmp = f"{out_path}.tmp.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_clients_on_nodes(
    specs: Sequence[LoadSpec], nodes: Sequence[NodeInfo], on_start: Callable[[float], None] | None = None,
) -> tuple[float, list[ClientData]]:
    """Run spec ``i`` as an actor on ``nodes[i % len(nodes)]``; return the common start time (the
    driver's wall clock) and every client's raw data, on the driver's clock."""
    import ray

    if not nodes:
        raise LoadError("the Ray cluster has no live node to run load clients on")
    cls = _actor_class()
    actors = [cls.options(scheduling_strategy=on_node(nodes[i % len(nodes)].node_id)).remote()
              for i in range(len(specs))]
    try:
        sites = [{**ray.get(a.where.remote(), timeout=READY_TIMEOUT_S), "client_index": s.client_index}
                 for a, s in zip(actors, specs, strict=True)]
        for actor, site in zip(actors, sites, strict=True):
            site["clock_offset_ns"], site["clock_rtt_ns"] = clock_offset_ns(actor)
        runs = [a.run.remote(json.dumps(dataclasses.asdict(s))) for a, s in zip(actors, specs, strict=True)]
        _wait_ready(actors, runs)
        start_at = time.time() + START_MARGIN_S
        ray.get([a.go.remote(start_at + site["clock_offset_ns"] / 1e9) for a, site in zip(actors, sites, strict=True)])
        if on_start is not None:
            on_start(start_at)
        spec0 = specs[0]
        wait_s = START_MARGIN_S + spec0.warmup_s + spec0.duration_s + spec0.drain_max_s + 30.0
        try:
            results = ray.get(runs, timeout=wait_s)
        except ray.exceptions.GetTimeoutError as exc:
            raise LoadError(f"load clients on the Ray cluster did not finish within {wait_s:.0f} s") from exc
        except ray.exceptions.RayError as exc:
            raise LoadError(f"a load client on the Ray cluster failed: {_first_line(exc)}") from exc
        for data, spec, site in zip(results, specs, sites, strict=True):
            write_moved_raw(data, spec.out_path, site)
        return start_at, [ClientData.from_npz(spec.out_path) for spec in specs]
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


def _wait_ready(actors: list, runs: list) -> None:
    """Wait until every client has built its inputs; LoadError when one failed or took too long."""
    import ray

    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = [a.wait_ready.remote(READY_TIMEOUT_S) for a in actors]
    while pending:
        done, pending = ray.wait(pending, timeout=0.2)
        failed, _ = ray.wait(runs, timeout=0)
        if failed:  # a run returned before the start: it failed at start-up
            try:
                ray.get(failed[0])
            except ray.exceptions.RayError as exc:
                raise LoadError(f"a load client on the Ray cluster failed at start-up: {_first_line(exc)}") from exc
        if not all(ray.get(done)):
            raise LoadError(f"load clients on the Ray cluster not ready within {READY_TIMEOUT_S:.0f} s")
        if time.monotonic() > deadline:
            raise LoadError(f"load clients on the Ray cluster not ready within {READY_TIMEOUT_S:.0f} s")


def _first_line(exc: BaseException) -> str:
    """The last line of a Ray error's text that says something (its cause), for a one-line message."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return lines[-1] if lines else type(exc).__name__
