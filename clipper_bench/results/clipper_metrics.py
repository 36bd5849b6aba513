"""Reading Clipper's ``/metrics`` document (as every engine records it in ``clipper_metrics``).

Entries are looked up by name, never by position: Clipper lists each group as a list of one-entry
dicts, values as strings.
"""

from __future__ import annotations

from typing import Any


def metric_entry(metrics: dict[str, Any] | None, group: str, name: str) -> dict[str, str] | None:
    """The entry ``name`` of ``group`` (``histograms``, ``meters``, ``ratio_counters`` or
    ``counters``), or None when the document or the entry is missing."""
    for item in (metrics or {}).get(group) or []:
        if isinstance(item, dict) and name in item:
            return item[name]
    return None


def model_batch_latency_ms(metrics: dict[str, Any] | None, model_name: str, version: str = "1") -> float | None:
    """The median time the frontend saw the model take per batch (``model:<m>:<v>:prediction_latency``
    p50, in ms), or None when it is not recorded or no batch was answered."""
    entry = metric_entry(metrics, "histograms", f"model:{model_name}:{version}:prediction_latency")
    if not entry:
        return None
    try:
        size, p50_us = int(float(entry.get("size", "0"))), float(entry["p50"])
    except (KeyError, TypeError, ValueError):
        return None
    return p50_us / 1000 if size > 0 else None
