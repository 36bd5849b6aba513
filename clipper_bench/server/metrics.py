"""Clipper-style metrics (histograms, meters, ratio counters, counters) and their JSON form.

``GET /metrics`` answers in Clipper 0.4.1's format, values as strings. Histograms keep a uniform
reservoir of 4096 samples, as Clipper's do, so their percentiles describe recent traffic cheaply;
the benchmark's own statistics never come from here but from the clients' raw per-query data.

The document lists its groups and, within each, Clipper's entries in Clipper's order: the
``internal:*`` ones, then each application's, then each model version's (:data:`INTERNAL_METRICS`,
:data:`APP_METRICS`, :data:`MODEL_METRICS`), and only then entries of our own (``<m>:<v>:queue_size``,
``app:<a>:num_errors``, ...). The original driver's analysis reads ``histograms[1]`` as the app's
latency and ``histograms[2]`` as the model's, by position; an application's and a model's entries
exist from the moment they are registered (:meth:`MetricsRegistry.add_app`, :meth:`MetricsRegistry.add_model`)
and are made again, empty, by :meth:`MetricsRegistry.reset`, so those positions hold before the
first query and across a sweep's configurations.
"""

from __future__ import annotations

import math
import random
import time

import numpy as np

RESERVOIR_SIZE = 4096


class Histogram:
    """A uniform reservoir sample of values (Vitter's algorithm R)."""

    def __init__(self, unit: str, size: int = RESERVOIR_SIZE) -> None:
        self.unit = unit
        self._size = size
        self._samples: list[float] = []
        self._count = 0
        self._rand = random.Random(0)

    def insert(self, value: float) -> None:
        """Add a value; once the reservoir is full it replaces a random sample, or none."""
        self._count += 1
        if len(self._samples) < self._size:
            self._samples.append(value)
        else:
            j = int(self._rand.random() * self._count)
            if j < self._size:
                self._samples[j] = value

    def to_json(self) -> dict[str, str]:
        """Sample size, min, max, mean, std_dev, p50, p95 and p99 as strings (zeros when empty)."""
        data = np.asarray(self._samples, dtype=float)
        if data.size == 0:
            values = dict.fromkeys(("min", "max", "mean", "std_dev", "p50", "p95", "p99"), 0.0)
        else:
            p50, p95, p99 = np.percentile(data, [50, 95, 99])
            values = {
                "min": data.min(), "max": data.max(), "mean": data.mean(),
                "std_dev": data.std(), "p50": p50, "p95": p95, "p99": p99,
            }
        out = {"unit": self.unit, "size": str(int(data.size))}
        out.update({k: f"{v:.6f}" for k, v in values.items()})
        return out


class Meter:
    """Events per second: the mean rate since creation and 1/5/15-minute moving averages."""

    _TICK_S = 5.0

    def __init__(self, unit: str = "events per second") -> None:
        self.unit = unit
        self._start = self._last_tick = time.monotonic()
        self._count = 0
        self._uncounted = 0
        self._rates = {60: 0.0, 300: 0.0, 900: 0.0}
        self._initialised = False

    def mark(self, n: int = 1) -> None:
        """Count ``n`` events."""
        self._count += n
        self._uncounted += n

    def _tick(self) -> None:
        now = time.monotonic()
        while now - self._last_tick >= self._TICK_S:
            instant = self._uncounted / self._TICK_S
            self._uncounted = 0
            for window in self._rates:
                if not self._initialised:
                    self._rates[window] = instant
                else:
                    alpha = 1.0 - math.exp(-self._TICK_S / window)
                    self._rates[window] += alpha * (instant - self._rates[window])
            self._initialised = True
            self._last_tick += self._TICK_S

    def to_json(self) -> dict[str, str]:
        """The mean rate since creation and the 1/5/15-minute moving averages, as strings."""
        self._tick()
        elapsed = max(time.monotonic() - self._start, 1e-9)
        return {
            "unit": self.unit,
            "rate": f"{self._count / elapsed:.6f}",
            "rate_1min": f"{self._rates[60]:.6f}",
            "rate_5min": f"{self._rates[300]:.6f}",
            "rate_15min": f"{self._rates[900]:.6f}",
        }


