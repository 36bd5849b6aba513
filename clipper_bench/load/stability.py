"""Stop-when-stable: measure in windows until the last three agree, as perf_analyzer does.

After warm-up, the client closes a window every ``window_s``: the throughput of the successful
answers that arrived in it and the p99 of their latencies. When the last three windows agree within
``tolerance`` (max / min - 1) on both, the measurement is stable and the client stops sending; if
that never happens, it runs the full duration, which is then the bound, and says it was not stable.
"""

from __future__ import annotations

from array import array

import numpy as np

from .spec import STATUS_OK


class StabilityMonitor:
    """Watches a client's raw arrays; :meth:`stable` says when to stop."""

    def __init__(self, measure_start_ns: int, window_s: float, tolerance: float,
                 start_ns: array, done_ns: array, status: array) -> None:
        self.window_ns = int(window_s * 1e9)
        self.window_s = window_s
        self.tolerance = tolerance
        self.next_boundary = measure_start_ns + self.window_ns
        self.start_ns, self.done_ns, self.status = start_ns, done_ns, status
        self.windows: list[tuple[float, float]] = []  # (queries/s, p99 ms)

    def stable(self, now_ns: int) -> bool:
        """Close any window that has ended; True once the last three agree."""
        if now_ns < self.next_boundary:
            return False
        lo, hi = self.next_boundary - self.window_ns, self.next_boundary
        self.next_boundary += self.window_ns
        done = np.frombuffer(self.done_ns, dtype=np.int64)
        start = np.frombuffer(self.start_ns, dtype=np.int64)[: done.size]
        ok = np.frombuffer(self.status, dtype=np.int8) == STATUS_OK
        m = ok & (done >= lo) & (done < hi)
        throughput = float(m.sum()) / self.window_s
        p99 = float(np.percentile((done[m] - start[m]) / 1e6, 99)) if m.any() else float("inf")
        del done, start, ok, m  # release the arrays' buffers so that they can grow again
        self.windows.append((throughput, p99))
        return agree(self.windows[-3:], self.tolerance)


def agree(windows: list[tuple[float, float]], tolerance: float) -> bool:
    """Whether three windows agree within ``tolerance`` on throughput and on p99."""
    if len(windows) < 3:
        return False
    for k in (0, 1):
        values = [w[k] for w in windows]
        if min(values) <= 0 or not np.isfinite(values).all() or max(values) / min(values) - 1 > tolerance:
            return False
    return True
