"""Per-model profiles from experiments already measured: service time per batch, energy per query.

A profile point is one ``ok`` configuration of a ``run`` sweep, measured closed loop (the replicas
kept busy). Its replicas served ``throughput_qps`` in batches of the mean size the frontend formed
(``model:<m>:1:batch_size``), so one batch took ``num_replicas x mean batch / throughput`` on one
replica: the service time the estimator needs, whatever queueing the closed loop added to latency.
Points are matched to a stage by model, model options (sleep time, framework, precision), device,
cores per replica and GPU power limit. Replicas slow each other where they share a resource (a GPU;
for memory-bound models such as KPCA-SVM, the memory system), so every point keeps the replica count
it was measured with and the service time is read at the plan's replica count:

* on CPU cores, measured at that count when it was; interpolated linearly between the two nearest
  measured counts; outside the measured counts, assumed equal to the nearest one's, and the plan says
  so (``replica_note``). A model profiled at one replica count only is thus taken as having
  independent replicas, the assumption that under-predicted KPCA-SVM on the H200 (docs/planner.md);
* on a GPU, a profile keeps the count it was measured with, and the planner gives a GPU stage only
  counts it measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...containers.models import get_model_spec
from ...results.clipper_metrics import metric_entry
from ...results.frame import experiment_dirs
from ...results.store import EXPERIMENT_FILE, read_run_lines, record_path

SHARED_OPTION_SETTINGS = ("framework", "precision")  # model options a profile must match, with the model's own


def matched_options(spec: Any) -> tuple[str, ...]:
    """The settings a profile of ``spec``'s model must match: its own options (``ModelSpec.options``,
    e.g. the sleep model's sleep_ms) and the shared ones."""
    return (*spec.option_names, *SHARED_OPTION_SETTINGS)


class ProfileError(ValueError):
    """Profiles that cannot answer what the planner asks; the message names the fix."""


@dataclass(frozen=True)
class ProfilePoint:
    """One measured configuration: a batch of ``batch`` (mean) took ``service_s`` on one replica."""

    batch_size: int  # the configured maximum
    mean_batch: float  # what the frontend formed
    service_s: float
    joules_per_query: float | None
    config_id: str
    replicas: int = 1  # the replicas measured together (their service times include what they cost each other)
    service_cv: float | None = None  # spread of one batch's service time (std / mean), from the batch-latency histogram


@dataclass
class Profile:
    """What was measured of one model with one set of options on one kind of device and core count."""

    model: str
    options: dict[str, Any]
    device: str  # cpu or gpu
    cpus_per_replica: int
    replicas: int | None = None  # on a GPU: the replicas that shared it when measured (they slow each other)
    points: list[ProfilePoint] = field(default_factory=list)
    gpu_power_limit_w: float | None = None  # the limit set while measured (None: the GPU's default)

    @property
    def batch_sizes(self) -> list[int]:
        """The configured batch sizes measured."""
        return sorted({p.batch_size for p in self.points})

    @property
    def measured_replicas(self) -> list[int]:
        """The replica counts measured."""
        return sorted({p.replicas for p in self.points})

    def service_s(self, batch: float, replicas: int | None = None) -> tuple[float, bool]:
        """Service time of a batch of ``batch`` queries on one of ``replicas`` replicas (default: the
        fewest measured), and whether the batch was extrapolated beyond the measured mean batches.
        Between measured replica counts the time is interpolated linearly; outside them it is the
        nearest count's (``replica_note`` says so)."""
        counts = self.measured_replicas
        r = counts[0] if replicas is None else replicas
        lower, upper = [c for c in counts if c <= r], [c for c in counts if c >= r]
        if not lower or not upper or lower[-1] == upper[0]:
            return self._service_at(batch, lower[-1] if lower else upper[0])
        (lo, lo_out), (hi, hi_out) = self._service_at(batch, lower[-1]), self._service_at(batch, upper[0])
        f = (r - lower[-1]) / (upper[0] - lower[-1])
        return lo + f * (hi - lo), lo_out or hi_out

    def replica_note(self, replicas: int) -> str | None:
        """``service time at r=3 assumed equal to r=2's`` when ``replicas`` is outside the measured
        counts (None inside them)."""
        counts = self.measured_replicas
        if counts[0] <= replicas <= counts[-1]:
            return None
        nearest = counts[-1] if replicas > counts[-1] else counts[0]
        return f"service time at r={replicas} assumed equal to r={nearest}'s"

    def _service_at(self, batch: float, replicas: int) -> tuple[float, bool]:
        """Service time at a measured replica count, interpolated linearly between measured mean
        batches, and whether it was extrapolated beyond them (the nearest point's time per query
        then scales)."""
        pts = sorted((p for p in self.points if p.replicas == replicas), key=lambda p: p.mean_batch)
        if batch <= pts[0].mean_batch:
            return pts[0].service_s, batch < pts[0].mean_batch - 0.5
        for lo, hi in zip(pts, pts[1:], strict=False):
            if batch <= hi.mean_batch:
                f = (batch - lo.mean_batch) / max(hi.mean_batch - lo.mean_batch, 1e-9)
                return lo.service_s + f * (hi.service_s - lo.service_s), False
        last = pts[-1]
        return last.service_s * batch / last.mean_batch, batch > last.mean_batch + 0.5

    def service_cv(self) -> float:
        """The spread of one batch's service time (std / mean), pooled over the points measured (the
        mean of their estimates: each 5-s closed loop is a noisy estimate of the model's spread on
        this machine); 0 when no point kept its batch-latency histogram."""
        cvs = [p.service_cv for p in self.points if p.service_cv is not None]
        return sum(cvs) / len(cvs) if cvs else 0.0

    def joules_per_query(self, batch_size: int, replicas: int | None = None) -> float | None:
        """Energy per query measured at ``batch_size``, at the measured replica count nearest
        ``replicas`` that has it (None when not measured)."""
        found = [p for p in self.points if p.batch_size == batch_size and p.joules_per_query]
        if not found:
            return None
        if replicas is not None:
            nearest = min({p.replicas for p in found}, key=lambda c: (abs(c - replicas), c))
            found = [p for p in found if p.replicas == nearest]
        return sum(p.joules_per_query for p in found) / len(found)


