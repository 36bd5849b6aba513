"""When an open-loop client sends: constant gaps or Poisson arrivals at a target rate."""

from __future__ import annotations

import numpy as np

ARRIVALS = ("constant", "poisson")


def schedule_ns(rate_qps: float, seconds: float, arrival: str, seed: int = 0) -> np.ndarray:
    """Send offsets (ns from the start) of every query over ``seconds`` at ``rate_qps``.

    ``constant``: one query every 1/rate s. ``poisson``: exponential gaps with mean 1/rate (seeded),
    so arrivals are independent, as from many users.
    """
    if rate_qps <= 0:
        raise ValueError(f"rate must be positive, got {rate_qps}")
    n = int(np.ceil(rate_qps * seconds))
    if arrival == "constant":
        offsets = np.arange(n) / rate_qps
    elif arrival == "poisson":
        rng = np.random.default_rng(seed)
        offsets = np.cumsum(rng.exponential(1.0 / rate_qps, n + max(10, int(4 * np.sqrt(n)))))
        offsets = offsets[offsets < seconds]
    else:
        raise ValueError(f"unknown arrival process {arrival!r}: use {' or '.join(ARRIVALS)}")
    return (offsets * 1e9).astype(np.int64)
