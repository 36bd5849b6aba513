"""Whole-machine energy arithmetic: from a BMC's or a wall meter's readings to the record's node figures.

A node meter's channels contain the GPUs, the CPUs and everything else in the machine, so their
energy is its own figure (``node_energy_per_query_j``), never added to the GPU's or RAPL's.

* Power is integrated over the measurement window itself, ``[start_wall, end_wall]``: the readings
  joined by straight lines (trapezoids), the value at each edge interpolated between the readings on
  either side of it, or held from the nearest one (a meter that ticks every second leaves up to a
  second uncovered at each edge: left out, a 10 s window would lose up to a fifth of its energy).
* A BMC refreshes its reading every 1-10 s, however often it is asked: the readings a window held
  are the distinct ones (a new device timestamp, or a new value where the device has none), and
  the update interval is the median time between them. A per-query figure needs at least
  ``MIN_READINGS`` distinct readings in the window; from fewer it is null, with the reason.
* The channels of one meter (one per power supply's cable) are added; two meters are two views of
  one machine: the first listed that gives a figure is the record's, the others are kept beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .source import SCOPE_COMPONENT, SCOPE_NODE

MIN_READINGS = 5  # distinct readings a window must hold for a per-query figure
MAX_GAP_INTERVALS = 3  # a window with no reading for longer than this many update intervals is not covered
MIN_GAP_S = 2.0  # ... nor for longer than this, whatever the interval (a BMC may take a second to answer)
LEGACY_PREFIXES = (("gpu", "nvml"), ("package-", "rapl"), ("dram-", "rapl"))  # samples from before "channels"


def channel_meta(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each channel's source and scope: as the sampler recorded them, else (older samples files) the
    GPU and RAPL channels by name; channels of neither scope (CPU use) are left out."""
    if "channels" in doc:
        return {k: v for k, v in doc["channels"].items() if v.get("scope") in (SCOPE_COMPONENT, SCOPE_NODE)}
    out = {}
    for name in doc.get("series", {}):
        base, at, host = name.partition("@")
        for prefix, source in LEGACY_PREFIXES:
            if base.startswith(prefix):
                out[name] = {"source": f"{source}{at}{host}", "scope": SCOPE_COMPONENT}
    return out


