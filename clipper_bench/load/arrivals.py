"""When an open-loop client sends: the arrival processes, by ``--arrival`` name.

Each is a function ``(rate_qps, seconds, seed) -> offsets in seconds from the start``; adding a load
shape is one function here and one line in :data:`ARRIVALS`, which ``--arrival`` offers. Besides
these, ``gamma:CV`` draws gamma gaps of a given coefficient of variation, and ``trace:FILE`` replays recorded arrivals (one timestamp in seconds per line), time-scaled so
that their mean rate is the offered rate and repeated when the trace is shorter than the run.
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


def gamma(rate_qps: float, seconds: float, seed: int, cv: float) -> np.ndarray:
    """Gamma-distributed gaps with mean 1/rate and coefficient of variation ``cv`` (seeded): bursty
    arrivals for cv > 1 (InferLine's CV 4), smoother than Poisson for cv < 1; cv 1 is Poisson."""
    shape = 1.0 / (cv * cv)
    n = int(np.ceil(rate_qps * seconds))
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape, 1.0 / (rate_qps * shape), n + max(10, int(4 * cv * np.sqrt(n))))
    offsets = np.cumsum(gaps)
    while offsets[-1] < seconds:  # a burst that ran short: draw more
        offsets = np.concatenate([offsets, offsets[-1] + np.cumsum(rng.gamma(shape, 1.0 / (rate_qps * shape), n + 10))])
    return offsets[offsets < seconds]


ARRIVALS: dict[str, Callable[[float, float, int], np.ndarray]] = {"constant": constant, "poisson": poisson}
GAMMA_PREFIX = "gamma:"  # gamma:CV, e.g. gamma:4


def parse_gamma(arrival: str) -> float:
    """The CV of ``gamma:CV``; ValueError naming the form when it is not a positive number."""
    try:
        cv = float(arrival[len(GAMMA_PREFIX):])
    except ValueError:
        cv = -1.0
    if not (0 < cv <= 100):
        raise ValueError(f"{arrival!r}: give gamma:CV with CV a positive number up to 100 (gamma:4 is bursty)")
    return cv


TRACE_PREFIX = "trace:"


def read_trace(path: str) -> np.ndarray:
    """A trace file's arrival times (seconds, one per line, blank lines and ``#`` comments skipped),
    sorted; ValueError naming the problem when it cannot be replayed."""
    try:
        lines = open(path).read().splitlines()
    except OSError as exc:
        raise ValueError(f"trace {path}: cannot read it ({exc.strerror})") from None
    try:
        times = np.sort(np.array([float(x) for x in lines if x.strip() and not x.startswith("#")]))
    except ValueError as exc:
        raise ValueError(f"trace {path}: every line must be a timestamp in seconds ({exc})") from None
    if times.size < 2 or times[-1] <= times[0] or not np.isfinite(times).all():
        raise ValueError(f"trace {path}: needs at least two different finite timestamps")
    return times


def trace(path: str, rate_qps: float, seconds: float) -> np.ndarray:
    """The trace's arrivals, scaled to ``rate_qps`` on average, repeated to cover ``seconds``."""
    times = read_trace(path)
    span = times[-1] - times[0]
    scale = ((times.size - 1) / span) / rate_qps  # trace seconds -> run seconds
    one = (times - times[0]) * scale
    period = (span + span / (times.size - 1)) * scale  # the trace, then one mean gap, then again
    copies = int(np.ceil(seconds / period)) + 1
    offsets = (one[None, :] + period * np.arange(copies)[:, None]).ravel()
    return offsets[offsets < seconds]


def schedule_ns(rate_qps: float, seconds: float, arrival: str, seed: int = 0) -> np.ndarray:
    """Send offsets (ns from the start) of every query over ``seconds`` at ``rate_qps``."""
    if rate_qps <= 0:
        raise ValueError(f"rate must be positive, got {rate_qps}")
    if arrival.startswith(TRACE_PREFIX):
        return (trace(arrival[len(TRACE_PREFIX):], rate_qps, seconds) * 1e9).astype(np.int64)
    if arrival.startswith(GAMMA_PREFIX):
        return (gamma(rate_qps, seconds, seed, parse_gamma(arrival)) * 1e9).astype(np.int64)
    shape = ARRIVALS.get(arrival)
    if shape is None:
        raise ValueError(f"unknown arrival process {arrival!r}: use {', '.join(ARRIVALS)}, gamma:CV or trace:FILE")
    return (shape(rate_qps, seconds, seed) * 1e9).astype(np.int64)
