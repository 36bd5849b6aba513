"""The settings of one experiment: one frozen object, validated before anything runs.

Each field is declared once, here: its default, its command-line flag and help, the group of
``--help`` it belongs to (sweep, load, engine, power, models, output), a numeric flag's range with
why its limits are where they are (``limits``: appended to its help) and its own check. ``run``'s
command line is generated from these declarations (``sweep/cli_args.py``), and the plan runs the
checks before anything starts. The model flags (framework, precision, ...) are declared beside the
models (``containers/models/flags.py``), which the container command shares; a model's own options
(the sleep model's ``--sleep_ms``) and each engine's are declared by the model and the engine and
join these fields (``RunSettings``, below).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..common.cli_types import (
    ANY_DURATION,
    DAY_MS,
    DAY_S,
    Range,
    finite_float,
    number_text,
    whole_number,
)
from ..common.options import flag_of, setting
from ..containers.models.base import model_option_classes, model_option_names
from ..engines import DEFAULT_ENGINE, engine_class, engine_names, engine_options
from ..power.sampler import MAX_INTERVAL_S, MIN_INTERVAL_S
from ..protocol.transports import TRANSPORT_CHOICES

# RunSettings fields whose flags are declared beside the models (containers/models/flags.py)
MODEL_FIELDS = ("framework", "precision", "weights", "models_dir", "seed", "overlap_batches", "cuda_graphs")

GROUPS = {  # --help's groups, in order
    "sweep": "sweep (the original driver's flags first)",
    "load": "load",
    "engine": "engine",
    "power": "power and GPU settings",
    "models": "models",
    "output": "output",
}


def declared_fields() -> list:
    """The fields of RunSettings that have a flag, in declaration order."""
    return [f for f in fields(RunSettings) if "names" in f.metadata]


# -- ranges: every numeric flag's, with why its limits are where they are (shown in --help), and the
# few checks a range cannot say. A check returns what is wrong (the flag's name is put before it) or None.

MAX_BATCH_SIZE = 4096  # the most inputs one request may carry, and far beyond any model's batch
MAX_CLIENTS = 256
MAX_CLIENT_RATE_QPS = 100_000  # one client: one Python thread, one ZeroMQ message pair (~10 us) per query
MAX_CLIENT_QUERIES = 50_000_000  # per client and configuration: ~4 GB of send schedule and raw rows
MAX_CONCURRENCY = 16 * MAX_BATCH_SIZE
CLIENT_BUSY_SHARE = 0.9  # -n auto: a closed-loop client busier than this may be what limits the rate


def _seconds(lo: float, why: str) -> Range:
    return Range(lo, DAY_S, "seconds", why)


WINDOW = _seconds(0.1, "under 0.1 s a window holds too few answers to measure; up to a day, as every duration")
SLO = Range(0.001, DAY_MS, "ms", "the frontend keeps SLOs in whole microseconds, up to a day")
SAMPLING_WHY = ("NVML's power reading changes every 1/6 to 1 s and RAPL's counter about every ms: faster "
                "sampling repeats readings and keeps a core busy; a 32-bit RAPL counter (4,295 J) must be "
                "read before it wraps, 10.7 s at 400 W")
RATE_WHY = (f"one query per 1,000 s to 25 x the about 40,000 q/s one frontend serves; each client sends at "
            f"most {MAX_CLIENT_RATE_QPS:,} q/s and {MAX_CLIENT_QUERIES:,} queries a configuration, so a high "
            "rate needs more -n")
# the model flags declared beside the models (containers/models/flags.py), ranged here with the rest
MODEL_FIELD_RANGES = {"seed": ("--seed", Range(0, 2**32 - 1, "", "numpy's generators refuse negative seeds, and "
                                                  "Keras seeds numpy's legacy one, which takes 32 bits"))}


def _non_empty(values: tuple[int, ...]) -> str | None:
    return None if values else "needs at least one value"


def _model_help() -> str:
    from ..containers.models.base import model_aliases, model_names

    aliases = "; ".join(f"{a} is {m}" for a, m in model_aliases().items())
    return f"model to benchmark: {', '.join(model_names())}" + (f" ({aliases}, as the original driver named it)" if aliases else "")


def _arrival(text: str) -> str:
    """``--arrival``'s type: a known process, or ``trace:FILE`` with a readable trace."""
    import argparse

    from ..load.arrivals import ARRIVALS, GAMMA_PREFIX, TRACE_PREFIX, parse_gamma, read_trace

    if text.startswith(GAMMA_PREFIX):
        try:
            parse_gamma(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    if text.startswith(TRACE_PREFIX):
        try:
            read_trace(text[len(TRACE_PREFIX):])
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    if text not in ARRIVALS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(ARRIVALS)}, gamma:CV or trace:FILE")
    return text


