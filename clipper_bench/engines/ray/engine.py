"""``--engine ray``: a model deployed on Ray Serve, kept while the sweep only changes batch size or
replica count.

With ``--ray_address`` the run joins an existing cluster (Ray schedules replicas and GPUs across
its hosts) and leaves it running; without, it starts a local Ray for the experiment, bound to
127.0.0.1, and stops it at the end. Batch size travels in the deployment's ``user_config`` (live in
about a second, same replicas); a new replica count scales the same deployment in place (the
replicas that stay keep running).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clipper_admin.exceptions import ClipperException

from ...common.processes import free_ports
from ...common.ray_cluster import NodeInfo, actor_alive, alive_nodes, on_node, where_am_i
from ...common.ray_env import use_loopback_ray_env
from ...load.ray_clients import run_clients_on_nodes
from ...load.spec import LoadSpec
from ...load.stats import ClientData
from ...power.ray_sampler import ClusterPowerMonitor, HostPlan, start_sampler_actors
from ...power.sampler import SamplerConfig
from ...protocol.transports import Transport
from ...server.manager import Placement
from ..base import Deployment, Engine, StartContext
from ..point import ConfigPoint, PlanError, placements

if TYPE_CHECKING:  # the settings are the sweep's: engines read them, never import them
    from ...sweep.settings import RunSettings

use_loopback_ray_env()

RAY_INSTALL_HINT = "--engine ray needs Ray Serve: run .venv/bin/pip install -e '.[ray]'"
START_TIMEOUT_S = 180.0
CODE_VERSION = "clipper-bench-1"


def check_ray_installed() -> None:
    """PlanError with the install command when Ray Serve is missing."""
    import importlib.util

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.serve") is None:
        raise PlanError(RAY_INSTALL_HINT)


class RaySession:
    """The Ray connection of one experiment: a local Ray started here, or an existing cluster."""

    def __init__(self, settings: RunSettings, num_cpus: int, work_dir: Path) -> None:
        import ray
        from ray import serve

        self.ray, self.serve = ray, serve
        import logging

        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        self.started_here = settings.ray_address is None
        if self.started_here:  # "local": a Ray of its own even when `ray start` runs one here (another run's)
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     logging_level="WARNING", log_to_driver=False,
                     _temp_dir=str(Path(tempfile.gettempdir()) / "ray"))
        else:
            ray.init(address=settings.ray_address, logging_level="WARNING", log_to_driver=False)
        self.gcs_address = ray.get_runtime_context().gcs_address
        (port,) = free_ports(1)
        # the proxy on the head only: clients on every node reach it there, and Ray nodes that share
        # one machine (a loopback cluster) would otherwise all bind the same port
        serve.start(proxy_location="HeadOnly", http_options={"host": settings.ray_http_host, "port": port})
        self.http_host = self.gcs_address.rsplit(":", 1)[0] if settings.ray_http_host == "0.0.0.0" \
            else settings.ray_http_host
        self.http_port = port
        self.work_dir = work_dir
        self._hosts: dict[str, list[NodeInfo]] | None = None
        self._samplers: list[Any] | None = None

    def nodes(self) -> list[NodeInfo]:
        """The cluster's live nodes, head first."""
        return alive_nodes()

    def hosts(self) -> dict[str, list[NodeInfo]]:
        """The live nodes grouped by the machine they run on (asked once of a task on each node)."""
        if self._hosts is None:
            nodes = self.nodes()
            probe = self.ray.remote(num_cpus=0)(where_am_i)
            found = self.ray.get([probe.options(scheduling_strategy=on_node(n.node_id)).remote() for n in nodes],
                                 timeout=START_TIMEOUT_S)
            self._hosts = {}
            for node, where in zip(nodes, found, strict=True):
                self._hosts.setdefault(where["host_id"], []).append(node)
        return self._hosts

    def host_plans(self, gpus: Mapping[str, Iterable[int]], cpu_groups: dict[str, dict[str, list[int]]]) -> list[HostPlan]:
        """One power plan per host, labelled by hostname (numbered where two share one)."""
        plans = []
        names = [nodes[0].hostname or "host" for nodes in self.hosts().values()]
        for k, (hid, nodes) in enumerate(self.hosts().items()):
            label = names[k] if names.count(names[k]) == 1 else f"{names[k]}-{k + 1}"
            plans.append(HostPlan(label, hid, tuple(n.node_id for n in nodes), tuple(sorted(gpus.get(hid, []))),
                                  cpu_groups.get(hid, {})))
        return plans

    def power_monitor(self, cfg: SamplerConfig, gpus: Mapping[str, Iterable[int]],
                      cpu_groups: dict[str, dict[str, list[int]]]) -> ClusterPowerMonitor:
        """A power monitor over every host (its sampler actors started at the first call)."""
        plans = self.host_plans(gpus, cpu_groups)
        if self._samplers is None:
            self._samplers = start_sampler_actors(plans)
        return ClusterPowerMonitor(cfg, plans, self._samplers)

    def shutdown(self) -> None:
        """Stop Serve and Ray if this run started them; else only disconnect (the cluster runs on)."""
        try:
            if self.started_here:
                self.serve.shutdown()
        finally:
            self.ray.shutdown()


