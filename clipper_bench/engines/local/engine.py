"""``--engine local``: the frontend and replicas as processes of this host, and the deployment that the
local and Docker engines share: a frontend and its replicas, kept while only the batch size changes.

The original driver restarted Clipper for every configuration. Restarting costs seconds per
configuration (model loads, warm-up compiles) and measures nothing, so a sweep keeps the deployment
while the next configuration differs from the last only in batch size: the frontend is told the new
batch size and clears its metrics, and the replicas stay. ``--fresh_deployments`` restores the
original behaviour.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clipper_admin import ClipperConnection
from clipper_admin.container_manager import ContainerManager
from clipper_admin.exceptions import ClipperException

from ...common.processes import free_ports, listen_tcp, port_taken_message
from ...protocol.transports import Transport
from ...results.store import CONFIGS_DIR
from ...server.images import model_image
from ...server.manager import LocalContainerManager, Placement
from ..base import Deployment, Engine, StartContext
from ..point import ConfigPoint, PlanError
from .options import LocalOptions

if TYPE_CHECKING:  # the settings are the sweep's: engines read them, never import them
    from ...sweep.settings import RunSettings

MODEL_VERSION = "1"
DEFAULT_OUTPUT = "TIMEOUT"
DEFAULT_METRICS_PORT = LocalOptions.__dataclass_fields__["metrics_port"].default  # 1390, as Clipper's exporter


def deployment_key(point: ConfigPoint) -> tuple:
    """What must match for two configurations to share a deployment: all but the batch size."""
    return (point.model_name, point.num_replicas, point.cpus_per_replica,
            point.gpu_power_limit_w, point.gpu_clock_mhz)


@dataclass
class ClipperDeployment(Deployment):
    """A running Clipper-protocol frontend (local or in Docker) with one model deployed on its replicas."""

    key: tuple
    manager: ContainerManager
    connection: ClipperConnection
    started_for: str
    log_dir: Path
    batch_size: int
    startup_s: float
    configs: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, point: ConfigPoint, manager: ContainerManager, settings: RunSettings, *, input_type: str,
              input_elements: int, log_dir: Path) -> ClipperDeployment:
        """Start ``manager``'s frontend, register the model's application and deploy its replicas."""
        t0 = time.monotonic()
        slo_ms = settings.slo_ms
        conn = ClipperConnection(manager)
        try:
            conn.start_clipper()
            name = point.model_name
            conn.register_application(name, input_type, DEFAULT_OUTPUT, int(slo_ms * 1000))
            conn.deploy_model(name, MODEL_VERSION, input_type, model_image(name),
                              num_replicas=point.num_replicas, batch_size=point.batch_size)
            conn.link_model_to_app(name, name)
            if getattr(manager, "bench_frontend", True):  # clipper-bench's frontend checks input sizes
                manager.set_input_size(name, MODEL_VERSION, input_elements)
        except BaseException:
            manager.stop_all()
            raise
        return cls(deployment_key(point), manager, conn, point.config_id, log_dir, point.batch_size,
                   time.monotonic() - t0, [point.config_id])

    def serves(self, point: ConfigPoint) -> bool:
        """Whether ``point`` differs from this deployment's configurations in batch size at most."""
        return self.key == deployment_key(point) and self.manager.supports_live_batch_size

    def unhealthy(self, point: ConfigPoint) -> str | None:
        """Why this deployment cannot serve ``point`` as it stands (a replica died, stopped, hung or
        went away, or the frontend did), or None when it is healthy."""
        return self.manager.unhealthy(point.model_name, MODEL_VERSION, point.num_replicas)

    def faults_since(self, wall_time: float) -> list[dict]:
        """Faults the manager and the frontend recorded since ``wall_time``."""
        collect = getattr(self.manager, "collect_frontend_faults", None)
        if collect is not None:
            collect()
        return [f for f in self.manager.faults if f["at"] >= wall_time]

    def reuse_for(self, point: ConfigPoint) -> None:
        """Switch to ``point``'s batch size and clear the frontend's metrics."""
        if point.batch_size != self.batch_size:
            self.manager.set_batch_size(point.model_name, MODEL_VERSION, point.batch_size)
            self.batch_size = point.batch_size
        self.manager.reset_metrics()
        self.configs.append(point.config_id)

    def check_frontend(self) -> None:
        """Raise ClipperException if the frontend is gone: what was measured is then not trusted."""
        if not self.manager.frontend_alive():
            raise ClipperException(
                f"the frontend {self.manager.frontend_exit()} during the measurement; see {self.log_dir}"
            )

    def replica_ids(self) -> list[str]:
        """The live replicas (local: ``cb-<pid>``; docker: container names), by slot."""
        return self.manager.replica_ids()

    def clipper_metrics(self) -> dict:
        """The frontend's ``GET /metrics`` (Clipper's format)."""
        import requests

        return requests.get(f"http://{self.manager.get_query_addr()}/metrics", timeout=10).json()

    def describe(self, point: ConfigPoint) -> dict:
        """The record's ``deployment`` block, with the Prometheus endpoint where one is served, and on
        the local engine the ports the frontend held and any that moved because another process
        held the one asked for."""
        addr = getattr(self.manager, "get_prometheus_addr", lambda: None)()
        block = {**super().describe(point), "prometheus_metrics": f"http://{addr}/metrics" if addr else None}
        if isinstance(self.manager, LocalContainerManager):
            block["ports"] = self.manager.bound_ports()
            block["ports_moved"] = list(self.manager.port_notes)
        return block

    def stop(self) -> None:
        """Stop the frontend and every replica."""
        self.manager.stop_all()


