"""Energy arithmetic: from a samples document to a record's ``power`` block.

* Energy of a channel with a counter (RAPL, NVML's total energy) is the counter's difference over
  the window; with only power samples it is their trapezoidal integral. Where both exist, both are
  recorded with their relative difference.
* Average watts = joules / window; peak watts = the largest sampled (or per-interval) power.
* Energy per completed query, total and above idle (idle watts x window subtracted).
* A source that could not be read is reported with its reason and contributes nothing: its numbers
  are null, never zero, and the totals say which sources they cover.
* A source that failed partway through the window (a GPU lost, a driver reset) is recorded with its
  reason; its channels' joules are null with ``joules_problem`` saying why, and so are the totals
  (a total that left out a channel would look complete and be short), and the block's ``status`` is
  ``incomplete: <reason>`` instead of ``ok``.
* Which channels add up is what each source declared (the samples' ``channels``: its scope), not
  their names: GPU and RAPL channels are parts of the machine and are summed into ``joules``; a
  BMC's or a wall meter's cover the whole machine, parts included, and are reported as ``node_*``
  figures beside them (node_energy.py), never added.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np

from .node_energy import channel_meta, cross_check, node_figures, node_idle_watts
from .source import SCOPE_COMPONENT


def _components(doc: dict[str, Any]) -> dict[str, str]:
    """The channels that are parts of the machine (summed into ``joules``), each with its source."""
    return {k: m["source"] for k, m in channel_meta(doc).items() if m["scope"] == SCOPE_COMPONENT}


def _energy_problems(channels: dict[str, dict[str, Any]], status: dict[str, str],
                     components: dict[str, str]) -> dict[str, str]:
    """Why each energy channel that was sampled has no joules (its source failed partway, or too few
    samples); its joules are nulled (partial energy is not a result) and the reason recorded."""
    problems = {}
    for name, c in channels.items():
        if name not in components:
            continue
        source_status = status.get(components[name])
        if source_status not in (None, "ok"):
            problems[name] = f"{name}: {source_status}"
        elif c["joules"] is None:
            problems[name] = (f"{name}: {c['samples']} sample(s) in the window; energy needs two" if c["samples"] < 2
                              else f"{name}: a reading is missing in the window")
        if name in problems:
            c.update(joules=None, avg_w=None, joules_problem=problems[name])
    return problems


def _clean(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def channel_energy(series: dict[str, list]) -> dict[str, Any]:
    """Joules, average and peak watts of one channel's series."""
    t = np.asarray(series["t"], dtype=float)
    energy = _clean(series["energy_j"])
    power = _clean(series["power_w"])
    out: dict[str, Any] = {"samples": int(t.size)}
    duration = float(t[-1] - t[0]) if t.size >= 2 else 0.0
    out["duration_s"] = duration
    counter = integrated = None
    if t.size >= 2 and not np.isnan(energy).any():
        counter = float(energy[-1] - energy[0])
        steps = np.diff(energy) / np.maximum(np.diff(t), 1e-9)
        out["peak_w"] = float(steps.max())
    if t.size >= 2 and not np.isnan(power).any():
        integrated = float(np.trapezoid(power, t)) if hasattr(np, "trapezoid") else float(np.trapz(power, t))
        out["peak_w"] = float(power.max())
    out["joules_counter"] = counter
    out["joules_integrated"] = integrated
    out["counter_vs_integrated_rel_diff"] = (
        (integrated - counter) / counter if counter and integrated is not None else None
    )
    joules = counter if counter is not None else integrated
    out["joules"] = joules
    out["avg_w"] = joules / duration if joules is not None and duration > 0 else None
    out.setdefault("peak_w", None)
    for key, values in series.items():
        if key not in ("t", "energy_j", "power_w", "stamp"):
            arr = _clean(values)
            if arr.size and not np.isnan(arr).all():
                out[f"{key}_avg"] = float(np.nanmean(arr))
                out[f"{key}_max"] = float(np.nanmax(arr))
    return out


class PowerSummary(TypedDict, total=False):
    """The ``power`` block of a record (``status`` and the joules keys are always there)."""

    status: str  # "ok", or why nothing was sampled
    interval_ms: float
    sources: dict[str, str]  # source -> "ok" | "unavailable: <reason>"
    channels: dict[str, dict[str, Any]]  # per channel: joules, avg_w, duration_s, ...
    energy_channels: list[str]  # the channels summed into joules
    joules_problem: str  # why joules is null although energy channels were sampled
    measured_channels: list[str]  # with joules_problem: the channels that did measure their energy
    joules: float | None
    avg_w: float | None
    joules_per_query: float | None
    idle_w: dict[str, float] | None
    joules_per_query_above_idle: float | None
    # with --power_meter (node_energy.py): the whole machine, GPUs and CPUs included: never add to joules
    node_source: str | None  # the meter the node_* figures come from
    node_joules: float | None
    node_power_mean_w: float | None
    node_idle_w: float | None
    node_readings: int | None  # distinct readings the meter gave in the window
    node_update_interval_s: float | None
    node_energy_per_query_j: float | None  # null below node_energy.MIN_READINGS readings, node_problem says why
    node_energy_per_query_above_idle_j: float | None
    node_problem: str | None
    node: dict[str, Any]  # every meter's figures
    cross_check: dict[str, Any] | None  # the node's watts above idle against the GPUs'


