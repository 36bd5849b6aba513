"""Clipper-style metrics (histograms, meters, ratio counters, counters) and their JSON form.

``GET /metrics`` answers in Clipper 0.4.1's format, values as strings. Histograms keep a uniform
reservoir of 4096 samples, as Clipper's do, so their percentiles describe recent traffic cheaply;
the benchmark's own statistics never come from here but from the clients' raw per-query data.
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


class MetricsRegistry:
    """All metrics of one frontend, named as Clipper names them."""

    def __init__(self) -> None:
        self.histograms: dict[str, Histogram] = {}
        self.meters: dict[str, Meter] = {}
        self.ratios: dict[str, RatioCounter] = {}
        self.counters: dict[str, Counter] = {}

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

    def reset(self) -> None:
        """Forget every metric (a sweep calls this between configurations sharing one frontend)."""
        for metrics in (self.histograms, self.meters, self.ratios, self.counters):
            metrics.clear()

    def to_json(self) -> dict[str, list[dict[str, dict[str, str]]]]:
        """The body of ``GET /metrics``."""
        return {
            "histograms": [{k: v.to_json()} for k, v in self.histograms.items()],
            "meters": [{k: v.to_json()} for k, v in self.meters.items()],
            "ratio_counters": [{k: v.to_json()} for k, v in self.ratios.items()],
            "counters": [{k: v.to_json()} for k, v in self.counters.items()],
        }
