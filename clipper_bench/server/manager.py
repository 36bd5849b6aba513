"""LocalContainerManager: clipper_admin's ContainerManager for a Clipper-compatible cluster on this host.

``ClipperConnection(LocalContainerManager(...))`` works unchanged: ``start_clipper`` starts the
frontend process, ``deploy_model`` and ``set_num_replicas`` start and stop replica processes (each
pinned to its cores and given its GPU), and ``stop_all`` reaps everything.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
from clipper_admin.container_manager import ClusterAdapter, ContainerManager
from clipper_admin.exceptions import ClipperException

from ..common.pinning import CPUS_ENV, format_cpu_list
from ..common.processes import PORT_LABELS, ChildProcess, python_module_argv, reap, spawn

logger = logging.getLogger("clipper_bench.manager")

IMAGE_PREFIX = "clipper-bench/"


@dataclass(frozen=True)
class Placement:
    """Where one replica runs: its cores (empty: anywhere) and its GPU (None: the CPU)."""

    cpus: tuple[int, ...] = ()
    gpu: int | None = None

    def describe(self) -> str:
        """The placement as text, e.g. ``cpus=0,1 gpu=none`` (``cpus=any`` when unpinned)."""
        cpus = format_cpu_list(self.cpus) if self.cpus else "any"
        gpu = "none" if self.gpu is None else str(self.gpu)
        return f"cpus={cpus} gpu={gpu}"


@dataclass
class _Replica:
    slot: int
    process: ChildProcess
    retiring: bool = False  # being stopped on purpose: its exit is not a fault
    reported: bool = False

    @property
    def identity(self) -> str:
        return f"cb-{self.process.pid}"


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP, or traced)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


def model_for_image(image: str, clipper_model_name: str) -> str:
    """The registry model a container image names: ``clipper-bench/<model>[:tag]``, else the Clipper name."""
    if image.startswith(IMAGE_PREFIX):
        return image[len(IMAGE_PREFIX):].split(":", 1)[0]
    return clipper_model_name


class BenchFrontendCalls:
    """Management calls to a clipper-bench frontend (Clipper's and our own), for any manager that
    runs one and has ``get_admin_addr``: the local and the docker engine share them."""

    _faults_lock = threading.Lock()  # the watch thread and the runner both collect faults

    def _admin(self, call: str, body: dict, timeout: float = 10.0) -> requests.Response:
        return requests.post(f"http://{self.get_admin_addr()}/admin/{call}", json=body, timeout=timeout)

    def _joined_identities(self) -> set[str]:
        """Routing identities of the replicas connected to the frontend (empty while it cannot say)."""
        try:
            return {c.get("identity") for c in self._admin("get_all_containers", {"verbose": True}).json()}
        except (requests.RequestException, ValueError):
            return set()

    def set_batch_size(self, name: str, version: str, batch_size: int) -> None:
        """Change a deployed model's batch size; its replicas keep running (clipper-bench's own call)."""
        r = self._admin("clipper_bench/set_batch_size",
                        {"model_name": name, "model_version": str(version), "batch_size": batch_size})
        if r.status_code != 200:
            raise ClipperException(f"setting batch size {batch_size} of {name}:{version} failed: {r.text}")

    def reset_metrics(self) -> None:
        """Clear the frontend's ``/metrics`` so they cover only what follows."""
        r = self._admin("clipper_bench/reset_metrics", {})
        if r.status_code != 200:
            raise ClipperException(f"resetting the frontend's metrics failed: {r.text}")

    def set_input_size(self, name: str, version: str, input_elements: int) -> None:
        """Declare how many elements one input of a model holds; the frontend then answers inputs of
        any other size with HTTP 400 (or status 2 on the binary path) instead of passing them on."""
        r = self._admin("clipper_bench/set_input_size",
                        {"model_name": name, "model_version": str(version), "input_elements": input_elements})
        if r.status_code != 200:
            raise ClipperException(f"declaring the input size of {name}:{version} failed: {r.text}")

    def collect_frontend_faults(self) -> list[dict]:
        """Faults the frontend found since the last call (hung replicas, lost batches, silent replicas),
        appended to ``self.faults``; none when the frontend cannot say (Clipper's own has no such call)."""
        with self._faults_lock:
            try:
                r = self._admin("clipper_bench/faults", {}, timeout=5)
                found = r.json() if r.status_code == 200 else []
            except (requests.RequestException, ValueError):
                return []
            seen = getattr(self, "_frontend_faults_seen", 0)
            if not isinstance(found, list) or len(found) < seen:
                return []  # another frontend (a restart): nothing to add
            new = found[seen:]
            self._frontend_faults_seen = len(found)
            self.faults.extend(new)
            return new

    def unhealthy(self, name: str, version: str, num_replicas: int) -> str | None:
        """Why this deployment cannot serve a next configuration as it stands, or None if it can."""
        if not self.frontend_alive():
            return f"the frontend {self.frontend_exit()}"
        running = self.get_num_replicas(name, version)
        if running != num_replicas:
            return f"{running} of {num_replicas} replicas are running"
        missing = set(self.replica_ids()) - self._joined_identities()
        if missing:
            return f"replicas {', '.join(sorted(missing))} are not connected to the frontend"
        return None