class RayManager:
    """What the runner asks of an engine, answered by Ray Serve (see LocalContainerManager)."""

    supports_live_batch_size = True

    def __init__(self, session: RaySession, app: str) -> None:
        self.session = session
        self.app = app
        self.faults: list[dict] = []

    def get_query_addr(self) -> str:
        """Host:port of Serve's HTTP proxy."""
        return f"{self.session.http_host}:{self.session.http_port}"

    def get_binary_addr(self) -> str:
        """Always raise ClipperException: Ray Serve has no binary query path."""
        raise ClipperException("Ray Serve has no binary query path: use --ray_ingress http or handle")

    def get_handle_addr(self) -> str:
        """The Ray cluster's GCS address, for clients that call the deployment through handles."""
        return self.session.gcs_address

    def frontend_alive(self) -> bool:
        """Whether the Serve application is running (False when the controller is gone)."""
        try:
            status = self.session.serve.status().applications.get(self.app)
        except Exception:  # noqa: BLE001 - the controller is gone
            return False
        return status is not None and str(status.status).endswith("RUNNING")

    def frontend_exit(self) -> str:
        """How the application ended, for the runner's messages."""
        return "(Ray Serve application) stopped running"

    def reset_metrics(self) -> None:
        """Serve keeps no Clipper metrics to clear."""


