"""``--max_rate_under_p99_ms``: the highest offered open-loop rate a configuration takes while its p99
stays within a bound and nearly every query is answered in time. The number a capacity planner needs.

After a configuration's own (closed-loop) measurement, which gives its capacity ``C``, the search
probes open-loop rates on the same deployment: first ``1.2 C``; then bisection between the highest
rate that passed (0 at first) and the lowest that failed, until they are within ``tolerance`` of each
other or ``max_steps`` probes were made. A probe passes when its p99 is within the bound and its
goodput (answers within the SLO over queries sent) is at least ``min_goodput`` and the system kept up
with it: a probe whose window is ``overloaded`` (its completions fell short of the rate offered, see
``clipper_bench.load.stats.overload_stats``) fails whatever its p99, since a long SLO lets a growing
queue look fast. Each probe has its
own warm-up and window and is recorded; the record's ``rate_search`` holds them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FIRST_PROBE_OF_CAPACITY = 1.2  # the first probe, as a multiple of the closed-loop throughput


@dataclass
class RateSearch:
    """The search's bounds and steps, and every probe made."""

    p99_limit_ms: float
    min_goodput: float = 0.99
    tolerance: float = 0.05  # stop when (failed - passed) / failed is at most this
    max_steps: int = 8
    probes: list[dict[str, Any]] = field(default_factory=list)

    def passes(self, summary: dict[str, Any]) -> bool:
        """Whether a probe's summary is within the p99 bound with enough goodput, and not overloaded."""
        p99 = (summary.get("latency_ms") or {}).get("p99")
        goodput = summary.get("goodput")
        if (summary.get("overload") or {}).get("overloaded"):
            return False
        return p99 is not None and p99 <= self.p99_limit_ms and goodput is not None and goodput >= self.min_goodput

    def run(self, capacity_qps: float, probe: Callable[[float], dict[str, Any]]) -> float | None:
        """Search with ``probe(rate_qps) -> summary``; return the highest passing rate (None if none)."""
        passed, failed = 0.0, None
        rate = FIRST_PROBE_OF_CAPACITY * capacity_qps
        for _ in range(self.max_steps):
            summary = probe(rate)
            ok = self.passes(summary)
            self.probes.append({
                "rate_qps": rate, "passed": ok, "throughput_qps": summary.get("throughput_qps"),
                "goodput": summary.get("goodput"), "p99_ms": (summary.get("latency_ms") or {}).get("p99"),
                "num_sent": summary.get("num_sent"),
                "overloaded": (summary.get("overload") or {}).get("overloaded"),
            })
            if ok:
                passed = rate
                if failed is None:  # even the first, generous probe passed
                    break
            else:
                failed = rate
            if failed is not None and (failed - passed) / failed <= self.tolerance:
                break
            rate = (passed + failed) / 2
        return passed or None

    def to_json(self, found: float | None, capacity_qps: float, arrival: str) -> dict[str, Any]:
        """The record's ``rate_search`` block."""
        return {
            "max_rate_qps": found, "p99_limit_ms": self.p99_limit_ms, "min_goodput": self.min_goodput,
            "tolerance": self.tolerance, "max_steps": self.max_steps, "arrival": arrival,
            "bounds_qps": [0.0, FIRST_PROBE_OF_CAPACITY * capacity_qps], "closed_loop_qps": capacity_qps,
            "probes": self.probes,
        }
