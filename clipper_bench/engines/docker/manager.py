"""DockerEngineManager: clipper_admin's DockerContainerManager, with each replica pinned.

Clipper's own Docker manager gives every container the same ``extra_container_kwargs``; a
benchmark needs replica *i* on its own cores (``cpuset_cpus``) and its own GPU (a Docker device
request). This subclass adds that, host networking (all traffic on 127.0.0.1, as the tests here
need), and a teardown that removes every container, network and temporary file it made.

The cluster's frontend images are settable. By default they are Clipper 0.4.1's own
(``clipper/query_frontend:0.4.1`` and ``clipper/management_frontend:0.4.1``, with ``redis:alpine``,
the frontend exporter and ``prom/prometheus:v2.9.2`` started by clipper_admin as usual). A
``clipper-bench/...`` query frontend image is clipper-bench's own frontend (``clipper_bench/server/``), which serves the
query, management, RPC and binary ports in one process and keeps Clipper's ``/metrics`` itself:
then no management frontend, Redis, exporter or Prometheus container is started. That is the path
where Clipper's images cannot be pulled (no registry), and what the tests run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests
from clipper_admin.container_manager import (
    CLIPPER_DOCKER_LABEL,
    CLIPPER_DOCKER_PORT_LABELS,
    CLIPPER_INTERNAL_METRIC_PORT,
    CLIPPER_INTERNAL_RPC_PORT,
    CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL,
    CLIPPER_MODEL_CONTAINER_LABEL,
    CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL,
    create_model_container_label,
)
from clipper_admin.docker.docker_container_manager import DockerContainerManager
from clipper_admin.exceptions import ClipperException

from ...common.pinning import CPUS_ENV, format_cpu_list
from ...containers.models import get_model_spec
from ...server.manager import IMAGE_PREFIX, BenchFrontendCalls, Placement

logger = logging.getLogger("clipper_bench.docker")

CLIPPER_QUERY_FRONTEND_IMAGE = "clipper/query_frontend:0.4.1"
CLIPPER_MGMT_FRONTEND_IMAGE = "clipper/management_frontend:0.4.1"
CLIPPER_FRONTEND_EXPORTER_IMAGE = "clipper/frontend-exporter:0.4.1"
BENCH_FRONTEND_IMAGE = f"{IMAGE_PREFIX}frontend"
SLOT_LABEL = "clipper-bench.replica.slot"


def docker_client_or_error():
    """A Docker client, or a ClipperException that says how to get a Docker engine."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - docker raises many kinds; all mean "no engine here"
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise ClipperException(
            f"no Docker engine answers at {where} ({type(exc).__name__}): start dockerd or set DOCKER_HOST"
        ) from None


