"""AttachedContainerManager: clipper_admin's ContainerManager for a Clipper that is already running.

The frontend is someone else's (Clipper's own images, a Clipper built from source, a fork, or
``clipper-bench serve``): ``start_clipper`` starts nothing, it checks that the query address answers
``GET /metrics`` and the management address ``GET /admin/ping``. Replicas are clipper-bench's model
containers, started here as pinned local processes (LocalContainerManager's code) that connect to the
running Clipper's RPC port. ``stop_all`` removes only what this manager added: the application and
model version it registered (``/admin/delete_app``, ``/admin/delete_versioned_model``) and the
replicas it started; the running Clipper keeps running.

A real Clipper's frontend has none of clipper-bench's ``/admin/clipper_bench/*`` calls. Whether the
target has them (``bench_frontend``) is asked once; without them replicas count as connected when the
frontend's container listing grows by as many entries of their model version, and the frontend's
faults, batch-size changes and metric resets are not available (the engine redeploys instead).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import requests
from clipper_admin.exceptions import ClipperException

from ...common.processes import reap
from ...server.manager import LocalContainerManager, _Replica

DEFAULT_QUERY_PORT = 1337  # Clipper's
DEFAULT_ADMIN_PORT = 1338
DEFAULT_RPC_PORT = 7000


def split_address(text: str, default_port: int, flag: str) -> tuple[str, int]:
    """``HOST[:PORT]`` as (host, port); ValueError naming ``flag`` and the form it takes."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = text.strip(), str(default_port)
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{flag} {text!r} is not HOST[:PORT] (a port 1-65535): pass e.g. 127.0.0.1:{default_port}")
    return host, int(port_text)


@dataclass(frozen=True)
class ClipperAddresses:
    """Where the running Clipper answers: query (REST), management, container RPC, and optionally
    the binary query path (clipper-bench's frontend only), each ``host:port``."""

    query: str
    admin: str
    rpc: str
    binary: str | None = None

    @classmethod
    def parse(cls, query: str, admin: str | None = None, rpc: str | None = None,
              binary: str | None = None) -> ClipperAddresses:
        """From the flags: admin and RPC default to the query host on Clipper's ports (1338, 7000)."""
        qhost, qport = split_address(query, DEFAULT_QUERY_PORT, "--clipper_address")
        ahost, aport = split_address(admin or qhost, DEFAULT_ADMIN_PORT, "--clipper_admin_address")
        rhost, rport = split_address(rpc or qhost, DEFAULT_RPC_PORT, "--clipper_rpc_address")
        bin_addr = None
        if binary:
            bhost, bport = split_address(binary, 1339, "--clipper_binary_address")
            bin_addr = f"{bhost}:{bport}"
        return cls(f"{qhost}:{qport}", f"{ahost}:{aport}", f"{rhost}:{rport}", bin_addr)

    def to_json(self) -> dict[str, str | None]:
        """The addresses as a record holds them."""
        return {"query": self.query, "admin": self.admin, "rpc": self.rpc, "binary": self.binary}


def _answers(url: str) -> str | None:
    """Why ``GET url`` does not answer 200, or None when it does."""
    try:
        status = requests.get(url, timeout=5).status_code
    except requests.RequestException as exc:
        return type(exc).__name__
    return None if status == 200 else f"HTTP {status}"


def check_running_clipper(addrs: ClipperAddresses) -> None:
    """ClipperException in one line, naming the address and the fix, unless the query frontend answers
    ``/metrics``, the management frontend ``/admin/ping`` and the RPC and binary ports take connections."""
    for what, flag, url in (("query frontend", "--clipper_address", f"http://{addrs.query}/metrics"),
                            ("management frontend", "--clipper_admin_address", f"http://{addrs.admin}/admin/ping")):
        problem = _answers(url)
        if problem:
            raise ClipperException(f"no Clipper {what} answers GET {url} ({problem}): start Clipper there, "
                                   f"or pass {flag} HOST:PORT of the running one")
    for what, flag, addr in (("container RPC", "--clipper_rpc_address", addrs.rpc),
                             ("binary query", "--clipper_binary_address", addrs.binary)):
        if addr is None:
            continue
        host, port = addr.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise ClipperException(f"the {what} port {addr} takes no connection ({exc.strerror or exc}): "
                                   f"pass {flag} HOST:PORT of the running Clipper's") from None