class RatioCounter:
    def __init__(self) -> None:
        self.numerator = 0
        self.denominator = 0

    def to_json(self) -> dict[str, str]:
        """numerator / denominator as a string (0 while the denominator is 0)."""
        ratio = self.numerator / self.denominator if self.denominator else 0.0
        return {"ratio": f"{ratio:.6f}"}


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def to_json(self) -> dict[str, str]:
        """The count as a string."""
        return {"count": str(self.count)}


GROUPS = ("counters", "ratio_counters", "meters", "histograms")  # Clipper's order in ``/metrics``

# Clipper 0.4.1's entries as (group, name or suffix, histogram unit), in the order its /metrics lists
# them within each group. The internal ones mean here: no prediction cache (lookups and hit ratios 0);
# predictions answered by models across all apps; the time a query waited in the frontend's queue
# before its batch was sent to a replica.
INTERNAL_METRICS = (
    ("counters", "internal:prediction_cache_lookups", ""),
    ("counters", "internal:aggregate_num_predictions", ""),
    ("ratio_counters", "internal:prediction_cache_hit_ratio", ""),
    ("meters", "internal:aggregate_model_throughput", ""),
    ("histograms", "internal:rpc_request_queueing_delay", "microseconds"),
)
APP_METRICS = (  # named app:<app>:<suffix>
    ("counters", "num_predictions", ""),
    ("ratio_counters", "default_prediction_ratio", ""),
    ("meters", "prediction_throughput", ""),
    ("histograms", "prediction_latency", "microseconds"),
)
MODEL_METRICS = (  # named model:<name>:<version>:<suffix>
    ("counters", "num_predictions", ""),
    ("ratio_counters", "cache_hit_ratio", ""),
    ("meters", "prediction_throughput", ""),
    ("histograms", "prediction_latency", "microseconds"),
    ("histograms", "batch_size", "queries"),
)
_SUFFIXES = {
    "app": {(group, suffix) for group, suffix, _ in APP_METRICS},
    "model": {(group, suffix) for group, suffix, _ in MODEL_METRICS},
}


def clipper_rank(group: str, name: str) -> int:
    """Where an entry of ``group`` goes in ``/metrics``: 0 internal, 1 an application's, 2 a model's
    (Clipper's own entries, in Clipper's order), 3 one of ours (after all of Clipper's)."""
    kind = name.split(":", 1)[0]
    if kind == "internal":
        return 0
    if (group, name.rsplit(":", 1)[-1]) in _SUFFIXES.get(kind, ()):
        return 1 if kind == "app" else 2
    return 3


class AppMetrics:
    """One application's entries that every query touches, looked up once rather than by name per
    query (see :meth:`MetricsRegistry.app_metrics`)."""

    __slots__ = ("latency", "throughput", "predictions", "default_ratio")

    def __init__(self, registry: MetricsRegistry, app: str) -> None:
        prefix = f"app:{app}:"
        self.latency = registry.histogram(f"{prefix}prediction_latency", "microseconds")
        self.throughput = registry.meter(f"{prefix}prediction_throughput")
        self.predictions = registry.counter(f"{prefix}num_predictions")
        self.default_ratio = registry.ratio(f"{prefix}default_prediction_ratio")