@dataclass
class LocalContainerManager(BenchFrontendCalls, ContainerManager):
    """Runs the frontend and model replicas as local processes."""

    host: str = "127.0.0.1"
    query_port: int = 1337
    admin_port: int = 1338
    rpc_port: int = 7000
    binary_port: int = 1339
    metrics_port: int = 0  # Prometheus' /metrics (0: not served)
    # The ports above are asked for: 0 is one the OS picks (metrics: not served); a taken port stops
    # the start (ClipperException naming it), unless it is named here (query, admin, rpc, binary,
    # metrics): then a free port is used and said. Once started, the fields hold the ports bound.
    fallback_ports: tuple[str, ...] = ()
    announce: Callable[[str], None] | None = None  # where "port N is taken" lines go (None: the log)
    power_dir: str = ""  # the power sampler's live files, for Prometheus
    log_dir: Path | None = None
    placements: list[Placement] = field(default_factory=list)
    container_args: list[str] = field(default_factory=list)
    # several models on one frontend (a pipeline's stages): each model's own placements and flags,
    # by Clipper model name, in place of ``placements`` and after ``container_args``
    model_placements: dict[str, list[Placement]] = field(default_factory=dict)
    model_args: dict[str, list[str]] = field(default_factory=dict)
    frontend_cpus: tuple[int, ...] = ()
    batches_in_flight: int = 1
    start_timeout_s: float = 120.0
    replica_timeout_s: float = 30.0
    hang_min_s: float = 3.0
    watch_interval_s: float = 0.2
    cluster_name: str = "local"

    def __post_init__(self) -> None:
        self.cluster_identifier = self.cluster_name
        self.logger = ClusterAdapter(logger, {"cluster_name": self.cluster_identifier})
        self._own_log_dir = self.log_dir is None
        self.log_dir = Path(tempfile.mkdtemp(prefix="clipper-bench-logs-")) if self.log_dir is None else Path(self.log_dir)
        self.frontend: ChildProcess | None = None
        self.replicas: dict[tuple[str, str], list[_Replica]] = {}
        self.faults: list[dict] = []
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.port_notes: list[str] = []  # one line per port that moved because the one asked for was taken

    # -- addresses ----------------------------------------------------------------------------

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def get_admin_addr(self) -> str:
        """Host:port of the frontend's management (admin) endpoint."""
        return f"{self._client_host}:{self.admin_port}"

    def get_query_addr(self) -> str:
        """Host:port of the frontend's REST query endpoint."""
        return f"{self._client_host}:{self.query_port}"

    def get_metric_addr(self) -> str:
        """Host:port that serves ``/metrics``: the query endpoint's."""
        return f"{self._client_host}:{self.query_port}"

    def get_binary_addr(self) -> str:
        """Address of the binary query path (``tcp://`` + this)."""
        return f"{self._client_host}:{self.binary_port}"

    def get_prometheus_addr(self) -> str | None:
        """Host:port of the Prometheus ``/metrics`` endpoint, or None when it is not served."""
        return f"{self._client_host}:{self.metrics_port}" if self.metrics_port else None

    # -- the frontend -------------------------------------------------------------------------

    def start_clipper(self, query_frontend_image=None, mgmt_frontend_image=None,
                      frontend_exporter_image=None, cache_size=None,
                      qf_http_thread_pool_size=None, qf_http_timeout_request=None,
                      qf_http_timeout_content=None, num_frontend_replicas=1) -> None:
        """Start the frontend process and wait until it holds its ports and answers (images are
        ignored here). The frontend binds first and reports the ports it holds; from then on the
        ``*_port`` fields and the ``get_*_addr`` methods give those."""
        if self.frontend is not None and self.frontend.alive():
            raise ClipperException("this LocalContainerManager already runs a frontend")
        ports_file = Path(self.log_dir) / "frontend.ports.json"
        ports_file.unlink(missing_ok=True)
        argv = python_module_argv(
            "clipper_bench.server.frontend",
            "--host", self.host, "--query_port", str(self.query_port),
            "--admin_port", str(self.admin_port), "--rpc_port", str(self.rpc_port),
            "--binary_port", str(self.binary_port), "--fallback_ports", ",".join(self.fallback_ports),
            "--ports_file", str(ports_file),
            "--batches_in_flight", str(self.batches_in_flight),
            "--replica_timeout_s", str(self.replica_timeout_s), "--hang_min_s", str(self.hang_min_s),
            "--metrics_port", str(self.metrics_port), "--power_dir", self.power_dir,
        )
        env = dict(os.environ)
        env.pop(CPUS_ENV, None)
        if self.frontend_cpus:
            env[CPUS_ENV] = format_cpu_list(self.frontend_cpus)
        self.frontend = spawn("frontend", argv, self.log_dir / "frontend.log", env=env)
        deadline = time.monotonic() + self.start_timeout_s
        try:
            self._take_reported_ports(ports_file, deadline)
            self._await_answers(deadline)
        except BaseException:
            self.stop_all()
            raise
        self._watch_stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="replica-watch", daemon=True)
        self._watcher.start()

    def _take_reported_ports(self, ports_file: Path, deadline: float) -> None:
        """Wait for the frontend's ports file; take the ports it holds, or raise with why it has none."""
        while not ports_file.exists():
            if not self.frontend.alive() and not ports_file.exists():
                raise self._exited_at_start_up()
            if time.monotonic() > deadline:
                raise ClipperException(f"the frontend did not bind its ports within {self.start_timeout_s:.0f} s; "
                                       f"see {self.log_dir / 'frontend.log'}")
            time.sleep(0.02)
        doc = json.loads(ports_file.read_text())
        if "error" in doc:
            raise ClipperException(doc["error"])
        ports = doc["ports"]
        self.query_port, self.admin_port = ports["query"], ports["admin"]
        self.rpc_port, self.binary_port, self.metrics_port = ports["rpc"], ports["binary"], ports["metrics"]
        self.port_notes = [
            f"{PORT_LABELS[what]} port {asked} on {self.host} is taken (another run?): using {bound} instead"
            for what, (asked, bound) in doc.get("moved", {}).items()
        ]
        for note in self.port_notes:
            (self.announce or self.logger.warning)(note)

    def _exited_at_start_up(self) -> ClipperException:
        tail = self.frontend.log_tail(5).strip()
        return ClipperException(f"the frontend exited at start-up: {tail.splitlines()[-1] if tail else 'no output'}")

    def _await_answers(self, deadline: float) -> None:
        """Wait until the frontend answers on its query and admin ports."""
        while time.monotonic() < deadline:
            if not self.frontend.alive():
                raise self._exited_at_start_up()
            if self._frontend_answers():
                return
            time.sleep(0.05)
        raise ClipperException(
            f"the frontend did not answer within {self.start_timeout_s:.0f} s; see {self.log_dir / 'frontend.log'}"
        )

    def bound_ports(self) -> dict[str, int | None]:
        """The ports the frontend holds (asked for before it started), metrics None when not served."""
        return {"query": self.query_port, "admin": self.admin_port, "rpc": self.rpc_port,
                "binary": self.binary_port, "metrics": self.metrics_port or None}

    def _frontend_answers(self) -> bool:
        try:
            for url in (f"http://{self.get_query_addr()}/metrics", f"http://{self.get_admin_addr()}/admin/ping"):
                if requests.get(url, timeout=1).status_code != 200:
                    return False
            return True
        except requests.RequestException:
            return False

    def connect(self) -> None:
        """Check that a frontend answers here; raise ClipperException if none does."""
        if not self._frontend_answers():
            raise ClipperException(f"no Clipper frontend answers at {self.get_admin_addr()}")

    # -- replicas -----------------------------------------------------------------------------

    def deploy_model(self, name, version, input_type, image, num_replicas=1) -> None:
        """Start ``num_replicas`` replicas of a model version (see :meth:`set_num_replicas`)."""
        self.set_num_replicas(name, version, input_type, image, num_replicas)

    def get_num_replicas(self, name, version) -> int:
        """How many replica processes of a model version are alive."""
        return sum(1 for r in self.replicas.get((name, str(version)), []) if r.process.alive())

    def set_num_replicas(self, name, version, input_type, image, num_replicas) -> None:
        """Add or remove replicas of one model version; the others keep running."""
        key = (name, str(version))
        current = self.replicas.setdefault(key, [])
        if num_replicas < 0:
            raise ClipperException(f"num_replicas must be at least 0, got {num_replicas}")
        while len(current) > num_replicas:
            self._remove_replica(current.pop())
        added = []
        while len(current) < num_replicas:
            used = {r.slot for r in current}
            slot = next(i for i in range(len(current) + 1) if i not in used)
            replica = self._start_replica(key, slot, input_type, image)
            current.append(replica)
            added.append(replica)
        current.sort(key=lambda r: r.slot)
        if added:
            self._wait_connected(key, added)

    def placement_for(self, slot: int, name: str | None = None) -> Placement:
        """Replica slot ``slot``'s placement (of model ``name``'s own placements where it has them);
        unpinned and GPU-less past the configured ones."""
        places = self.model_placements.get(name, self.placements) if name is not None else self.placements
        return places[slot] if slot < len(places) else Placement()

    def _start_replica(self, key: tuple[str, str], slot: int, input_type: str, image: str) -> _Replica:
        name, version = key
        placement = self.placement_for(slot, name)
        env = dict(os.environ)
        env.update({
            "CLIPPER_MODEL_NAME": name,
            "CLIPPER_MODEL_VERSION": version,
            "CLIPPER_IP": self._client_host,
            "CLIPPER_PORT": str(self.rpc_port),
            "CLIPPER_INPUT_TYPE": str(input_type),
            "CUDA_VISIBLE_DEVICES": "" if placement.gpu is None else str(placement.gpu),
            "CLIPPER_BENCH_TITLE": f"clipper-bench replica {name}#{slot + 1} {placement.describe()}",
        })
        if placement.cpus:
            env[CPUS_ENV] = format_cpu_list(placement.cpus)
        else:
            env.pop(CPUS_ENV, None)
        argv = python_module_argv(
            "clipper_bench", "container", "--model_name", model_for_image(image, name), *self.container_args,
            *self.model_args.get(name, []),
        )
        log_path = self.log_dir / f"replica-{name}-{version}-{slot + 1}.log"
        process = spawn(f"replica {name}#{slot + 1}", argv, log_path, env=env)
        self.logger.info("started replica %s#%d (pid %d, %s)", name, slot + 1, process.pid, placement.describe())
        return _Replica(slot, process)

    def _wait_connected(self, key: tuple[str, str], replicas: list[_Replica]) -> None:
        wanted = {r.identity for r in replicas}
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            for r in replicas:
                if not r.process.alive():
                    raise ClipperException(
                        f"replica {key[0]}#{r.slot + 1} exited while starting "
                        f"(exit code {r.process.popen.returncode}); see {r.process.log_path}: "
                        f"{r.process.log_tail(1).strip()}"
                    )
            joined = self._joined_identities()
            if wanted <= joined:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(wanted - joined))
                raise ClipperException(
                    f"replicas of {key[0]} did not connect within {self.start_timeout_s:.0f} s "
                    f"({missing}); see the logs in {self.log_dir}"
                )
            time.sleep(0.05)

    def _watch(self) -> None:
        """Tell the frontend at once when a replica process dies or is stopped (SIGSTOP), so its queries
        fail fast; kill replicas the frontend found hung. A killed replica is replaced by the next
        configuration's fresh deployment."""
        rounds = 0
        while not self._watch_stop.wait(self.watch_interval_s):
            rounds += 1
            if rounds % 5 == 0:
                self._kill_hung(self.collect_frontend_faults())
            for (name, _version), reps in list(self.replicas.items()):
                for r in list(reps):
                    if r.retiring or r.reported:
                        continue
                    if r.process.alive():
                        if _stopped(r.process.pid):
                            r.reported = True
                            r.process.popen.kill()
                            self._replica_fault(name, r, "was stopped (SIGSTOP): killed")
                        continue
                    r.reported = True
                    code = r.process.popen.returncode
                    self._replica_fault(name, r, f"killed by signal {-code}" if code < 0 else f"exited with code {code}")

    def _replica_fault(self, name: str, r: _Replica, how: str) -> None:
        what = f"replica {name}#{r.slot + 1} (pid {r.process.pid}) {how}"
        self.faults.append({"replica": f"{name}#{r.slot + 1}", "pid": r.process.pid,
                            "exit_code": r.process.popen.returncode, "at": time.time(), "what": what,
                            "log": str(r.process.log_path)})
        self.logger.warning("%s; see %s", what, r.process.log_path)
        try:
            self._admin("clipper_bench/remove_replica", {"identity": r.identity, "reason": what})
        except requests.RequestException:
            pass  # the frontend is gone too; whoever runs the measurement sees that

    def _kill_hung(self, faults: list[dict]) -> None:
        """Kill the processes of replicas the frontend declared hung (it has already dropped them)."""
        hung = {f.get("identity") for f in faults if f.get("kind") == "hung"}
        for reps in list(self.replicas.values()):
            for r in reps:
                if r.identity in hung and not r.reported and r.process.alive():
                    r.reported = True
                    r.process.popen.kill()
                    self.logger.warning("killed hung replica %s (pid %d)", r.identity, r.process.pid)

    def _remove_replica(self, replica: _Replica) -> None:
        replica.retiring = True
        if replica.process.alive() and self.frontend is not None and self.frontend.alive():
            try:
                self._admin("clipper_bench/drain_replica", {"identity": replica.identity, "timeout_s": 30})
            except requests.RequestException as exc:
                self.logger.warning("could not drain %s: %s", replica.identity, exc)
        reap([replica.process])

    supports_live_batch_size = True

    def frontend_alive(self) -> bool:
        """Whether the frontend process runs."""
        return self.frontend is not None and self.frontend.alive()

    def frontend_exit(self) -> str:
        """How the frontend process ended: ``exited with code N`` or ``was killed by signal N``."""
        code = self.frontend.popen.returncode if self.frontend is not None else None
        return f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"

    def replica_ids(self) -> list[str]:
        """Identities (``cb-<pid>``) of the live replicas, by slot."""
        return [r.identity for reps in self.replicas.values() for r in reps if r.process.alive()]

    def get_logs(self, logging_dir) -> list[str]:
        """Copy every process's log file into ``logging_dir``; return the copies' paths."""
        out = Path(logging_dir)
        out.mkdir(parents=True, exist_ok=True)
        copies = []
        for path in sorted(Path(self.log_dir).glob("*.log")):
            shutil.copy(path, out / path.name)
            copies.append(str(out / path.name))
        return copies

    def stop_models(self, models) -> None:
        """Drain and stop every replica of the given ``{name: [versions]}``."""
        for name, versions in models.items():
            for version in versions:
                for replica in self.replicas.pop((name, str(version)), []):
                    self._remove_replica(replica)

    def stop_all_model_containers(self) -> None:
        """Stop every replica process of every model (without draining) and wait for them."""
        for reps in self.replicas.values():
            for r in reps:
                r.retiring = True
        processes = [r.process for reps in self.replicas.values() for r in reps]
        self.replicas.clear()
        reap(processes)

    def stop_all(self, graceful=True) -> None:
        """Stop every replica, then the frontend, and wait for all of them."""
        self._watch_stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(5)
        self.stop_all_model_containers()
        if self.frontend is not None:
            reap([self.frontend], timeout_s=5.0 if graceful else 0.5)
            self.frontend = None

    def all_processes(self) -> list[ChildProcess]:
        """Every child process this manager runs: the replicas, then the frontend if started."""
        procs = [r.process for reps in self.replicas.values() for r in reps]
        return procs + ([self.frontend] if self.frontend else [])
