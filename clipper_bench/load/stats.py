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
SITE_TEXT = ("node_id", "node_ip", "hostname")  # where a client on a Ray cluster ran ...
SITE_NS = ("clock_offset_ns", "clock_rtt_ns")  # ... and its clock against the driver's


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
    drain_s: float | None = None  # how long the client waited for answers after it stopped sending
    drain_silence_limit_s: float | None = None  # the silence that would have ended that wait
    site: dict | None = None  # a client on a Ray cluster: its node and clock offset (see load.ray_clients)

    def __post_init__(self) -> None:
        if self.start_wall_ns is None:
            self.start_wall_ns = self.send_wall_ns

    @classmethod
    def from_npz(cls, path: str) -> ClientData:
        """Read a client's raw data file, its perf-counter times moved onto the wall clock."""
        with np.load(path, allow_pickle=False) as data:
            offset = int(data["anchor_wall_ns"]) - int(data["anchor_perf_ns"])
            send = data["send_ns"] + offset
            done = np.where(data["done_ns"] >= 0, data["done_ns"] + offset, -1)
            start = data["scheduled_ns"] + offset if "scheduled_ns" in data else send
            stopped = int(data["stopped_ns"]) if "stopped_ns" in data else -1
            windows = data["stable_windows"].tolist() if "stable_windows" in data else None
            drain = float(data["drain_ns"]) / 1e9 if "drain_ns" in data else None
            limit = float(data["drain_silence_limit_ns"]) / 1e9 if "drain_silence_limit_ns" in data else None
            site = {"client_index": int(data["client_index"]),
                    **{k: str(data[k]) for k in SITE_TEXT if k in data},
                    **{k: int(data[k]) for k in SITE_NS if k in data}} if "node_id" in data else None
            return cls(int(data["client_index"]), send, done, data["status"].copy(), start,
                       stopped + offset if stopped >= 0 else None, windows, drain, limit, site)

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


def summarize(clients: Sequence[ClientData], window: tuple[int, int], slo_ms: float | None = None) -> dict:
    """The configuration's summary over the measurement window ``[start_ns, end_ns)``.

    Only queries due inside the window count: throughput is their successful answers per second of
    window (answers to warm-up queries never count, whenever they arrive), and latency, errors,
    SLO defaults and unanswered queries are theirs. ``num_errors`` counts queries answered with an
    error; queries still out when the drain ended are ``num_unanswered``, apart. Goodput (with
    ``slo_ms``): the successful answers within the SLO, as a share of the queries sent in the window
    (``goodput``) and per second (``goodput_qps``).
    """
    duration_s = (window[1] - window[0]) / 1e9
    latencies, statuses = [], []
    for c in clients:
        m = c.measured(window)
        status = c.status[m]
        ok = status == STATUS_OK
        latencies.append((c.done_wall_ns[m][ok] - c.start_wall_ns[m][ok]) / 1e6)
        statuses.append(status)
    lat = np.concatenate(latencies) if latencies else np.empty(0)
    status = np.concatenate(statuses) if statuses else np.empty(0, dtype=np.int8)
    completed = int((status == STATUS_OK).sum())
    good = int((lat <= slo_ms).sum()) if slo_ms is not None else None
    return {
        "duration_s": duration_s,
        "num_sent": int(status.size),
        "num_completed": completed,
        "num_defaults": int((status == STATUS_DEFAULT).sum()),
        "num_errors": int((status == STATUS_ERROR).sum()),
        "num_unanswered": int((status == STATUS_NO_ANSWER).sum()),
        "throughput_qps": completed / duration_s if duration_s > 0 else None,
        "goodput": good / status.size if good is not None and status.size else None,
        "goodput_qps": good / duration_s if good is not None and duration_s > 0 else None,
        "latency_ms": latency_stats_ms(lat),
        "drain": drain_stats(clients),
    }


def drain_stats(clients: Sequence[ClientData]) -> dict:
    """How long the clients waited for answers after they stopped sending, and what limit ended it."""
    waited = [c.drain_s for c in clients if c.drain_s is not None]
    limits = [c.drain_silence_limit_s for c in clients if c.drain_silence_limit_s is not None]
    return {
        "waited_s": max(waited) if waited else None,
        "silence_limit_s": max(limits) if limits else None,
        "unanswered_total": int(sum(int((c.status == STATUS_NO_ANSWER).sum()) for c in clients)),
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


def window_metrics(client: ClientData, window: tuple[int, int], every: int = WINDOW_COMPLETIONS,
                   all_lats: bool = True) -> dict:
    """The original driver's per-client lists, in its units: every ``every`` successful answers to
    queries due in the window, their throughput (``thrus``, queries/s), p99 and mean latency
    (``p99_lats``, ``mean_lats``, seconds) and, with ``all_lats``, their raw latencies (seconds)."""
    m = client.measured(window) & (client.status == STATUS_OK)
    done = client.done_wall_ns[m]
    lat = (done - client.start_wall_ns[m]) / 1e9
    order = np.argsort(done, kind="stable")
    done, lat = done[order], lat[order]
    out: dict[str, list] = {"thrus": [], "p99_lats": [], "mean_lats": []}
    if all_lats:
        out["all_lats"] = []
    prev_end = window[0]
    for start in range(0, len(done) - every + 1, every):
        chunk_done = done[start:start + every]
        chunk_lat = lat[start:start + every]
        elapsed_s = (int(chunk_done[-1]) - prev_end) / 1e9
        prev_end = int(chunk_done[-1])
        out["thrus"].append(every / elapsed_s if elapsed_s > 0 else None)
        out["p99_lats"].append(float(np.percentile(chunk_lat, 99)))
        out["mean_lats"].append(float(chunk_lat.mean()))
        if all_lats:
            out["all_lats"].append(chunk_lat.tolist())
    return out