def load_profiles(paths: list[str]) -> list[Profile]:
    """Every profile in the ``run`` experiments under ``paths`` (pipeline experiments are skipped)."""
    profiles: dict[tuple, Profile] = {}
    for exp in experiment_dirs(paths):
        experiment = json.loads((exp / EXPERIMENT_FILE).read_text())
        if experiment.get("kind") == "pipeline":
            continue
        settings = experiment.get("settings") or {}
        for line in read_run_lines(exp / "runs.ndjson"):
            point = _point(exp, line, settings)
            if point is None:
                continue
            spec = get_model_spec(line["model_name"])
            model = spec.name
            options = {k: settings.get(k) for k in matched_options(spec)}
            device = "gpu" if line.get("gpus") else "cpu"
            shared = line["num_replicas"] if device == "gpu" else None  # a GPU stage takes only measured counts
            limit = line.get("gpu_power_limit_w")
            key = (model, json.dumps(options, sort_keys=True), device, line["cpus_per_replica"], shared, limit)
            profile = profiles.setdefault(key, Profile(model, options, device, line["cpus_per_replica"], shared,
                                                       gpu_power_limit_w=limit))
            profile.points.append(point)
    return list(profiles.values())


def _point(exp: Path, line: dict[str, Any], settings: dict[str, Any]) -> ProfilePoint | None:
    """A line measured ok, closed loop, with the frontend's batch sizes: a point; else None."""
    if line.get("status") != "ok" or (line.get("load") or {}).get("mode") != "closed" or not line.get("throughput_qps"):
        return None
    try:
        record = json.loads(record_path(exp, line["config_id"]).read_text())
    except (OSError, ValueError):
        return None
    entry = metric_entry(record.get("clipper_metrics"), "histograms", f"model:{line['model_name']}:1:batch_size")
    mean_batch = float(entry["mean"]) if entry and int(float(entry.get("size", 0))) else float(line["batch_size"])
    service = line["num_replicas"] * mean_batch / line["throughput_qps"]
    return ProfilePoint(line["batch_size"], mean_batch, service, (line.get("power") or {}).get("joules_per_query"),
                        line["config_id"], line["num_replicas"], _service_cv(record, line["model_name"], service))


def _service_cv(record: dict[str, Any], model: str, service_s: float) -> float | None:
    """The spread (std / mean) of one batch's service time, from the engine's batch-latency histogram
    (``model:<m>:1:prediction_latency``, a batch's send to its answer). In a closed loop each replica
    holds ``batches_in_flight`` batches, so a batch's latency is about ``n = latency / service``
    services back to back: its std is sqrt(n) times one service's (taken as independent), hence
    cv = (std / mean) x sqrt(n). None when the record has no such histogram."""
    entry = metric_entry(record.get("clipper_metrics"), "histograms", f"model:{model}:1:prediction_latency")
    try:
        mean_s, std_s = float(entry["mean"]) / 1e6, float(entry["std_dev"]) / 1e6
    except (TypeError, KeyError, ValueError):
        return None
    if mean_s <= 0 or service_s <= 0:
        return None
    n = max(1.0, round(mean_s / service_s))
    return std_s / mean_s * n ** 0.5


def profile_for(profiles: list[Profile], model: str, options: dict[str, Any], device: str | None = None) -> list[Profile]:
    """The profiles of ``model`` whose options match ``options`` (those it sets), on ``device`` when
    given; ProfileError naming what was measured when none does."""
    spec = get_model_spec(model)
    name = spec.name
    same_model = [p for p in profiles if p.model == name]
    wanted = {k: v for k, v in options.items() if k in matched_options(spec)}
    found = [p for p in same_model if all(p.options.get(k) == v for k, v in wanted.items())
             and (device is None or p.device == device)]
    if not found:
        seen = "; ".join(f"{p.options} on {p.device}" for p in same_model) or "nothing"
        raise ProfileError(f"no measured profile of {name} with {wanted or 'its defaults'}"
                           f"{' on ' + device if device else ''} (the experiments hold {seen}): "
                           f"measure it with `clipper-bench run -m {model} -b 1 4 16 ...` and pass that experiment")
    return found