class RayDeployment(Deployment):
    """A model on Ray Serve, reused across configurations that differ in batch size or replicas."""

    def __init__(self, point: ConfigPoint, settings: RunSettings, session: RaySession, places: list[Placement],
                 log_dir: Path, startup_s: float) -> None:
        self.key = (point.model_name, point.cpus_per_replica, point.gpu_power_limit_w, point.gpu_clock_mhz)
        self.settings = settings
        self.session = session
        self.manager = RayManager(session, point.model_name)
        self.started_for = point.config_id
        self.log_dir = log_dir
        self.batch_size = point.batch_size
        self.num_replicas = point.num_replicas
        self.startup_s = startup_s
        self.places = places
        self.lock_dir = Path(tempfile.mkdtemp(prefix="clipper-bench-ray-slots-"))
        from .serve_app import start_registry

        self.registry_name = f"replicas-{self.lock_dir.name}"
        self.registry = start_registry(self.registry_name)
        nodes = len(session.nodes())
        self.spread = {"max_replicas_per_node": math.ceil(max(settings.num_replicas) / nodes)} if nodes > 1 else {}

    @classmethod
    def start(cls, point: ConfigPoint, places: list[Placement], settings: RunSettings, session: RaySession,
              log_dir: Path) -> RayDeployment:
        """Deploy ``point``'s model on Serve and wait for its replicas; on failure remove it and raise
        ClipperException."""
        t0 = time.monotonic()
        log_dir.mkdir(parents=True, exist_ok=True)
        dep = cls(point, settings, session, places, log_dir, 0.0)
        try:
            dep._run(point)
        except ClipperException:
            dep.stop()
            raise
        except Exception as exc:  # Ray's own errors: this configuration fails, the sweep goes on
            dep.stop()
            raise ClipperException(f"Ray Serve: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            dep.stop()
            raise
        dep.startup_s = time.monotonic() - t0
        return dep

    def _run(self, point: ConfigPoint) -> None:
        """Deploy (or update in place) with ``point``'s replica count and batch size; wait until running."""
        from .serve_app import BenchModel

        s = self.settings
        gpus = 1 if s.model_gpus else 0
        threads = str(point.cpus_per_replica)
        app = BenchModel.options(
            **self.spread,  # over the nodes, fixed for the deployment (a change would replace every replica)
            name=point.model_name,
            num_replicas=point.num_replicas,
            max_ongoing_requests=max(8, 2 * max(s.batch_sizes)),  # fixed for the sweep: Serve caps batches by it
            user_config={"batch_size": point.batch_size},
            ray_actor_options={
                "num_cpus": point.cpus_per_replica, "num_gpus": gpus,
                "runtime_env": {"env_vars": {"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
                                             "MKL_NUM_THREADS": threads, "CLIPPER_BENCH_CPUS": ""}},
            },
        # A fixed code version: otherwise every serve.run gets a random one and replaces all replicas
        # (Ray 2.60 removed the public `version` option; Serve's own internal flag still sets it).
        ).options(version=CODE_VERSION, _internal=True).bind(point.model_name, s.model_options(), [list(p.cpus) for p in self.places],
               str(self.lock_dir), self.registry_name)
        self.session.serve.run(app, name=point.model_name, route_prefix=f"/{point.model_name}", blocking=False)
        deadline = time.monotonic() + max(START_TIMEOUT_S, s.replica_start_timeout_s)
        while True:
            status = self.session.serve.status().applications.get(point.model_name)
            state = str(status.status) if status else "missing"
            if state.endswith("RUNNING") and len(self.live_replicas()) == point.num_replicas:
                break
            if state.endswith("DEPLOY_FAILED") or state.endswith("UNHEALTHY"):
                raise ClipperException(f"Ray Serve could not deploy {point.model_name}: "
                                       f"{status.message if status else ''}".strip())
            if time.monotonic() > deadline:
                raise ClipperException(f"Ray Serve did not bring up {point.num_replicas} replicas of "
                                       f"{point.model_name} within {deadline:.0f} s (state {state})")
            time.sleep(0.2)
        self.batch_size, self.num_replicas = point.batch_size, point.num_replicas

    def live_replicas(self) -> list[dict[str, Any]]:
        """What each live replica reported at start: node, host, slot, pid, cores of every thread, GPU."""
        reports = self.session.ray.get(self.registry.reports.remote(), timeout=START_TIMEOUT_S)
        return sorted((r for r in reports if actor_alive(r["actor_id"])), key=lambda r: (r["slot"], r["node_id"]))

    def run_clients(self, specs: list[LoadSpec], work_dir: Path,
                    on_start: Callable[[float], None] | None = None) -> tuple[float, list[ClientData]]:
        """``--ray_load_from nodes``: the clients as Ray actors over the cluster's nodes; else here."""
        if self.settings.ray_load_from == "nodes":
            return run_clients_on_nodes(specs, self.session.nodes(), on_start)
        return super().run_clients(specs, work_dir, on_start)

    def power_monitor(self, cfg: SamplerConfig) -> ClusterPowerMonitor:
        """A sampler on every host of the cluster: the GPUs its replicas were given, their cores."""
        gpus: dict[str, set[int]] = {}
        groups: dict[str, dict[str, list[int]]] = {}
        for r in self.live_replicas():
            visible = (r.get("cuda_visible_devices") or "").split(",")
            gpus.setdefault(r["host_id"], set()).update(int(g) for g in visible if g.strip().isdigit())
            if r["cpus"]:
                groups.setdefault(r["host_id"], {})[f"replica{r['slot'] + 1}"] = r["cpus"]
        return self.session.power_monitor(cfg, gpus, groups)

    def serves(self, point: ConfigPoint) -> bool:
        """Whether ``point`` differs from this deployment in batch size or replica count at most,
        and the application still runs."""
        key = (point.model_name, point.cpus_per_replica, point.gpu_power_limit_w, point.gpu_clock_mhz)
        return key == self.key and self.manager.frontend_alive()

    def unhealthy(self, point: ConfigPoint) -> str | None:
        """Why this deployment cannot serve ``point``: its application stopped running (Serve itself
        restarts replicas that die), or None."""
        return None if self.manager.frontend_alive() else f"the Ray Serve application {self.manager.app} stopped"

    def faults_since(self, wall_time: float) -> list[dict]:
        """Faults recorded since ``wall_time``."""
        return [f for f in self.manager.faults if f["at"] >= wall_time]

    def reuse_for(self, point: ConfigPoint) -> None:
        """Update the deployment in place if ``point``'s batch size or replica count differs."""
        if (point.batch_size, point.num_replicas) != (self.batch_size, self.num_replicas):
            self._run(point)

    def check_frontend(self) -> None:
        """Raise ClipperException if the Serve application has stopped running."""
        if not self.manager.frontend_alive():
            raise ClipperException(f"the Ray Serve application {self.manager.app} stopped running during the measurement")

    def replica_ids(self) -> list[str]:
        """The live replicas as ``ray-pid-<pid>``, by slot."""
        return [f"ray-pid-{r['pid']}" for r in self.live_replicas()]

    def describe(self, point: ConfigPoint) -> dict:
        """The record's ``deployment`` block, with what each live replica reported at start and the
        cluster's live nodes."""
        return {**super().describe(point), "ray_replicas": self.live_replicas(),
                "ray_nodes": [n.to_json() for n in self.session.nodes()]}

    def clipper_metrics(self) -> None:
        """None: Serve keeps no Clipper ``/metrics``."""
        return None

    def stop(self) -> None:
        """Delete the Serve application (if the session still can) and the slot lock files."""
        try:
            self.session.serve.delete(self.manager.app)
            self.session.ray.kill(self.registry, no_restart=True)
        except Exception:  # noqa: BLE001 - the session may already be gone
            pass
        shutil.rmtree(self.lock_dir, ignore_errors=True)


class RayEngine(Engine):
    """Ray Serve: a local Ray started for the experiment, or the cluster ``--ray_address`` names."""

    name = "ray"
    transports = (Transport.REST, Transport.RAY_HANDLE)

    def __init__(self, settings: RunSettings) -> None:
        super().__init__(settings)
        self.session: RaySession | None = None

    @classmethod
    def resolve_transport(cls, settings: RunSettings, large_inputs: bool) -> str:
        """Always what ``--ray_ingress`` says: Serve's HTTP proxy (Clipper's JSON) or deployment handles."""
        return {"http": Transport.REST, "handle": Transport.RAY_HANDLE}[settings.ray_ingress]

    @classmethod
    def validate(cls, settings: RunSettings) -> None:
        """Ray Serve installed, and the model's framework."""
        check_ray_installed()
        super().validate(settings)

    def start(self, point: ConfigPoint, places: list[Placement], ctx: StartContext) -> RayDeployment:
        """Deploy on Serve, with slots for the most replicas of the sweep (the deployment's arguments
        never change, so a new replica count scales it in place)."""
        import dataclasses

        s = self.settings
        session = self._session(ctx.experiment_dir)
        widest = dataclasses.replace(point, num_replicas=max(s.num_replicas))
        slots = placements(widest, ctx.plan, s.model_gpus, s.oversubscribe)
        return RayDeployment.start(point, slots, s, session, ctx.log_dir)

    def _session(self, work_dir: Path) -> RaySession:
        from ..point import usable_cpus

        if self.session is None:
            self.session = RaySession(self.settings, len(usable_cpus()), work_dir)
        return self.session

    def idle_monitor(self, cfg: SamplerConfig) -> ClusterPowerMonitor:
        """Idle power on every host of the cluster (the GPUs of ``-g`` on each)."""
        session = self._session(Path(cfg.out_path).parent)
        hosts = session.hosts()
        return session.power_monitor(cfg, {h: list(cfg.gpus) for h in hosts}, {h: cfg.cpu_groups for h in hosts})

    def close(self) -> None:
        """Stop the experiment's Ray session (a cluster named by --ray_address runs on)."""
        if self.session is not None:
            session, self.session = self.session, None
            session.shutdown()