@dataclass
class AttachedContainerManager(LocalContainerManager):
    """Replicas as local processes, served by a Clipper that runs elsewhere (see the module docstring)."""

    addresses: ClipperAddresses = field(default_factory=lambda: ClipperAddresses("127.0.0.1:1337",
                                                                                  "127.0.0.1:1338", "127.0.0.1:7000"))
    cluster_name: str = "attached"
    supports_live_batch_size = False  # a real Clipper cannot change a deployed model's batch size
    bench_frontend = False  # whether the target has clipper-bench's /admin/clipper_bench/* calls

    def __post_init__(self) -> None:
        super().__post_init__()
        self.host, rpc_port = self.addresses.rpc.rsplit(":", 1)
        self.rpc_port = int(rpc_port)
        self.registered_app: str | None = None  # what stop_all removes from the running Clipper
        self.registered_model: tuple[str, str] | None = None
        self._listed_before = 0

    @property
    def _client_host(self) -> str:  # where the replicas connect
        return self.host

    def get_admin_addr(self) -> str:
        """The running Clipper's management address."""
        return self.addresses.admin

    def get_query_addr(self) -> str:
        """The running Clipper's REST query address."""
        return self.addresses.query

    def get_metric_addr(self) -> str:
        """Where ``/metrics`` is served: the query address."""
        return self.addresses.query

    def get_binary_addr(self) -> str:
        """The binary query path (``--clipper_binary_address``; clipper-bench's frontend only)."""
        if self.addresses.binary is None:
            raise ClipperException("the binary query path needs --clipper_binary_address HOST:PORT")
        return self.addresses.binary

    def get_prometheus_addr(self) -> str | None:
        """None: the running Clipper's exporter, if any, is not this run's to name."""
        return None

    def start_clipper(self, *args, **kwargs) -> None:
        """Start nothing: check the running Clipper answers, ask whether it is clipper-bench's, and
        start watching the replicas this manager will start."""
        check_running_clipper(self.addresses)
        try:
            r = self._admin("clipper_bench/faults", {}, timeout=5)
            self.bench_frontend = r.status_code == 200 and isinstance(r.json(), list)
            self._frontend_faults_seen = len(r.json()) if self.bench_frontend else 0  # earlier runs' are not ours
        except (requests.RequestException, ValueError):
            self.bench_frontend = False
        if self._watcher is None or not self._watcher.is_alive():
            self._watch_stop.clear()
            self._watcher = threading.Thread(target=self._watch, name="replica-watch", daemon=True)
            self._watcher.start()

    def collect_frontend_faults(self) -> list[dict]:
        """The frontend's faults where it is clipper-bench's; a real Clipper keeps none to ask for."""
        return super().collect_frontend_faults() if self.bench_frontend else []

    def connect(self) -> None:
        """Check the running Clipper answers (ClipperException in one line if not)."""
        check_running_clipper(self.addresses)

    def frontend_alive(self) -> bool:
        """Whether the running Clipper's query frontend still answers ``/metrics``."""
        return _answers(f"http://{self.addresses.query}/metrics") is None

    def frontend_exit(self) -> str:
        """How the running Clipper went away, as ``the frontend ...`` continues."""
        return f"at {self.addresses.query} stopped answering GET /metrics"

    def name_taken(self, app: str, model: str, version: str) -> str | None:
        """What already holds ``app`` or ``model:version`` on the running Clipper (never ours to
        replace or remove), or None when both are free."""
        apps = self._admin("get_all_applications", {"verbose": False}).json() or []
        if app in apps:
            return f"application '{app}'"
        models = self._admin("get_all_models", {"verbose": False}).json() or []
        if f"{model}:{version}" in models:
            return f"model version {model}:{version}"
        return None

    # -- replicas: LocalContainerManager's, with a count-based join check for a real Clipper ----

    def set_num_replicas(self, name, version, input_type, image, num_replicas) -> None:
        """As LocalContainerManager's; first note how many containers of the version Clipper lists."""
        self._listed_before = self._listed(name, str(version))
        super().set_num_replicas(name, version, input_type, image, num_replicas)

    def _listed(self, name: str, version: str) -> int:
        """Containers of ``name:version`` the running Clipper lists (dead ones included on Clipper's own)."""
        try:
            found = self._admin("get_all_containers", {"verbose": True}).json()
        except (requests.RequestException, ValueError):
            return 0
        return sum(1 for c in found or [] if isinstance(c, dict)
                   and str(c.get("model_name")) == name and str(c.get("model_version")) == version)

    def _wait_connected(self, key: tuple[str, str], replicas: list[_Replica]) -> None:
        if self.bench_frontend:  # it names each replica's identity: the exact check
            super()._wait_connected(key, replicas)
            return
        deadline = time.monotonic() + self.start_timeout_s
        wanted = self._listed_before + len(replicas)
        while self._listed(*key) < wanted:
            dead = [r for r in replicas if not r.process.alive()]
            if dead:
                r = dead[0]
                raise ClipperException(f"replica {key[0]}#{r.slot + 1} exited while starting; see {r.process.log_path}: "
                                       f"{r.process.log_tail(1).strip()}")
            if time.monotonic() > deadline:
                raise ClipperException(f"replicas of {key[0]} did not appear in {self.addresses.admin}'s container "
                                       f"list within {self.start_timeout_s:.0f} s (is {self.addresses.rpc} the "
                                       f"RPC port the replicas can reach?); see the logs in {self.log_dir}")
            time.sleep(0.1)

    def unhealthy(self, name: str, version: str, num_replicas: int) -> str | None:
        """Why the next configuration cannot reuse this deployment (the identity check needs
        clipper-bench's frontend; a real Clipper's deployments are not reused anyway)."""
        if not self.bench_frontend:
            if not self.frontend_alive():
                return f"the frontend {self.frontend_exit()}"
            running = self.get_num_replicas(name, version)
            return None if running == num_replicas else f"{running} of {num_replicas} replicas are running"
        return super().unhealthy(name, version, num_replicas)

    def stop_all(self, graceful=True) -> None:
        """Remove what this run added, never the running Clipper: its application, its replicas, then
        its model version."""
        self._watch_stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(5)
        problems = []
        if self.registered_app is not None:
            problems += self._remove("delete_app", {"name": self.registered_app})
            self.registered_app = None
        self._forget_replicas()
        self.stop_all_model_containers()
        if self.registered_model is not None:
            name, version = self.registered_model
            problems += self._remove("delete_versioned_model", {"model_name": name, "model_version": version})
            self.registered_model = None
        for problem in problems:
            self.logger.warning("%s", problem)

    def _forget_replicas(self) -> None:
        """Tell a clipper-bench frontend to drop this run's replicas now; a real Clipper has no such
        call and lists stopped containers on, as it does any container that went away."""
        if not self.bench_frontend:
            return
        for reps in self.replicas.values():
            for r in reps:
                r.retiring = True
                self._remove("clipper_bench/remove_replica", {"identity": r.identity, "reason": "the attached run ended"})

    def _remove_replica(self, replica: _Replica) -> None:
        """Drain a replica on a clipper-bench frontend (nowhere else can), then stop it."""
        replica.retiring = True
        if self.bench_frontend and replica.process.alive():
            self._remove("clipper_bench/drain_replica", {"identity": replica.identity, "timeout_s": 30})
        reap([replica.process])

    def _remove(self, call: str, body: dict) -> list[str]:
        """Ask the running Clipper to ``call``; what went wrong, as lines (an empty list when nothing did)."""
        try:
            r = self._admin(call, body)
        except requests.RequestException as exc:
            return [f"could not {call} {body} on {self.addresses.admin}: {exc}"]
        return [] if r.status_code == 200 else [f"{call} {body} on {self.addresses.admin}: HTTP {r.status_code} {r.text[:200]}"]
