"""The frontend's metrics in Prometheus' text format, as Clipper's exporter serves them (port 1390).

The same histograms, meters, ratio counters and counters as ``GET /metrics`` (Clipper's JSON),
read from that JSON form so that the two never disagree, under Prometheus names: Clipper's
``app:<app>:<metric>`` becomes ``clipper_app_<metric>{app=...}``, ``model:<m>:<v>:<metric>`` and
``<m>:<v>:<metric>`` become ``clipper_model_<metric>{model=..., version=...}``, and the unit joins
the name (``_microseconds``). A histogram is a gauge per quantile (0.5, 0.95, 0.99 of its
reservoir) plus ``_mean``, ``_max`` and ``_reservoir_size``; a meter a gauge per window
(``mean``, ``1m``, ``5m``, ``15m``); a counter ``_total``.

Beside them, ``clipper_bench_power_watts{channel=...}``: the watts the running configuration's
power sampler saw last (its ``*.live.json`` files in ``power_dir``), absent between windows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

QUANTILES = (("p50", "0.5"), ("p95", "0.95"), ("p99", "0.99"))
METER_WINDOWS = (("rate", "mean"), ("rate_1min", "1m"), ("rate_5min", "5m"), ("rate_15min", "15m"))
UNIT_SUFFIX = {"microseconds": "_microseconds", "queries": "_queries"}


def _snake(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


def split_name(name: str) -> tuple[str, dict[str, str]]:
    """Clipper's metric name as a Prometheus base name and labels."""
    parts = name.split(":")
    if parts[0] == "app" and len(parts) >= 3:
        return f"clipper_app_{_snake(':'.join(parts[2:]))}", {"app": parts[1]}
    if parts[0] == "model" and len(parts) >= 4:
        return f"clipper_model_{_snake(':'.join(parts[3:]))}", {"model": parts[1], "version": parts[2]}
    if len(parts) == 3:  # <m>:<v>:queue_size
        return f"clipper_model_{_snake(parts[2])}", {"model": parts[0], "version": parts[1]}
    return f"clipper_{_snake(name)}", {}


class _Families:
    """Metric families by name, each created on first use with its label names."""

    def __init__(self) -> None:
        self.by_name: dict[str, Any] = {}

    def add(self, kind: type, name: str, doc: str, labels: dict[str, str], value: float) -> None:
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = kind(name, doc, labels=list(labels))
        family.add_metric(list(labels.values()), value)


class ClipperCollector(Collector):
    """Collects ``metrics_json()`` (Clipper's ``/metrics`` body) and the live power files."""

    def __init__(self, metrics_json: Callable[[], dict], power_dir: Path | None = None) -> None:
        self.metrics_json = metrics_json
        self.power_dir = power_dir

    def collect(self) -> Iterator[Any]:
        """The families of one scrape."""
        fam = _Families()
        doc = self.metrics_json()
        for entry in doc.get("histograms", []):
            for name, h in entry.items():
                base, labels = split_name(name)
                base += UNIT_SUFFIX.get(h.get("unit", ""), "")
                for key, q in QUANTILES:
                    fam.add(GaugeMetricFamily, base, f"{name} ({h.get('unit')}), reservoir quantile",
                            {**labels, "quantile": q}, float(h[key]))
                fam.add(GaugeMetricFamily, f"{base}_mean", f"{name}: reservoir mean", labels, float(h["mean"]))
                fam.add(GaugeMetricFamily, f"{base}_max", f"{name}: reservoir max", labels, float(h["max"]))
                fam.add(GaugeMetricFamily, f"{base}_reservoir_size", f"{name}: samples held", labels, float(h["size"]))
        for entry in doc.get("meters", []):
            for name, m in entry.items():
                base, labels = split_name(name)
                for key, window in METER_WINDOWS:
                    fam.add(GaugeMetricFamily, f"{base}_per_second", f"{name}: events per second",
                            {**labels, "window": window}, float(m[key]))
        for entry in doc.get("ratio_counters", []):
            for name, r in entry.items():
                base, labels = split_name(name)
                fam.add(GaugeMetricFamily, base, f"{name}: ratio", labels, float(r["ratio"]))
        for entry in doc.get("counters", []):
            for name, c in entry.items():
                base, labels = split_name(name)
                fam.add(CounterMetricFamily, base, f"{name}: count", labels, float(c["count"]))
        for channel, watts in self._live_watts().items():
            fam.add(GaugeMetricFamily, "clipper_bench_power_watts",
                    "watts of each power channel over the last second of the running window", {"channel": channel}, watts)
        yield from fam.by_name.values()

    def _live_watts(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.power_dir is None:
            return out
        for path in Path(self.power_dir).glob("*.live.json"):
            try:
                out.update({k: float(v) for k, v in json.loads(path.read_text())["watts"].items()})
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a window that just ended: its file is gone
        return out
