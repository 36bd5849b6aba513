"""When an open-loop client sends: the arrival processes, by ``--arrival`` name.

Each is a function ``(rate_qps, seconds, seed) -> offsets in seconds from the start``; adding a load
shape is one function here and one line in :data:`ARRIVALS`, which ``--arrival`` offers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def constant(rate_qps: float, seconds: float, seed: int) -> np.ndarray:
    """One query every 1/rate s: the original driver's fixed gap."""
    return np.arange(int(np.ceil(rate_qps * seconds))) / rate_qps


def poisson(rate_qps: float, seconds: float, seed: int) -> np.ndarray:
    """Exponential gaps with mean 1/rate (seeded): independent arrivals, as from many users."""
    n = int(np.ceil(rate_qps * seconds))
    rng = np.random.default_rng(seed)
    offsets = np.cumsum(rng.exponential(1.0 / rate_qps, n + max(10, int(4 * np.sqrt(n)))))
    return offsets[offsets < seconds]


ARRIVALS: dict[str, Callable[[float, float, int], np.ndarray]] = {"constant": constant, "poisson": poisson}


def schedule_ns(rate_qps: float, seconds: float, arrival: str, seed: int = 0) -> np.ndarray:
    """Send offsets (ns from the start) of every query over ``seconds`` at ``rate_qps``."""
    if rate_qps <= 0:
        raise ValueError(f"rate must be positive, got {rate_qps}")
    shape = ARRIVALS.get(arrival)
    if shape is None:
        raise ValueError(f"unknown arrival process {arrival!r}: use {' or '.join(ARRIVALS)}")
    return (shape(rate_qps, seconds, seed) * 1e9).astype(np.int64)