class LocalEngine(Engine):
    """clipper-bench's own frontend and replicas as pinned processes on this host."""

    name = "local"
    transports = (Transport.BINARY, Transport.SHM, Transport.REST)
    serves_pipelines = True  # its frontend chains the stages (server/pipeline.py)
    power_dir: Path | None = None  # the experiment's configs/, set at the first start

    def __init__(self, settings: RunSettings) -> None:
        super().__init__(settings)
        self._said: set[str] = set()  # moved ports already said

    @classmethod
    def resolve_transport(cls, settings: RunSettings, large_inputs: bool) -> str:
        """``auto``: shared memory for large inputs (their bytes then cross no socket), else binary."""
        if settings.transport == Transport.AUTO:
            return Transport.SHM if large_inputs else Transport.BINARY
        return settings.transport

    @classmethod
    def validate(cls, settings: RunSettings) -> None:
        """Also: a ``--metrics_port`` other than the default that is taken is refused before anything
        starts (the default moves to a free port instead)."""
        super().validate(settings)
        port = settings.metrics_port
        if port and port != DEFAULT_METRICS_PORT:
            try:
                listen_tcp(settings.host, port).close()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise PlanError(f"--metrics_port {port}: cannot listen on {settings.host}:{port} "
                                    f"({os.strerror(exc.errno or 0)})") from None
                raise PlanError(port_taken_message("metrics", port, settings.host)) from None

    def _frontend_ports(self) -> tuple[int, int, int, int]:
        """The query, admin, RPC and binary ports to ask the frontend for. Ours binds port 0 (the OS
        picks) and reports what it holds, so two runs never race for a port. A subclass's frontend
        that cannot report back (Docker publishes a container's ports before it starts) is given
        ports that were free a moment ago."""
        if type(self) is LocalEngine:
            return (0, 0, 0, 0)
        s = self.settings
        query, admin, rpc, binary = free_ports(4, "127.0.0.1" if s.host in ("0.0.0.0", "") else s.host)
        return query, admin, rpc, binary

    def _manager(self, places: list[Placement], log_dir: Path, container_args: list[str],
                 frontend_cpus: tuple[int, ...], ports: tuple[int, int, int, int]) -> ContainerManager:
        """A manager whose frontend binds ``ports`` (0: the OS picks) and the Prometheus port
        (``--metrics_port``, which moves to a free one when it is the default and taken), and reports
        the ports it holds."""
        s = self.settings
        query, admin, rpc, binary = ports
        return LocalContainerManager(
            host=s.host, query_port=query, admin_port=admin, rpc_port=rpc, binary_port=binary,
            log_dir=log_dir, placements=places, container_args=container_args,
            frontend_cpus=frontend_cpus, batches_in_flight=s.batches_in_flight,
            start_timeout_s=s.replica_start_timeout_s, replica_timeout_s=s.replica_timeout_s,
            hang_min_s=s.replica_hang_min_s, metrics_port=s.metrics_port,
            fallback_ports=("metrics",) if s.metrics_port == DEFAULT_METRICS_PORT else (),
            announce=self._announce_once, power_dir=str(self.power_dir or ""),
        )

    def _announce_once(self, line: str) -> None:
        """Say a moved port once per experiment, not at every fresh deployment (each record has it)."""
        key = line.split(": using", 1)[0]
        if key not in self._said:
            self._said.add(key)
            logging.getLogger("clipper_bench.manager").warning("%s", line)

    def start(self, point: ConfigPoint, places: list[Placement], ctx: StartContext) -> ClipperDeployment:
        """A fresh frontend and ``point.num_replicas`` replicas (see :meth:`_frontend_ports`)."""
        s = self.settings
        self.power_dir = ctx.experiment_dir / CONFIGS_DIR  # where each window's sampler writes its live watts
        # replicas warm up every batch size they may be asked for while they stay deployed
        container_args = [*s.container_args(), "--warm_batch_size",
                          str(point.batch_size if s.fresh_deployments else max(s.batch_sizes))]
        manager = self._manager(places, ctx.log_dir, container_args, ctx.plan.frontend_cpus, self._frontend_ports())
        return ClipperDeployment.start(point, manager, s, input_type=ctx.input_type,
                                       input_elements=ctx.input_elements, log_dir=ctx.log_dir)
