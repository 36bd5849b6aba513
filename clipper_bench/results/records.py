"""The typed shape of what an experiment writes per configuration.

:class:`RunLine` is one line of ``runs.ndjson``: the configuration, its headline numbers, status and
reason. Its fields are the file's keys, in order; readers get them back as dicts
(``store.read_run_lines``), and ``load_results`` flattens them into columns. :class:`ConfigRecord`
is the shape of ``configs/<config_id>.json``, which the runner fills as the configuration runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypedDict

from ..power.summary import PowerSummary
from .status import RunStatus


@dataclass(frozen=True)
class RunLine:
    """One configuration's line of runs.ndjson (units in the names: _s, _ms, _qps, _w, _mhz)."""

    config_id: str
    model_name: str
    engine: str
    transport: str
    framework: str
    precision: str
    batch_size: int
    num_replicas: int
    cpus_per_replica: int
    gpus: list[int]
    gpu_power_limit_w: float | None
    gpu_clock_mhz: int | None
    concurrency: int
    duration_s: float
    num_completed: int | None  # successful answers that arrived inside the window (throughput_qps counts them)
    num_errors: int | None
    num_defaults: int | None  # answered with the SLO default
    num_unanswered: int | None
    throughput_qps: float | None
    goodput: float | None  # share of the window's queries answered successfully within the SLO
    goodput_qps: float | None  # such answers per second of window
    max_rate_qps: float | None  # --max_rate_under_p99_ms: the highest rate found (rate_search in the record)
    repeat_stats: dict[str, Any] | None  # --repeats: mean, ci95_low, ci95_high, n of throughput, p50, p99
    latency_ms: dict[str, float] | None  # p50, p90, p99, p999, mean, max of successful answers
    serving_efficiency: float | None  # served / the raw in-process speed of its resource sets, with --baseline
    serving_efficiency_problem: str | None  # why the ratio is not a result (above 1.05: the baseline fell short)
    baseline_units: int  # distinct GPUs + distinct core sets: how many raw baselines the served speed is compared with
    load: dict[str, Any] | None  # mode, rate_qps, arrival, concurrency, lateness
    stability: dict[str, Any] | None  # --stable: whether it settled, measured_s, max_duration_s
    power: dict[str, Any] | None
    faults: list[str]
    partial: str | None  # interrupted: how much of the window was measured
    status: RunStatus
    reason: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """The line as a dict with the file's keys (the status stays a RunStatus, a str)."""
        return asdict(self)


class ConfigRecord(TypedDict, total=False):
    """``configs/<config_id>.json``: the original driver's keys first, then ours (units in names)."""

    # the original image_driver_1's keys
    config_id: str
    node_configs: list[dict[str, Any]]  # cpus, gpus, batch size, SLO (microseconds) per node
    clipper_metrics: dict[str, Any] | None  # the frontend's /metrics, Clipper's format
    client_metrics: dict[str, Any] | list[dict[str, Any]]  # in seconds, as the original: see original_client_metrics
    # ours
    summary: dict[str, Any] | None  # merged from every client's raw data: counts, throughput_qps, latency_ms
    settings: dict[str, Any]  # what this configuration ran with (engine, transport, concurrency, ...)
    status: RunStatus
    reason: str | None
    error: str | None
    started_at: float
    ended_at: float
    logs: str
    deployment: dict[str, Any]  # started_for, reused, startup_s, replicas, logs
    faults: list[dict[str, Any]]
    window_wall_ns: list[int]
    power: PowerSummary
    power_samples_file: str | None
    raw_files: list[str]
    partial: str | None
    gpu_limits: dict[str, Any]
    baseline: dict[str, Any] | None
    baseline_units: int  # raw baselines the served speed is compared with: distinct GPUs + core sets
    serving_efficiency: float | None  # None when serving_efficiency_problem says why it is not a result
    serving_efficiency_problem: str | None
    serving_efficiency_measured: float  # the ratio a problem was found in
    baselines: list[dict[str, Any] | None]  # one raw baseline per resource set (baseline: the first)
    original_results_file: str | None
    repeats: list[dict[str, Any]]  # --repeats: every repeat's summary, the first being ``summary``
    repeat_stats: dict[str, Any]  # their mean and 95% interval of throughput_qps, p50_ms, p99_ms
    rate_search: dict[str, Any]  # --max_rate_under_p99_ms: bounds, steps, tolerance, every probe, the rate found


ClientMetrics = dict[str, Any] | list[dict[str, Any]]


def original_client_metrics(per_client: ClientMetrics) -> ClientMetrics:
    """``client_metrics`` shaped as the original driver's files hold it: with one client, that
    client's dict (``thrus``, ``p99_lats``, ``mean_lats``, ...), as every results file of the original
    repository and its analysis (``data["client_metrics"]["thrus"]``) have it; with several (``-n``),
    the list of one dict per client, as the later driver wrote it; with none, the empty list. A dict
    is returned as it is, so shaping twice changes nothing."""
    if isinstance(per_client, dict):
        return per_client
    per_client = list(per_client)
    return per_client[0] if len(per_client) == 1 else per_client

