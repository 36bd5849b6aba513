"""Statistics from raw per-query data: merged exactly across clients, never from buckets.

Every number comes from the raw arrays the clients wrote. Percentiles of several clients are
taken over their concatenated latencies, never averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .spec import STATUS_DEFAULT, STATUS_ERROR, STATUS_NO_ANSWER, STATUS_OK

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
WINDOW_COMPLETIONS = 50


@dataclass
class ClientData:
    """One client's raw data, with times on the wall clock (ns since the epoch).

    ``start_wall_ns`` is when each query was due: its scheduled time in open loop, its send time in
    closed loop. Latency and window membership count from it.
    """

    client_index: int
    send_wall_ns: np.ndarray
    done_wall_ns: np.ndarray  # -1 where unanswered
    status: np.ndarray
    start_wall_ns: np.ndarray | None = None
    stopped_wall_ns: int | None = None  # stop-when-stable: when this client stopped sending
    stable_windows: list | None = None  # stop-when-stable: (queries/s, p99 ms) per window

    def __post_init__(self) -> None:
        if self.start_wall_ns is None:
            self.start_wall_ns = self.send_wall_ns

    @classmethod
    def from_npz(cls, path: str) -> ClientData:
        with np.load(path, allow_pickle=False) as data:
            offset = int(data["anchor_wall_ns"]) - int(data["anchor_perf_ns"])
            send = data["send_ns"] + offset
            done = np.where(data["done_ns"] >= 0, data["done_ns"] + offset, -1)
            start = data["scheduled_ns"] + offset if "scheduled_ns" in data else send
            stopped = int(data["stopped_ns"]) if "stopped_ns" in data else -1
            windows = data["stable_windows"].tolist() if "stable_windows" in data else None
            return cls(int(data["client_index"]), send, done, data["status"].copy(), start,
                       stopped + offset if stopped >= 0 else None, windows)

    def measured(self, window: tuple[int, int]) -> np.ndarray:
        """Mask of queries due inside the measurement window."""
        return (self.start_wall_ns >= window[0]) & (self.start_wall_ns < window[1])


def latency_stats_ms(latencies_ms: np.ndarray) -> dict[str, float | None]:
    """Mean, percentiles and max of latencies in ms (None for each when there are none)."""
    if latencies_ms.size == 0:
        return {"mean": None, **dict.fromkeys(PERCENTILES), "max": None}
    values = np.percentile(latencies_ms, list(PERCENTILES.values()))
    out: dict[str, float | None] = {"mean": float(latencies_ms.mean())}
    out.update({k: float(v) for k, v in zip(PERCENTILES, values, strict=True)})
    out["max"] = float(latencies_ms.max())
    return out


def summarize(clients: Sequence[ClientData], window: tuple[int, int]) -> dict:
    """The configuration's summary over the measurement window ``[start_ns, end_ns)``."""
    duration_s = (window[1] - window[0]) / 1e9
    latencies, done_ok, statuses = [], [], []
    for c in clients:
        m = c.measured(window)
        status = c.status[m]
        ok = status == STATUS_OK
        latencies.append((c.done_wall_ns[m][ok] - c.start_wall_ns[m][ok]) / 1e6)
        statuses.append(status)
        answered = c.status == STATUS_OK
        done_ok.append(c.done_wall_ns[answered])
    lat = np.concatenate(latencies) if latencies else np.empty(0)
    status = np.concatenate(statuses) if statuses else np.empty(0, dtype=np.int8)
    done = np.concatenate(done_ok) if done_ok else np.empty(0, dtype=np.int64)
    completed_in_window = int(((done >= window[0]) & (done < window[1])).sum())
    return {
        "duration_s": duration_s,
        "num_sent": int(status.size),
        "num_completed": int((status == STATUS_OK).sum()),
        "num_defaults": int((status == STATUS_DEFAULT).sum()),
        "num_errors": int(((status == STATUS_ERROR) | (status == STATUS_NO_ANSWER)).sum()),
        "num_unanswered": int((status == STATUS_NO_ANSWER).sum()),
        "throughput_qps": completed_in_window / duration_s if duration_s > 0 else None,
        "latency_ms": latency_stats_ms(lat),
    }


def lateness_stats(clients: Sequence[ClientData], window: tuple[int, int]) -> dict:
    """How late the generator itself sent (send - scheduled), over queries due in the window.

    ``kept_up`` is False when more than 1% of queries left over 1 ms late: the offered load was
    then lower than asked, and the record says so.
    """
    late = np.concatenate([(c.send_wall_ns - c.start_wall_ns)[c.measured(window)] for c in clients]) / 1e6
    if late.size == 0:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "share_over_1ms": None, "kept_up": None}
    share = float((late > 1.0).mean())
    return {
        "p50_ms": float(np.percentile(late, 50)),
        "p99_ms": float(np.percentile(late, 99)),
        "max_ms": float(late.max()),
        "share_over_1ms": share,
        "kept_up": share <= 0.01,
    }


def window_metrics(client: ClientData, window: tuple[int, int], every: int = WINDOW_COMPLETIONS) -> dict:
    """The original driver's per-client lists: every ``every`` completions, the throughput,
    p99 and mean latency (ms) of those completions."""
    m = client.measured(window) & (client.status == STATUS_OK)
    done = client.done_wall_ns[m]
    lat = (done - client.start_wall_ns[m]) / 1e6
    order = np.argsort(done, kind="stable")
    done, lat = done[order], lat[order]
    thrus, p99s, means = [], [], []
    prev_end = window[0]
    for start in range(0, len(done) - every + 1, every):
        chunk_done = done[start:start + every]
        chunk_lat = lat[start:start + every]
        elapsed_s = (int(chunk_done[-1]) - prev_end) / 1e9
        prev_end = int(chunk_done[-1])
        thrus.append(every / elapsed_s if elapsed_s > 0 else None)
        p99s.append(float(np.percentile(chunk_lat, 99)))
        means.append(float(chunk_lat.mean()))
    return {"thrus": thrus, "p99_lats": p99s, "mean_lats": means}