def _power_meter(text: str) -> str:
    """``--power_meter``'s type: one of the forms power/meters.py registers."""
    import argparse

    from ..power.meters import parse_meter

    try:
        parse_meter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _power_meter_help() -> str:
    from ..power.meters import FORMS
    from ..power.node_energy import MIN_READINGS

    return (f"read the whole machine's power too (several allowed): {FORMS}. Recorded as node_* figures "
            f"beside the GPU's and RAPL's, never added to them (a node meter includes the GPUs); a per-query "
            f"figure needs {MIN_READINGS} distinct readings in the window. See docs/power-meters.md")


def _readable_file(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return f"{path}: cannot read it ({exc.strerror}): pass a readable file of user=NAME and password=SECRET lines"


def check_power_meters(settings: RunSettings) -> str | None:
    """A BMC asked for over the network needs credentials from a file or the environment: say so
    before anything starts, not after the sweep."""
    from ..power.credentials import env_names
    from ..power.meters import parse_meter

    if settings.power_meter_credentials is not None:
        return None
    for value in settings.power_meters:
        kind, target = parse_meter(value)
        if kind == "redfish" or (kind == "ipmi" and target):
            user, password = env_names(kind)
            if not (os.environ.get(user) and os.environ.get(password)):
                return (f"--power_meter {value} needs the BMC's credentials: pass --power_meter_credentials FILE "
                        f"(user=NAME and password=SECRET lines) or set {user} and {password} (never on the command line)")
    return None


def check_declared(settings: RunSettings) -> str | None:
    """The first declared check that fails, as ``--flag <what is wrong>``, or None: each flag's range
    and check, the model flags' ranges, then the limits of one load client (:func:`check_load_size`)."""
    for f in declared_fields():
        check = f.metadata["check"]
        problem = check(getattr(settings, f.name)) if check else None
        if problem:
            return f"{flag_of(f)} {problem}"
    for name, (flag, limits) in MODEL_FIELD_RANGES.items():
        problem = limits.problem(getattr(settings, name))
        if problem:
            return f"{flag} {problem}"
    return check_power_meters(settings) or check_load_size(settings)


def clients_needed(rate_qps: float, seconds: float) -> int:
    """Open-loop clients for ``rate_qps`` over ``seconds`` of load: each sends at most
    ``MAX_CLIENT_RATE_QPS`` and holds the schedule and raw rows of ``MAX_CLIENT_QUERIES``."""
    return max(1, math.ceil(rate_qps / MAX_CLIENT_RATE_QPS), math.ceil(rate_qps * seconds / MAX_CLIENT_QUERIES))


def check_load_size(settings: RunSettings) -> str | None:
    """What one open-loop client can do: send ``MAX_CLIENT_RATE_QPS`` and hold the send schedule and
    raw rows of ``MAX_CLIENT_QUERIES`` per configuration (warm-up and window). Beyond either, more
    clients (``-n``) share the rate; the line says how many. With ``-n`` auto (0) the driver starts
    as many as it needs, up to ``MAX_CLIENTS``."""
    if not settings.rate_qps:
        return None
    rate, seconds = max(settings.rate_qps), settings.warmup_s + settings.duration_s
    need = clients_needed(rate, seconds)
    n = settings.num_clients or min(need, MAX_CLIENTS)
    if n >= need:
        return None
    if rate / n > MAX_CLIENT_RATE_QPS:
        what = (f"is {number_text(rate / n)} q/s for each of -n {n} clients; one client sends at most "
                f"{MAX_CLIENT_RATE_QPS} q/s")
    else:
        what = (f"for --warmup {number_text(settings.warmup_s)} s + -d {number_text(settings.duration_s)} s is "
                f"{rate * seconds / n:.3g} queries for each of -n {n} clients; one client holds at most "
                f"{MAX_CLIENT_QUERIES} (about 4 GB of schedule and raw rows)")
    fix = f"pass -n {need} or more" if need <= MAX_CLIENTS else "lower --rate, --warmup or -d"
    return f"--rate {number_text(rate)} q/s {what}: {fix}"


@dataclass(frozen=True)
class CoreSettings:
    """What every run is asked, whatever its engine: the sweep, the load, the models, power and output.
    :data:`RunSettings` adds each engine's own options to these."""

    model_name: str = setting(None, 'sweep', '-m', '--model_name', metavar="MODEL", help=_model_help, required=True)
    duration_s: float = setting(120.0, 'sweep', '-d', '--duration', '--duration_seconds', type=finite_float, help="seconds each configuration is measured (default 120)",
                        limits=WINDOW)
    batch_sizes: tuple[int, ...] = setting((2,), 'sweep', '-b', '--batch_sizes', type=whole_number, nargs="+", help="batch sizes to sweep (default 2)",
                        limits=Range(1, MAX_BATCH_SIZE, "", "the most inputs one request may carry"), check=_non_empty)
    num_replicas: tuple[int, ...] = setting((1,), 'sweep', '-r', '--num_replicas', type=whole_number, nargs="+", help="replica counts to sweep (default 1)",
                        limits=Range(1, 256, "", "each replica is a process with its own model; 256 fill the largest hosts"), check=_non_empty)
    model_cpus: tuple[int, ...] | None = setting(None, 'sweep', '-c', '--model_cpus', type=whole_number, nargs="+", help="cores the replicas may use (default: all but the frontend's and load generator's)",
                        limits=Range(0, 8191, "", "Linux numbers at most 8,192 cores; the ones usable here are checked next"))
    cpus_per_replica_nums: tuple[int, ...] = setting((1,), 'sweep', '-p', '--cpus_per_replica_nums', type=whole_number, nargs="+", help="cores per replica to sweep (default 1)",
                        limits=Range(1, 8192, "", "Linux numbers at most 8,192 cores"), check=_non_empty)
    model_gpus: tuple[int, ...] = setting((), 'sweep', '-g', '--model_gpus', type=whole_number, nargs="+", help="GPU indices; replica i gets the i-th (default: CPU only)",
                        limits=Range(0, 255, "", "GPU indices; the GPUs present are checked next"))
    num_clients: int = setting(0, 'sweep', '-n', '--num_clients', type=whole_number, help="load-generating client processes; default 0: auto, for an open-loop --rate one per "
                        f"{MAX_CLIENT_RATE_QPS:,} q/s, else one, and two from the configuration where one client was busy "
                        f"over {CLIENT_BUSY_SHARE:g} of a core and had cores of its own (a second client also halves the queries per "
                        "message the frontend reads, which costs it CPU per query)",
                        limits=Range(0, MAX_CLIENTS, "", f"each is a process sending up to {MAX_CLIENT_RATE_QPS:,} q/s; {MAX_CLIENTS} outrun any frontend"))
    engine: str = setting(DEFAULT_ENGINE, 'engine', '--engine', choices=engine_names, help="serving engine: local processes (default), Docker containers through clipper_admin's "
                        "DockerContainerManager, each replica pinned (see --query_frontend_image), ray (Ray Serve), "
                        "or clipper: a Clipper already running (see --clipper_address)")
    results_dir: Path = setting(Path("results"), 'output', '--results_dir', type=Path, help="where experiments go (default results/)")
    warmup_s: float = setting(5.0, 'load', '--warmup', type=finite_float, help="seconds of load before measuring (default 5)",
                        limits=_seconds(0, ANY_DURATION))
    warmup_reused_s: float = setting(1.0, 'sweep', '--warmup_reused', type=finite_float, help="warm-up of a configuration that reuses the running replicas, which have already "
                        "run every batch size of the sweep (default 1 s; at most --warmup)",
                        limits=_seconds(0, ANY_DURATION))
    concurrency: tuple[int, ...] = setting((), 'load', '--concurrency', type=whole_number, nargs="+", help="closed loop: outstanding queries in all; several values are swept, innermost (default (batches in flight + 1) x replicas x batch size)",
                        limits=Range(1, MAX_CONCURRENCY, "", f"16 x the largest batch ({MAX_BATCH_SIZE:,}); more outstanding queries only queue"))
    transport: str = setting("auto", 'load', '--transport', choices=TRANSPORT_CHOICES, help="query path: binary (raw tensors over ZeroMQ), shm (inputs in shared memory, "
                        "descriptors over ZeroMQ; --engine local) or rest (Clipper's JSON API); default auto: each "
                        "engine's own choice: shm for inputs of 64 KiB or more (the images) on --engine local, "
                        "rest for Clipper's own frontend and --engine clipper, --ray_ingress's on ray, binary otherwise")
    slo_ms: float = setting(500.0, 'load', '--slo_ms', type=finite_float, help="application latency SLO in ms (default 500)",
                        limits=SLO)
    host: str = setting("127.0.0.1", 'engine', '--host', help="address the frontends bind to (default 127.0.0.1)")
    oversubscribe: bool = setting(False, 'sweep', '--oversubscribe', action="store_true", help="allow more replica cores than there are free cores (replicas then share cores)")
    drain_timeout_s: float = setting(10.0, 'load', '--drain_timeout_s', type=finite_float, help="after the window, wait for answers still out until none has come for this long or "
                        "for twice the longest latency seen, whichever is longer (default 10)",
                        limits=_seconds(0, ANY_DURATION))
    pool_size: int = 1000
    seed: int = 0
    framework: str = "torch"
    precision: str = "fp32"
    overlap_batches: str = "off"
    cuda_graphs: str = "off"
    weights: str | None = None
    models_dir: Path = Path("models")
    baseline: bool = setting(False, 'models', '--baseline', action="store_true", help="first measure the model's raw in-process speed per batch size (pinned like replica 1); "
                        "records then carry serving_efficiency")
    baseline_s: float = setting(10.0, 'models', '--baseline_s', type=finite_float, help="seconds of each baseline measurement (default 10)",
                        limits=_seconds(0.1, "as -d, a shorter window times too few batches"))
    calibrate: bool = setting(False, 'sweep', '--calibrate', action="store_true", help="before the sweep, run the built-in sleep model (20 ms per batch, batch 1, 1 replica: a known capacity of 50 q/s) "
                        "closed loop for a few seconds on the same engine; experiment.json's calibration holds the measured against the known capacity")
    batches_in_flight: int = setting(0, 'engine', '--batches_in_flight', type=whole_number, metavar="N", help="batches each replica is sent before it answers; default 0: auto, 3 for torch "
                        "image models on a GPU (one replica reached 0.91-0.96 of the forward pass's CUDA-graph speed on an H200 "
                        "with 3, 0.76-0.84 with 2), else 2 so the next batch crosses the socket while the model computes; "
                        "1 is Clipper's own behaviour",
                        limits=Range(0, 4, "", "from 4 on a replica's queue only grows; 0 is auto"))
    power_interval_ms: float = setting(100.0, 'power', '--power_interval_ms', type=finite_float, help="how often GPU power, RAPL energy and CPU use are sampled (default 100)",
                        limits=Range(MIN_INTERVAL_S * 1000, MAX_INTERVAL_S * 1000, "ms", SAMPLING_WHY))
    powercap_root: Path = setting(Path("/sys/class/powercap"), 'power', '--powercap_root', type=Path, help="root of the powercap sysfs tree for RAPL (default /sys/class/powercap)")
    idle_s: float = setting(5.0, 'power', '--idle_s', type=finite_float, help="seconds of idle power measured before the first configuration (0 to skip; default 5)",
                        limits=_seconds(0, "0 skips it; " + ANY_DURATION))
    power_meters: tuple[str, ...] = setting((), 'power', '--power_meter', type=_power_meter, nargs="+", action="extend", metavar="SOURCE", help=_power_meter_help)
    power_meter_credentials: Path | None = setting(None, 'power', '--power_meter_credentials', type=Path, metavar="FILE", check=_readable_file, help="--power_meter redfish or ipmi:HOST: a file of user=NAME and password=SECRET lines (else "
                        "CLIPPER_BENCH_REDFISH_USER/_PASSWORD or CLIPPER_BENCH_IPMI_USER/_PASSWORD); only its path is recorded")
    gpu_power_limits_w: tuple[float, ...] = setting((), 'power', '--gpu_power_limits', type=finite_float, nargs="+", metavar="W", help="sweep GPU power limits (watts); set before each configuration, restored after (needs root)",
                        limits=Range(10, 2000, "W", "every GPU's board power lies within (an H200's is 700 W); the GPU's own limits are checked next"))
    gpu_clocks_mhz: tuple[int, ...] = setting((), 'power', '--gpu_clocks', type=whole_number, nargs="+", metavar="MHZ", help="sweep locked GPU SM clocks (MHz); released after each configuration (needs root)",
                        limits=Range(100, 5000, "MHz", "every GPU's SM clocks lie within (an H200's reach 1,980 MHz); the clocks the GPU supports are checked next"))
    rate_qps: tuple[float, ...] = setting((), 'load', '--rate', type=finite_float, nargs="+", metavar="QPS", help="open loop: send at this total rate (split over the clients) instead of keeping --concurrency queries outstanding; latency then counts from each query's scheduled time; several values are swept, innermost",
                        limits=Range(0.001, 1_000_000, "q/s", RATE_WHY))
    repeats: int = setting(1, 'sweep', '--repeats', type=whole_number, metavar="N", help="measure each configuration N times (own windows, one deployment); records hold every repeat and the mean with a 95%% confidence interval of throughput, p50 and p99 (default 1)",
                        limits=Range(1, 100, "", "at 100 the t factor of a 95 percent interval is 1.98, against 1.96 for any number more"))
    max_rate_under_p99_ms: float | None = setting(None, 'load', '--max_rate_under_p99_ms', type=finite_float, metavar="MS", help="after each configuration's own measurement, search (bisection over the open-loop rate, on the same deployment) for the highest rate whose p99 stays within MS with at least 99%% of queries answered within the SLO; the record's rate_search holds the rate found and every probe",
                        limits=SLO)
    arrival: str = setting("constant", 'load', '--arrival', type=_arrival, help="open-loop arrival process: constant, poisson, gamma:CV (gamma inter-arrival times with coefficient of variation CV, e.g. gamma:4 for InferLine's bursty load), or trace:FILE (recorded arrivals, one timestamp in seconds per line, scaled to --rate on average; default constant)")
    stable: bool = setting(False, 'load', '--stable', action="store_true", help="stop measuring once the last three windows agree on throughput and p99 "
                        "(--duration is then the maximum)")
    resume: bool = setting(False, 'sweep', '--resume', action="store_true", help="continue the latest experiment in --results_dir run with the same settings: "
                        "configurations recorded ok are skipped, the rest (degraded, no_answers, failed, "
                        "interrupted, missing) run")
    fresh_deployments: bool = setting(False, 'sweep', '--fresh_deployments', action="store_true", help="restart the frontend and replicas for every configuration, as the original driver "
                        "did (default: keep them while only the batch size changes)")
    replica_start_timeout_s: float = setting(120.0, 'engine', '--replica_start_timeout_s', type=finite_float, help="a replica that has not connected this long after it started fails its "
                        "configuration (default 120)",
                        limits=_seconds(1, "a replica takes over a second to start Python and load its model"))
    replica_timeout_s: float = setting(30.0, 'engine', '--replica_timeout_s', type=finite_float, help="the frontend forgets an idle replica silent this long, a busy one after 10x "
                        "(default 30; dead local replicas are noticed within 0.2 s anyway)",
                        limits=_seconds(10, "idle replicas heartbeat after 5 s of silence: less forgets live ones"))
    replica_hang_min_s: float = setting(3.0, 'engine', '--replica_hang_s', type=finite_float, help="a replica holding a batch is declared hung, recorded as a fault and killed after "
                        "10x its model's slowest time per query x the batch's size, but never sooner than "
                        "this (default 3 s)",
                        limits=_seconds(0.1, "under 0.1 s a batch crossing the socket would look hung"))
    stable_window_s: float = setting(5.0, 'load', '--stable_window_s', type=finite_float, help="window of --stable (default 5 s)",
                        limits=WINDOW)
    stable_tolerance: float = setting(0.1, 'load', '--stable_tolerance', type=finite_float, help="how far (max/min - 1) three windows may differ and still agree (default 0.1)",
                        limits=Range(0, 1, "", "1 lets windows differ by 2x: past it any windows agree", lo_open=True))

    def model_options(self) -> dict[str, Any]:
        """The ModelOptions fields every replica and baseline of this experiment gets."""
        return {
            **{name: getattr(self, name) for name in model_option_names()},
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
        from ..containers.models.flags import own_option_args

        options = self.model_options()
        own = set(model_option_names())
        args = own_option_args(options)
        for key, value in options.items():
            if value is not None and key not in own:
                args += [f"--{key}", str(value)]
        return args

    def to_json(self) -> dict[str, Any]:
        """The settings as the experiment records them: every field but ``resume``, paths as strings."""
        data = asdict(self)
        del data["resume"]  # how a run was started, not what it measures
        data["results_dir"] = str(self.results_dir)
        data["models_dir"] = str(self.models_dir)
        data["powercap_root"] = str(self.powercap_root)
        if self.power_meter_credentials is not None:  # the file's path, never what is in it
            data["power_meter_credentials"] = str(self.power_meter_credentials)
        return data

    @property
    def drain_max_s(self) -> float:
        """The longest a client waits for answers after the window (see load.client.Drain): every
        query is answered by the SLO on a Clipper frontend, so three SLOs past a minute is plenty."""
        return max(60.0, self.drain_timeout_s) + 3 * self.slo_ms / 1000

    def clients_for(self, rate_qps: float | None) -> int:
        """Load client processes for a configuration: ``-n``, or with auto (0) enough for an
        open-loop ``rate_qps`` (see :func:`clients_needed`) and one for a closed loop."""
        if self.num_clients:
            return self.num_clients
        if not rate_qps:
            return 1
        return min(clients_needed(rate_qps, self.warmup_s + self.duration_s), MAX_CLIENTS)

    def concurrency_for(self, num_replicas: int, batch_size: int, concurrency: int | None = None) -> int:
        """Outstanding queries in all: the configuration's ``concurrency``, or enough that every
        replica's batches in flight are full and one more full batch waits for each."""
        if concurrency:
            return concurrency
        return ((self.batches_in_flight or AUTO_BATCHES_IN_FLIGHT) + 1) * num_replicas * batch_size


def _with_plugin_options() -> type:
    """CoreSettings with every model's own options (``ModelSpec.options``) and every engine's
    (engines.engine_options) as fields of one frozen dataclass: the core's fields first
    (``RunSettings("noop")`` names the model), then the models', then the engines'."""
    bases = (*reversed(engine_options()), *reversed(model_option_classes()), CoreSettings)
    cls = type("RunSettings", bases, {"__doc__": "Everything ``clipper-bench run`` (and ``driver.py``) was asked "
                                      "to do: the core's settings, every model's and every engine's own options.",
                                      "__module__": __name__, "__qualname__": "RunSettings"})
    return dataclass(frozen=True)(cls)


RunSettings = _with_plugin_options()


SHM_MIN_INPUT_BYTES = 64 * 1024  # from here on, inputs travel through shared memory by default


AUTO_BATCHES_IN_FLIGHT = 2  # --batches_in_flight's auto value (docs/benchmarks.md, issue 14)
GPU_BATCHES_IN_FLIGHT = 3  # ... for torch image models on a GPU (docs/benchmarks.md, issue 29)


def resolve_defaults(settings: RunSettings) -> RunSettings:
    """Settings with every ``auto`` resolved to what was measured fastest (docs/benchmarks.md, issue 14):

    * transport: the engine's choice (``Engine.resolve_transport``): on the local engine shared
      memory for inputs of 64 KiB or more (the images: their bytes then cross no socket) and the
      binary path for small inputs; on ``--engine docker`` with Clipper's own frontend, which has only
      the REST API, rest; on Ray what ``--ray_ingress`` says;
    * overlap_batches and cuda_graphs: on for torch image models on a GPU, off otherwise;
    * batches_in_flight (0): 3 for torch image models on a GPU, 2 otherwise.

    Records carry the resolved values."""
    from ..containers.models.base import UnknownModelError, get_model_spec

    changes: dict[str, Any] = {}
    try:
        spec = get_model_spec(settings.model_name)
        large, gpu_model = spec.input_bytes >= SHM_MIN_INPUT_BYTES, spec.uses_gpu
    except UnknownModelError:
        large = gpu_model = False  # the plan reports the unknown model
    if settings.engine in engine_names():  # else argparse has refused it
        changes["transport"] = str(engine_class(settings.engine).resolve_transport(settings, large))  # a plain name in records
    torch_gpu = settings.framework == "torch" and bool(settings.model_gpus) and gpu_model
    if settings.batches_in_flight == 0:
        changes["batches_in_flight"] = GPU_BATCHES_IN_FLIGHT if torch_gpu else AUTO_BATCHES_IN_FLIGHT
    for flag in ("overlap_batches", "cuda_graphs"):
        if getattr(settings, flag) == "auto":
            changes[flag] = "on" if torch_gpu else "off"
    return replace(settings, **changes)