class DockerEngineManager(BenchFrontendCalls, DockerContainerManager):
    """Runs the cluster's frontend and model replicas as Docker containers, each replica pinned."""

    def __init__(
        self,
        *,
        placements: list[Placement],
        frontend_cpus: tuple[int, ...] = (),
        log_dir: Path,
        query_port: int = 1337,
        admin_port: int = 1338,
        rpc_port: int = 7000,
        binary_port: int = 1339,
        host_network: bool = True,
        query_frontend_image: str = CLIPPER_QUERY_FRONTEND_IMAGE,
        mgmt_frontend_image: str = CLIPPER_MGMT_FRONTEND_IMAGE,
        container_args: list[str] | None = None,
        batches_in_flight: int = 1,
        replica_timeout_s: float = 30.0,
        start_timeout_s: float = 120.0,
        watch_interval_s: float = 0.5,
    ) -> None:
        docker_client_or_error()
        name = f"cb-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        super().__init__(
            cluster_name=name, docker_ip_address="127.0.0.1", clipper_query_port=query_port,
            clipper_management_port=admin_port, clipper_rpc_port=rpc_port, docker_network=f"clipper-bench-{name}",
        )
        self.host_network = host_network
        if host_network:  # clipper_admin refuses the "host" network by name; set it the Docker way
            self.extra_container_kwargs.pop("network", None)
            self.extra_container_kwargs["network_mode"] = "host"
        self.placements = placements
        self.frontend_cpus = frontend_cpus
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.binary_port = binary_port
        self.query_frontend_image = query_frontend_image
        self.mgmt_frontend_image = mgmt_frontend_image
        self.container_args = list(container_args or [])
        self.batches_in_flight = batches_in_flight
        self.replica_timeout_s = replica_timeout_s
        self.start_timeout_s = start_timeout_s
        self.watch_interval_s = watch_interval_s
        self.faults: list[dict] = []
        self._frontend_name: str | None = None
        self._created_network = False
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._retiring: set[str] = set()
        self._reported: set[str] = set()

    # -- which frontend ---------------------------------------------------------------------

    @property
    def bench_frontend(self) -> bool:
        """Whether the cluster's frontend is clipper-bench's (else Clipper's own images)."""
        return self.query_frontend_image.startswith(IMAGE_PREFIX)

    @property
    def supports_live_batch_size(self) -> bool:
        """Whether batch sizes change without new replicas: only on clipper-bench's frontend."""
        return self.bench_frontend

    def get_binary_addr(self) -> str:
        """Address of the binary query path; ClipperException on Clipper's own frontend."""
        if not self.bench_frontend:
            raise ClipperException("Clipper's own frontend has no binary query path: use --transport rest")
        return f"127.0.0.1:{self.binary_port}"

    # -- start --------------------------------------------------------------------------------

    def start_clipper(self, query_frontend_image=None, mgmt_frontend_image=None,
                      frontend_exporter_image=CLIPPER_FRONTEND_EXPORTER_IMAGE, cache_size=0,
                      qf_http_thread_pool_size=1, qf_http_timeout_request=5000,
                      qf_http_timeout_content=300, num_frontend_replicas=1) -> None:
        """Start the frontend container(s) and wait until they answer. The images are the manager's
        (ClipperConnection always passes its own defaults here, so the arguments are ignored)."""
        with docker_errors("starting the frontend"):
            self._start_clipper(frontend_exporter_image, cache_size, qf_http_thread_pool_size,
                                qf_http_timeout_request, qf_http_timeout_content, num_frontend_replicas)

    def _start_clipper(self, frontend_exporter_image, cache_size, qf_http_thread_pool_size,
                       qf_http_timeout_request, qf_http_timeout_content, num_frontend_replicas) -> None:
        if not self.host_network:
            self.docker_client.networks.create(self.docker_network, check_duplicate=True,
                                               labels={CLIPPER_DOCKER_LABEL: self.cluster_name})
            self._created_network = True
        try:
            if self.bench_frontend:
                self._start_bench_frontend()
            else:
                if self.host_network:  # Clipper's frontends listen on their fixed ports there
                    self.clipper_query_port, self.clipper_management_port = 1337, 1338
                    self.clipper_rpc_port = CLIPPER_INTERNAL_RPC_PORT
                super().start_clipper(self.query_frontend_image, self.mgmt_frontend_image, frontend_exporter_image,
                                      cache_size, qf_http_thread_pool_size, qf_http_timeout_request,
                                      qf_http_timeout_content, num_frontend_replicas)
            self._wait_frontend()
        except BaseException:
            self.stop_all()
            raise
        self._watch_stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="docker-watch", daemon=True)
        self._watcher.start()

    def _start_bench_frontend(self) -> None:
        name = f"query_frontend-{self.cluster_name}"
        host = "127.0.0.1" if self.host_network else "0.0.0.0"
        ports = {
            "query_rest": self.clipper_query_port, "management": self.clipper_management_port,
            "query_rpc": self.clipper_rpc_port,
        }
        labels = dict(self.common_labels)
        labels[CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL] = ""
        labels[CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL] = ""
        labels.update({CLIPPER_DOCKER_PORT_LABELS[k]: str(v) for k, v in ports.items()})
        command = [
            "--host", host, "--query_port", str(self.clipper_query_port),
            "--admin_port", str(self.clipper_management_port), "--rpc_port", str(self.clipper_rpc_port),
            "--binary_port", str(self.binary_port), "--batches_in_flight", str(self.batches_in_flight),
            "--replica_timeout_s", str(self.replica_timeout_s), "--title", f"clipper-bench frontend {name}",
        ]
        kwargs = dict(self.extra_container_kwargs)
        if not self.host_network:  # published on the host's loopback only
            kwargs["ports"] = {f"{p}/tcp": ("127.0.0.1", p) for p in (*ports.values(), self.binary_port)}
        if self.frontend_cpus:
            kwargs["cpuset_cpus"] = format_cpu_list(self.frontend_cpus)
        self.docker_client.containers.run(self.query_frontend_image, command, name=name, labels=labels,
                                          log_config=self.log_config, **kwargs)
        self._frontend_name = name

    def _wait_frontend(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._frontend_name and not self.frontend_alive():
                raise ClipperException(f"the frontend container exited at start-up: {self._logs_tail(self._frontend_name)}")
            try:
                if requests.get(f"http://{self.get_query_addr()}/metrics", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise ClipperException(f"the frontend did not answer within {self.start_timeout_s:.0f} s")

    def connect(self) -> None:
        """Clipper's connect reads ports from container labels; ours are already known."""

    # -- replicas -----------------------------------------------------------------------------

    def _slots_in_use(self, name: str, version: str) -> set[int]:
        return {int(c.labels.get(SLOT_LABEL, -1)) for c in self._get_replicas(name, version)}

    def _add_replica(self, name, version, input_type, image):
        """Start one replica container on the next free slot's cores and GPU."""
        used = self._slots_in_use(name, version) | getattr(self, "_starting_slots", set())
        slot = next(i for i in range(len(used) + 1) if i not in used)
        self._starting_slots = used | {slot}
        place = self.placements[slot] if slot < len(self.placements) else Placement()
        container_name = f"{create_model_container_label(name, version)}-r{slot + 1}-{self.cluster_name}"
        if self.host_network:
            clipper_ip, clipper_port = "127.0.0.1", self.clipper_rpc_port
        elif self.bench_frontend:
            clipper_ip, clipper_port = self._frontend_name, self.clipper_rpc_port
        else:
            frontends = self.docker_client.containers.list(filters={"label": [
                f"{CLIPPER_DOCKER_LABEL}={self.cluster_name}", CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL]})
            if not frontends:
                raise ClipperException("no Clipper query frontend to attach model container to")
            clipper_ip, clipper_port = frontends[0].name, CLIPPER_INTERNAL_RPC_PORT
        env = {
            "CLIPPER_MODEL_NAME": name, "CLIPPER_MODEL_VERSION": str(version), "CLIPPER_INPUT_TYPE": input_type,
            "CLIPPER_IP": clipper_ip, "CLIPPER_PORT": str(clipper_port),
            "CLIPPER_BENCH_IDENTITY": container_name,
        }
        kwargs = dict(self.extra_container_kwargs)
        if place.cpus:
            kwargs["cpuset_cpus"] = format_cpu_list(place.cpus)
            env[CPUS_ENV] = format_cpu_list(place.cpus)
        if place.gpu is not None:
            import docker

            kwargs["device_requests"] = [docker.types.DeviceRequest(device_ids=[str(place.gpu)], capabilities=[["gpu"]])]
        labels = dict(self.common_labels)
        labels[CLIPPER_MODEL_CONTAINER_LABEL] = create_model_container_label(name, version)
        labels[SLOT_LABEL] = str(slot)
        command = self._replica_command(image)
        self.docker_client.containers.run(image, command, name=container_name, environment=env, labels=labels,
                                          log_config=self.log_config, **kwargs)
        if not self.bench_frontend:
            from clipper_admin.docker.docker_metric_utils import add_to_metric_config

            add_to_metric_config(container_name, self.prom_config_path, self.prometheus_port,
                                 CLIPPER_INTERNAL_METRIC_PORT)
        return container_name

    def _replica_command(self, image: str) -> list[str] | None:
        """clipper-bench images get the run's model flags; other images run their own command."""
        if not image.startswith(IMAGE_PREFIX):
            return None
        model = image[len(IMAGE_PREFIX):].split(":", 1)[0]
        trained = get_model_spec(model).needs_build
        default = ["--model_name", model] + (["--models_dir", "/models"] if trained else [])
        return default + _without_option(self.container_args, "--models_dir")

    def set_num_replicas(self, name, version, input_type, image, num_replicas) -> None:
        """Add or remove replicas; wait until added ones have connected to the frontend."""
        with docker_errors(f"deploying {name}"):
            self._set_num_replicas(name, version, input_type, image, num_replicas)

    def _set_num_replicas(self, name, version, input_type, image, num_replicas) -> None:
        before = {c.name for c in self._get_replicas(name, version)}
        current = sorted(self._get_replicas(name, version), key=lambda c: int(c.labels.get(SLOT_LABEL, 0)))
        while len(current) > num_replicas:  # remove the highest slots first
            victim = current.pop()
            self._retiring.add(victim.name)
            if self.bench_frontend:
                try:
                    self._admin("clipper_bench/drain_replica", {"identity": victim.name, "timeout_s": 30},
                                timeout=40)
                except requests.RequestException:
                    pass
            self._save_logs(victim)
            victim.remove(force=True)
        self._starting_slots = set()
        try:
            if len(current) < num_replicas:
                super().set_num_replicas(name, version, input_type, image, num_replicas)
        finally:
            self._starting_slots = set()
        added = {c.name for c in self._get_replicas(name, version)} - before
        if added and self.bench_frontend:
            self._wait_connected(added)

    def _wait_connected(self, names: set[str]) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            for n in names:
                state = self.docker_client.containers.get(n).attrs["State"]
                if state["Status"] not in ("created", "running"):
                    raise ClipperException(f"replica container {n} exited while starting (exit code "
                                           f"{state.get('ExitCode')}): {self._logs_tail(n)}")
            joined = self._joined_identities()
            if names <= joined:
                return
            if time.monotonic() > deadline:
                raise ClipperException(f"replicas did not connect within {self.start_timeout_s:.0f} s "
                                       f"({', '.join(sorted(names - joined))}); see their logs in {self.log_dir}")
            time.sleep(0.1)

    def _check_container_status(self, name: str) -> None:
        """Wait until container ``name`` runs; fail at once with its last log line if it exited.
        (clipper_admin's version retries for 5 minutes and breaks on containers without a health check.)"""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            state = self.docker_client.containers.get(name).attrs["State"]
            if state["Status"] == "running":
                return
            if state["Status"] in ("exited", "dead"):
                raise ClipperException(f"container {name} exited while starting (exit code "
                                       f"{state.get('ExitCode')}): {self._logs_tail(name)}")
            if time.monotonic() > deadline:
                raise ClipperException(f"container {name} still {state['Status']} after {self.start_timeout_s:.0f} s")
            time.sleep(0.1)

    def replica_ids(self) -> list[str]:
        """Names of the live replica containers, by slot."""
        containers = self.docker_client.containers.list(filters={"label": [
            f"{CLIPPER_DOCKER_LABEL}={self.cluster_name}", CLIPPER_MODEL_CONTAINER_LABEL]})
        return [c.name for c in sorted(containers, key=lambda c: int(c.labels.get(SLOT_LABEL, 0)))]

    def frontend_alive(self) -> bool:
        """Whether the frontend container runs (always True with Clipper's own frontends)."""
        name = self._frontend_name
        if name is None:
            return True  # Clipper's frontends: the measurement's own errors tell
        try:
            return self.docker_client.containers.get(name).status == "running"
        except Exception:  # noqa: BLE001 - gone
            return False

    def frontend_exit(self) -> str:
        """How the frontend container ended: its exit code, or ``was removed``."""
        try:
            state = self.docker_client.containers.get(self._frontend_name).attrs["State"]
            return f"exited with code {state.get('ExitCode')}"
        except Exception:  # noqa: BLE001
            return "was removed"

    # -- faults -------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Report replica containers that stopped on their own, and tell our frontend at once."""
        label = f"{CLIPPER_DOCKER_LABEL}={self.cluster_name}"
        while not self._watch_stop.wait(self.watch_interval_s):
            if self.bench_frontend:
                self.collect_frontend_faults()
            try:
                stopped = self.docker_client.containers.list(all=True, filters={
                    "label": [label, CLIPPER_MODEL_CONTAINER_LABEL], "status": "exited"})
            except Exception:  # noqa: BLE001 - the engine is going away with us
                continue
            for c in stopped:
                if c.name in self._retiring or c.name in self._reported:
                    continue
                self._reported.add(c.name)
                code = c.attrs["State"].get("ExitCode")
                what = f"replica container {c.name} exited with code {code}"
                self.faults.append({"replica": c.name, "exit_code": code, "at": time.time(), "what": what})
                logger.warning(what)
                if self.bench_frontend:
                    try:
                        self._admin("clipper_bench/remove_replica", {"identity": c.name, "reason": what},
                                    timeout=5)
                    except requests.RequestException:
                        pass

    # -- teardown -------------------------------------------------------------------------------

    def _logs_tail(self, name: str, lines: int = 3) -> str:
        try:
            text = self.docker_client.containers.get(name).logs(tail=lines).decode(errors="replace").strip()
        except Exception:  # noqa: BLE001
            return "(no logs)"
        return text.splitlines()[-1] if text else "(no output)"

    def _save_logs(self, container) -> None:
        try:
            (self.log_dir / f"{container.name}.log").write_bytes(container.logs())
        except Exception:  # noqa: BLE001 - logs are a courtesy; teardown must go on
            pass

    def stop_all_model_containers(self) -> None:
        """Remove every replica container of this cluster, saving its logs to log_dir first."""
        containers = self.docker_client.containers.list(all=True, filters={"label": [
            f"{CLIPPER_DOCKER_LABEL}={self.cluster_name}", CLIPPER_MODEL_CONTAINER_LABEL]})
        for c in containers:
            self._retiring.add(c.name)
            self._save_logs(c)
            c.remove(force=True)

    def stop_all(self, graceful: bool = True) -> None:
        """Remove every container of this cluster (logs saved to log_dir), its network and temp files."""
        self._watch_stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(5)
        try:
            containers = self.docker_client.containers.list(
                all=True, filters={"label": f"{CLIPPER_DOCKER_LABEL}={self.cluster_name}"})
        except Exception:  # noqa: BLE001
            containers = []
        for c in containers:
            self._retiring.add(c.name)
            self._save_logs(c)
            try:
                if graceful and c.status == "running":
                    c.stop(timeout=5)
                c.remove(force=True)
            except Exception as exc:  # noqa: BLE001 - keep removing the others
                logger.warning("could not remove container %s: %s", c.name, exc)
        if self._created_network:
            try:
                self.docker_client.networks.get(self.docker_network).remove()
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not remove network %s: %s", self.docker_network, exc)
            self._created_network = False
        prom = getattr(self, "prom_config_path", None)
        if prom and os.path.exists(prom):
            os.unlink(prom)


@contextlib.contextmanager
def docker_errors(doing: str) -> Iterator[None]:
    """Docker API errors become ClipperException, which a sweep records as a failed configuration."""
    import docker

    try:
        yield
    except docker.errors.DockerException as exc:
        raise ClipperException(f"docker, {doing}: {exc}") from exc


def _without_option(args: list[str], option: str) -> list[str]:
    """``args`` without ``option`` and its value."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == option:
            skip = True
        else:
            out.append(a)
    return out