def summarize_power(
    doc: dict[str, Any], num_completed: int | None, idle_w: dict[str, float] | None = None
) -> PowerSummary:
    """The ``power`` block of a record: the parts' energy (GPUs, RAPL) summed, and where a
    whole-machine meter ran, its ``node_*`` figures and the cross-check beside them."""
    if "error" in doc:
        return {"status": doc["error"], "sources": {}, "channels": {}, "joules": None,
                "joules_per_query": None, "joules_per_query_above_idle": None}
    components = _components(doc)
    node_channels = set(channel_meta(doc)) - set(components)
    channels = {name: channel_energy(s) for name, s in doc["series"].items() if name not in node_channels}
    problems = _energy_problems(channels, doc["status"], components)
    energy = {k: v for k, v in channels.items() if k in components and v["joules"] is not None}
    node = node_figures(doc, num_completed, idle_w)
    if problems:  # a total without a channel that was sampled would look whole and be short
        out = summarize_power({**doc, "series": {}}, num_completed, idle_w)
        out.update(status="incomplete: " + "; ".join(problems.values()), channels=channels,
                   joules_problem="; ".join(problems.values()), measured_channels=sorted(energy))
        out.update(node)  # type: ignore[typeddict-item]
        return out
    joules = sum(v["joules"] for v in energy.values()) if energy else None
    per_query = joules / num_completed if joules is not None and num_completed else None
    above = None
    if joules is not None and idle_w and all(k in idle_w for k in energy):
        above_j = sum(v["joules"] - idle_w[k] * v["duration_s"] for k, v in energy.items())
        above = above_j / num_completed if num_completed else None
    out: PowerSummary = {
        "status": "ok",
        "interval_ms": doc["config"]["interval_s"] * 1000,
        "sources": doc["status"],
        "channels": channels,
        "energy_channels": sorted(energy),
        "joules": joules,
        "avg_w": sum(v["avg_w"] for v in energy.values() if v["avg_w"] is not None) if energy else None,
        "joules_per_query": per_query,
        "idle_w": {k: idle_w[k] for k in energy if idle_w and k in idle_w} or None,
        "joules_per_query_above_idle": above,
    }
    if node:
        out.update(node)  # type: ignore[typeddict-item]
        out["cross_check"] = cross_check(channels, channel_meta(doc), node, idle_w)
    return out


def idle_watts(doc: dict[str, Any]) -> dict[str, float]:
    """Average watts of every energy channel in an idle measurement (whole-machine ones too)."""
    if "error" in doc:
        return {}
    out = {}
    for name in _components(doc):
        if name in doc["series"]:
            c = channel_energy(doc["series"][name])
            if c["avg_w"] is not None:
                out[name] = c["avg_w"]
    out.update(node_idle_watts(doc))
    return out


def trim(doc: dict[str, Any], end_wall_s: float) -> dict[str, Any]:
    """The samples document cut at ``end_wall_s`` (a measurement that stopped early when stable)."""
    if "error" in doc:
        return doc
    series = {}
    for name, s in doc["series"].items():
        keep = [i for i, t in enumerate(s["t"]) if t <= end_wall_s]
        series[name] = {k: [v[i] for i in keep] for k, v in s.items()}
    config = {**doc["config"], "end_wall": min(doc["config"]["end_wall"], end_wall_s)}  # node energy's window
    return {**doc, "config": config, "series": series}


def node_text(power: dict[str, Any]) -> str:
    """The whole-machine part of a configuration's line: watts and energy per query (they include
    the GPU's and CPU's, said before them), or why there is no per-query figure; '' without a meter."""
    if not any(k in power for k in ("node_source", "node_problem", "node_power_mean_w")):
        return ""
    text = ""
    if power.get("node_power_mean_w") is not None:
        text += f", whole node {power['node_power_mean_w']:.0f} W"
        if power.get("node_energy_per_query_j") is not None:
            text += f", {power['node_energy_per_query_j'] * 1000:.2f} mJ/query"
        text += f" ({power.get('node_readings')} readings, {power.get('node_source')})"
    if power.get("node_energy_per_query_j") is None and power.get("node_problem"):
        text += f", node energy per query NOT a result ({power['node_problem']})"
    return text