def _clean(t: list, p: list, stamps: list | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    keep = [i for i, v in enumerate(p) if v is not None]
    order = sorted(keep, key=lambda i: t[i])
    st = np.array([stamps[i] for i in order], dtype=float) if stamps else None
    return np.array([t[i] for i in order], dtype=float), np.array([p[i] for i in order], dtype=float), st


def _new_reading_times(t: np.ndarray, p: np.ndarray, stamps: np.ndarray | None) -> np.ndarray:
    """When each distinct reading was first seen (a new stamp, or a new value without stamps)."""
    if t.size == 0:
        return t
    marks = stamps if stamps is not None else p
    new = np.concatenate([[True], marks[1:] != marks[:-1]])
    return t[new]


def integrate(t: np.ndarray, p: np.ndarray, start: float, end: float) -> float:
    """Joules over ``[start, end]`` of power ``p`` read at times ``t`` (sorted): trapezoids between
    readings, the edges interpolated between readings or held from the nearest one."""
    inside = t[(t > start) & (t < end)]
    grid = np.concatenate([[start], inside, [end]])
    watts = np.interp(grid, t, p)
    return float(np.sum((watts[1:] + watts[:-1]) / 2 * np.diff(grid)))


def node_channel(series: dict[str, list], start: float, end: float) -> dict[str, Any]:
    """One whole-machine channel over the window: joules, average watts, the distinct readings in
    it, the device's update interval, the longest stretch of the window without a reading."""
    t, p, stamps = _clean(series["t"], series["power_w"], series.get("stamp"))
    new_t = _new_reading_times(t, p, stamps)
    diffs = np.diff(stamps[np.concatenate([[True], stamps[1:] != stamps[:-1]])]) if stamps is not None \
        else np.diff(new_t)
    interval = float(np.median(diffs)) if diffs.size else None
    in_window = (new_t >= start) & (new_t <= end)
    edges = np.concatenate([[start], t[(t >= start) & (t <= end)], [end]])
    out: dict[str, Any] = {
        "samples": int(t.size), "readings": int(in_window.sum()), "update_interval_s": interval,
        "largest_gap_s": float(np.diff(edges).max()) if end > start else None, "duration_s": end - start,
        "joules": None, "avg_w": None, "peak_w": float(p.max()) if p.size else None,
    }
    if t.size and end > start:
        out["joules"] = integrate(t, p, start, end)
        out["avg_w"] = out["joules"] / (end - start)
    return out


def channel_problem(name: str, c: dict[str, Any]) -> str | None:
    """Why a node channel gives no per-query figure, or None."""
    if c["joules"] is None:
        return f"{name}: no reading in the window"
    if c["readings"] < MIN_READINGS:
        every = f" (it changes every {c['update_interval_s']:.1g} s)" if c["update_interval_s"] else ""
        return (f"{name}: {c['readings']} distinct reading(s) in the window{every}; a per-query figure needs at "
                f"least {MIN_READINGS}: measure longer (-d)")
    limit = max(MIN_GAP_S, MAX_GAP_INTERVALS * (c["update_interval_s"] or 0.0))
    if c["largest_gap_s"] is not None and c["largest_gap_s"] > limit:
        return f"{name}: no reading for {c['largest_gap_s']:.1f} s of the window (more than {limit:.1f} s)"
    return None


def _meter(doc: dict[str, Any], source: str, channels: list[str], idle_w: dict[str, float] | None,
           num_completed: int | None) -> dict[str, Any]:
    """One meter's figures: its channels added, its problems said, per query only when none."""
    start, end = doc["config"]["start_wall"], doc["config"]["end_wall"]
    per_channel = {ch: node_channel(doc["series"][ch], start, end) for ch in channels}
    status = doc.get("status", {}).get(source, "not sampled (no status)")
    problems = [] if status == "ok" else [f"{source}: {status}"]
    problems += [p for ch, c in per_channel.items() if (p := channel_problem(ch, c))]
    if not channels and status == "ok":
        problems.append(f"{source}: no reading")
    joules = sum(c["joules"] for c in per_channel.values()) if channels and all(
        c["joules"] is not None for c in per_channel.values()) else None
    duration = end - start
    entry: dict[str, Any] = {
        "status": status, "channels": per_channel, "joules": joules,
        "avg_w": joules / duration if joules is not None and duration > 0 else None,
        "readings": min((c["readings"] for c in per_channel.values()), default=0),
        "update_interval_s": max((c["update_interval_s"] or 0.0 for c in per_channel.values()), default=0.0) or None,
        "idle_w": sum(idle_w[ch] for ch in channels) if channels and idle_w and all(ch in idle_w for ch in channels)
        else None,
        "info": doc.get("source_info", {}).get(source, {}), "problem": "; ".join(problems) or None,
        "joules_per_query": None, "joules_per_query_above_idle": None,
    }
    if entry["problem"] is None and joules is not None and num_completed:
        entry["joules_per_query"] = joules / num_completed
        if entry["idle_w"] is not None:
            entry["joules_per_query_above_idle"] = (joules - entry["idle_w"] * duration) / num_completed
    return entry


def _meter_names(doc: dict[str, Any], meta: dict[str, dict[str, str]]) -> list[str]:
    """The whole-machine sources of a document, in the order they were asked for (on a cluster, each
    as ``name@host``); one asked for that never reported is named too, so its absence is said."""
    from .meters import source_names

    try:
        asked = source_names(doc.get("config", {}).get("power_meters") or [])
    except ValueError:
        asked = []
    found = [m["source"] for m in meta.values() if m["scope"] == SCOPE_NODE]
    known = list(dict.fromkeys([*doc.get("status", {}), *found]))
    names = []
    for name in asked:
        names += [k for k in known if k.partition("@")[0] == name] or [name]
    return list(dict.fromkeys([*names, *found]))


def node_figures(doc: dict[str, Any], num_completed: int | None, idle_w: dict[str, float] | None) -> dict[str, Any]:
    """The record's whole-machine figures (``node_*`` keys and the ``node`` block with every meter), or
    {} when no whole-machine source was asked for."""
    meta = channel_meta(doc)
    names = _meter_names(doc, meta)
    if not names:
        return {}
    meters = {name: _meter(doc, name, sorted(ch for ch, m in meta.items() if m["source"] == name), idle_w,
                           num_completed) for name in names}
    usable = [n for n, m in meters.items() if m["problem"] is None] or [n for n, m in meters.items()
                                                                         if m["avg_w"] is not None]
    head = meters[usable[0]] if usable else None
    return {
        "node_source": usable[0] if usable else None,
        "node_joules": head["joules"] if head else None,
        "node_power_mean_w": head["avg_w"] if head else None,
        "node_idle_w": head["idle_w"] if head else None,
        "node_readings": head["readings"] if head else None,
        "node_update_interval_s": head["update_interval_s"] if head else None,
        "node_energy_per_query_j": head["joules_per_query"] if head else None,
        "node_energy_per_query_above_idle_j": head["joules_per_query_above_idle"] if head else None,
        "node_problem": (head or {}).get("problem") or (None if head else "; ".join(
            m["problem"] or f"{n}: no figure" for n, m in meters.items())),
        "node": {"min_readings": MIN_READINGS, "meters": meters},
    }


def node_idle_watts(doc: dict[str, Any]) -> dict[str, float]:
    """Average watts of every whole-machine channel over an idle measurement's window."""
    start, end = doc["config"]["start_wall"], doc["config"]["end_wall"]
    out = {}
    for name, m in channel_meta(doc).items():
        if m["scope"] == SCOPE_NODE and name in doc["series"]:
            c = node_channel(doc["series"][name], start, end)
            if c["avg_w"] is not None:
                out[name] = c["avg_w"]
    return out


def cross_check(channels: dict[str, dict[str, Any]], meta: dict[str, dict[str, str]], node: dict[str, Any],
                idle_w: dict[str, float] | None) -> dict[str, Any] | None:
    """The node's power above idle against the GPUs' (what the GPU figure leaves out), where both ran."""
    gpus = [ch for ch, m in meta.items() if m["source"].partition("@")[0] == "nvml" and ch in channels]
    node_w = node.get("node_power_mean_w")
    if not gpus or node_w is None or any(channels[ch].get("avg_w") is None for ch in gpus):
        return None
    gpu_w = sum(channels[ch]["avg_w"] for ch in gpus)
    gpu_idle = sum(idle_w[ch] for ch in gpus) if idle_w and all(ch in idle_w for ch in gpus) else None
    node_idle = node.get("node_idle_w")
    node_above = node_w - node_idle if node_idle is not None else None
    gpu_above = gpu_w - gpu_idle if gpu_idle is not None else None
    return {
        "node_w": node_w, "node_idle_w": node_idle, "node_above_idle_w": node_above,
        "gpu_w": gpu_w, "gpu_idle_w": gpu_idle, "gpu_above_idle_w": gpu_above,
        "gpu_share_of_node_w": gpu_w / node_w if node_w > 0 else None,
        "gpu_share_of_node_above_idle": gpu_above / node_above if node_above and gpu_above is not None
        and node_above > 0 else None,
    }