class MetricsRegistry:
    """All metrics of one frontend, named and ordered as Clipper names and orders them."""

    def __init__(self) -> None:
        self.histograms: dict[str, Histogram] = {}
        self.meters: dict[str, Meter] = {}
        self.ratios: dict[str, RatioCounter] = {}
        self.counters: dict[str, Counter] = {}
        self._apps: dict[str, None] = {}  # registered, in order: remade by reset()
        self._models: dict[tuple[str, str], None] = {}
        self._app_entries: dict[str, AppMetrics] = {}  # app_metrics' cache: emptied by reset()
        self._declare("", INTERNAL_METRICS)

    def app_metrics(self, app: str) -> AppMetrics:
        """Application ``app``'s per-query entries (created if new), kept until :meth:`reset`."""
        entries = self._app_entries.get(app)
        if entries is None:
            entries = self._app_entries[app] = AppMetrics(self, app)
        return entries

    def histogram(self, name: str, unit: str) -> Histogram:
        """The histogram named ``name``, created with ``unit`` if new."""
        if name not in self.histograms:
            self.histograms[name] = Histogram(unit)
        return self.histograms[name]

    def meter(self, name: str) -> Meter:
        """The meter named ``name``, created if new."""
        if name not in self.meters:
            self.meters[name] = Meter()
        return self.meters[name]

    def ratio(self, name: str) -> RatioCounter:
        """The ratio counter named ``name``, created if new."""
        if name not in self.ratios:
            self.ratios[name] = RatioCounter()
        return self.ratios[name]

    def counter(self, name: str) -> Counter:
        """The counter named ``name``, created if new."""
        if name not in self.counters:
            self.counters[name] = Counter()
        return self.counters[name]

    def _declare(self, prefix: str, specs: tuple[tuple[str, str, str], ...]) -> None:
        """Create (if new) the entries ``specs`` names, each called ``prefix + name``."""
        for group, suffix, unit in specs:
            name = prefix + suffix
            if group == "histograms":
                self.histogram(name, unit)
            elif group == "meters":
                self.meter(name)
            elif group == "ratio_counters":
                self.ratio(name)
            else:
                self.counter(name)

    def add_app(self, app: str) -> None:
        """Create an application's entries (``app:<app>:*``, :data:`APP_METRICS`), as Clipper does
        when the application is registered; :meth:`reset` makes them again."""
        self._apps[app] = None
        self._declare(f"app:{app}:", APP_METRICS)

    def add_model(self, name: str, version: str) -> None:
        """Create a model version's entries (``model:<name>:<version>:*``, :data:`MODEL_METRICS`);
        :meth:`reset` makes them again."""
        self._models[(name, version)] = None
        self._declare(f"model:{name}:{version}:", MODEL_METRICS)

    def forget_app(self, app: str) -> None:
        """A deleted application: its entries stay until :meth:`reset`, which no longer makes them."""
        self._apps.pop(app, None)

    def forget_model(self, name: str, version: str) -> None:
        """A deleted model version: its entries stay until :meth:`reset`, which no longer makes them."""
        self._models.pop((name, version), None)

    def reset(self) -> None:
        """Forget every value (a sweep calls this between configurations sharing one frontend): the
        internal, application and model entries are made again, empty, in Clipper's order; entries
        of our own come back when next used."""
        for metrics in (self.histograms, self.meters, self.ratios, self.counters):
            metrics.clear()
        self._app_entries.clear()
        self._declare("", INTERNAL_METRICS)
        for app in self._apps:
            self._declare(f"app:{app}:", APP_METRICS)
        for name, version in self._models:
            self._declare(f"model:{name}:{version}:", MODEL_METRICS)

    def to_json(self) -> dict[str, list[dict[str, dict[str, str]]]]:
        """The body of ``GET /metrics``: ``counters``, ``ratio_counters``, ``meters``, ``histograms``,
        each listing Clipper's entries in Clipper's order (:func:`clipper_rank`) and then ours."""
        groups = {"counters": self.counters, "ratio_counters": self.ratios,
                  "meters": self.meters, "histograms": self.histograms}
        out: dict[str, list[dict[str, dict[str, str]]]] = {}
        for group in GROUPS:
            names = sorted(groups[group], key=lambda name, g=group: clipper_rank(g, name))  # stable
            out[group] = [{name: groups[group][name].to_json()} for name in names]
        return out
