"""The settings of one experiment: one frozen object, validated before anything runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunSettings:
    """Everything ``clipper-bench run`` (and ``driver.py``) was asked to do."""

    model_name: str
    duration_s: float = 120.0
    batch_sizes: tuple[int, ...] = (2,)
    num_replicas: tuple[int, ...] = (1,)
    model_cpus: tuple[int, ...] | None = None
    cpus_per_replica_nums: tuple[int, ...] = (1,)
    model_gpus: tuple[int, ...] = ()
    num_clients: int = 1
    engine: str = "local"
    results_dir: Path = Path("results")
    warmup_s: float = 5.0
    warmup_reused_s: float = 1.0
    concurrency: int | None = None
    transport: str = "binary"  # the command line's "auto" is resolved by resolve_defaults
    slo_ms: float = 500.0
    sleep_ms: float = 10.0
    host: str = "127.0.0.1"
    oversubscribe: bool = False
    drain_timeout_s: float = 10.0
    pool_size: int = 1000
    seed: int = 0
    framework: str = "torch"
    precision: str = "fp32"
    overlap_batches: str = "off"
    cuda_graphs: str = "off"
    weights: str | None = None
    models_dir: Path = Path("models")
    baseline: bool = False
    baseline_s: float = 10.0
    batches_in_flight: int = 2
    power_interval_ms: float = 100.0
    powercap_root: Path = Path("/sys/class/powercap")
    idle_s: float = 5.0
    gpu_power_limits_w: tuple[float, ...] = ()
    gpu_clocks_mhz: tuple[int, ...] = ()
    rate_qps: float | None = None
    arrival: str = "constant"
    stable: bool = False
    resume: bool = False
    fresh_deployments: bool = False
    docker_host_network: bool = False
    ray_address: str | None = None
    ray_ingress: str = "http"
    query_frontend_image: str = "clipper/query_frontend:0.4.1"
    mgmt_frontend_image: str = "clipper/management_frontend:0.4.1"
    replica_start_timeout_s: float = 120.0
    replica_timeout_s: float = 30.0
    replica_hang_min_s: float = 3.0
    stable_window_s: float = 5.0
    stable_tolerance: float = 0.1

    def model_options(self) -> dict[str, Any]:
        """The ModelOptions fields every replica and baseline of this experiment gets."""
        return {
            "sleep_ms": self.sleep_ms,
            "framework": self.framework,
            "precision": self.precision,
            "weights": str(Path(self.weights).resolve()) if self.weights else None,
            "models_dir": str(Path(self.models_dir).resolve()),
            "seed": self.seed,
            "overlap_batches": self.overlap_batches,
            "cuda_graphs": self.cuda_graphs,
        }

    def container_args(self) -> list[str]:
        """The same options as ``clipper-bench container`` flags."""
        args = []
        for key, value in self.model_options().items():
            if value is not None:
                args += [f"--{key}", str(value)]
        return args

    def to_json(self) -> dict[str, Any]:
        """The settings as the experiment records them: every field but ``resume``, paths as strings."""
        data = asdict(self)
        del data["resume"]  # how a run was started, not what it measures
        data["results_dir"] = str(self.results_dir)
        data["models_dir"] = str(self.models_dir)
        data["powercap_root"] = str(self.powercap_root)
        return data

    @property
    def drain_max_s(self) -> float:
        """The longest a client waits for answers after the window (see load.client.Drain): every
        query is answered by the SLO on a Clipper frontend, so three SLOs past a minute is plenty."""
        return max(60.0, self.drain_timeout_s) + 3 * self.slo_ms / 1000

    def concurrency_for(self, num_replicas: int, batch_size: int) -> int:
        """Outstanding queries in all: the user's, or enough that every replica's batches in flight
        are full and one more full batch waits for each (2 x replicas x batch size by default)."""
        if self.concurrency:
            return self.concurrency
        return (self.batches_in_flight + 1) * num_replicas * batch_size


SHM_MIN_INPUT_BYTES = 64 * 1024  # from here on, inputs travel through shared memory by default


def resolve_defaults(settings: RunSettings) -> RunSettings:
    """Settings with every ``auto`` resolved to what was measured fastest (docs/benchmarks.md, issue 14):

    * transport: the engine's choice (``Engine.resolve_transport``): on the local engine shared
      memory for inputs of 64 KiB or more (the images: their bytes then cross no socket) and the
      binary path for small inputs; on ``--engine docker`` with Clipper's own frontend, which has only
      the REST API, rest; on Ray what ``--ray_ingress`` says;
    * overlap_batches and cuda_graphs: on for torch image models on a GPU, off otherwise.

    Records carry the resolved values."""
    from ..containers.models.base import UnknownModelError, get_model_spec
    from .engines import ENGINES, engine_class

    changes: dict[str, Any] = {}
    try:
        large = get_model_spec(settings.model_name).input_bytes >= SHM_MIN_INPUT_BYTES
    except UnknownModelError:
        large = False  # the plan reports the unknown model
    if settings.engine in ENGINES:  # else argparse has refused it
        changes["transport"] = engine_class(settings.engine).resolve_transport(settings, large)
    torch_gpu = (settings.framework == "torch" and bool(settings.model_gpus)
                 and settings.model_name in ("vgg", "inception"))
    for flag in ("overlap_batches", "cuda_graphs"):
        if getattr(settings, flag) == "auto":
            changes[flag] = "on" if torch_gpu else "off"
    return replace(settings, **changes)
