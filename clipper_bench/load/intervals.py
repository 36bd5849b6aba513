"""Means and 95% confidence intervals over repeated measurements of one configuration."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Student's t at 97.5% (two-sided 95%) for 1..30 degrees of freedom; the normal 1.96 beyond
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t975(dof: int) -> float:
    """Student's t quantile for a two-sided 95% interval with ``dof`` degrees of freedom."""
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def mean_ci95(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "ci95_low", "ci95_high", "n"}`` of the known values (the interval needs two)."""
    known = [float(v) for v in values if v is not None]
    n = len(known)
    if n == 0:
        return {"mean": None, "ci95_low": None, "ci95_high": None, "n": 0}
    mean = sum(known) / n
    if n == 1:
        return {"mean": mean, "ci95_low": None, "ci95_high": None, "n": 1}
    sd = math.sqrt(sum((v - mean) ** 2 for v in known) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def repeat_stats(summaries: Sequence[dict]) -> dict[str, dict]:
    """Mean and 95% interval of throughput, p50 and p99 over the repeats' summaries."""
    def latency(s: dict, key: str) -> float | None:
        return (s.get("latency_ms") or {}).get(key)

    return {
        "throughput_qps": mean_ci95([s.get("throughput_qps") for s in summaries]),
        "p50_ms": mean_ci95([latency(s, "p50") for s in summaries]),
        "p99_ms": mean_ci95([latency(s, "p99") for s in summaries]),
    }
