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
OVERLOAD_MARGIN = 0.10  # an open loop completing less than 90% of what it offered is overloaded
OVERLOAD_MIN_SENT = 20  # fewer queries in the window cannot tell a shortfall from its edges
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


def summarize(clients: Sequence[ClientData], window: tuple[int, int], slo_ms: float | None = None,
              rate_qps: float | None = None) -> dict:
    """The configuration's summary over the measurement window ``[start_ns, end_ns)``.

    The definitions (README, *Reading the numbers*):

    - ``throughput_qps``: successful answers that *arrived inside the window*, per second of window,
      whenever their queries were sent (``num_completed`` of them). It is what the system completed
      in the window, and cannot exceed what it can do, however much was offered.
    - ``goodput_qps``: those of them within ``slo_ms`` of their query's due time, per second.
    - ``num_sent`` and everything about latency count the queries *due inside the window*, answered
      whenever (during the drain too): latency, ``num_defaults``, ``num_errors``,
      ``num_unanswered`` (still out when the drain ended), ``num_answered_ok`` and ``goodput`` (the
      share of them answered successfully within the SLO).
    - ``rate_qps`` (open loop): the offered rate; the ``overload`` block then compares what was
      offered in the window with what was completed in it (see :func:`overload_stats`).
    """
    duration_s = (window[1] - window[0]) / 1e9
    latencies, statuses, in_window = [], [], []
    for c in clients:
        m = c.measured(window)
        status = c.status[m]
        ok = status == STATUS_OK
        latencies.append((c.done_wall_ns[m][ok] - c.start_wall_ns[m][ok]) / 1e6)
        statuses.append(status)
        in_window.append(_answered_inside(c, window))
    lat = np.concatenate(latencies) if latencies else np.empty(0)
    status = np.concatenate(statuses) if statuses else np.empty(0, dtype=np.int8)
    done_lat = np.concatenate(in_window) if in_window else np.empty(0)
    completed = int(done_lat.size)
    good = int((lat <= slo_ms).sum()) if slo_ms is not None else None
    out = {
        "duration_s": duration_s,
        "slo_ms": slo_ms,
        "num_sent": int(status.size),
        "num_completed": completed,
        "num_answered_ok": int((status == STATUS_OK).sum()),
        "num_defaults": int((status == STATUS_DEFAULT).sum()),
        "num_errors": int((status == STATUS_ERROR).sum()),
        "num_unanswered": int((status == STATUS_NO_ANSWER).sum()),
        "throughput_qps": completed / duration_s if duration_s > 0 else None,
        "goodput": good / status.size if good is not None and status.size else None,
        "goodput_qps": (int((done_lat <= slo_ms).sum()) / duration_s
                        if slo_ms is not None and duration_s > 0 else None),
        "latency_ms": latency_stats_ms(lat),
        "drain": drain_stats(clients),
    }
    out["overload"] = overload_stats(clients, window, out, rate_qps) if rate_qps else None
    return out


def _answered_inside(client: ClientData, window: tuple[int, int]) -> np.ndarray:
    """Latencies (ms) of the client's successful answers that arrived inside ``window``."""
    m = (client.status == STATUS_OK) & (client.done_wall_ns >= window[0]) & (client.done_wall_ns < window[1])
    return (client.done_wall_ns[m] - client.start_wall_ns[m]) / 1e6


def backlog_at(clients: Sequence[ClientData], t_ns: int) -> int:
    """Queries sent before ``t_ns`` and not answered (in any way) by then, over all clients."""
    total = 0
    for c in clients:
        sent = c.send_wall_ns < t_ns
        open_ = (c.done_wall_ns < 0) | (c.done_wall_ns >= t_ns)
        total += int((sent & open_).sum())
    return total


def overload_stats(clients: Sequence[ClientData], window: tuple[int, int], summary: dict,
                   rate_qps: float) -> dict:
    """Whether an open loop offered more than the system completed inside the window.

    ``offered_qps`` is what was really sent in the window (``num_sent`` / duration; ``rate_qps``
    is the rate asked for), ``completed_qps`` the throughput. The window is ``overloaded`` when
    completions fall short of what was offered by more than ``OVERLOAD_MARGIN`` and at least
    ``OVERLOAD_MIN_SENT`` queries were sent (fewer cannot tell a shortfall from the edges of the
    window). The client-side backlog (sent, not yet answered) at both ends of the window is kept
    beside it: it grows under overload unless the frontend answers the waiting queries with the SLO
    default, which keeps it flat while completions still fall short.
    """
    duration_s = summary["duration_s"]
    sent = summary["num_sent"]
    offered = sent / duration_s if duration_s > 0 else 0.0
    completed = summary["throughput_qps"] or 0.0
    shortfall = 1.0 - completed / offered if offered > 0 else 0.0
    return {
        "rate_qps": rate_qps,
        "offered_qps": offered,
        "completed_qps": completed,
        "shortfall": shortfall,
        "margin": OVERLOAD_MARGIN,
        "backlog_start": backlog_at(clients, window[0]),
        "backlog_end": backlog_at(clients, window[1]),
        "overloaded": sent >= OVERLOAD_MIN_SENT and shortfall > OVERLOAD_MARGIN,
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
    """The original driver's per-client lists, in its units: every ``every`` successful answers that
    arrived inside the window (the answers ``throughput_qps`` counts), their throughput (``thrus``,
    queries/s), p99 and mean latency (``p99_lats``, ``mean_lats``, seconds) and, with ``all_lats``,
    their raw latencies (seconds). A last group of fewer than ``every`` answers is left out, as the
    original left it out."""
    m = (client.status == STATUS_OK) & (client.done_wall_ns >= window[0]) & (client.done_wall_ns < window[1])
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


def client_cpu_share(paths: Sequence[str]) -> float | None:
    """The largest share of one core a load client used over the window (``cpu_window_ns`` in its
    raw file, see ``client.CpuWindow``): the generator's headroom is that of its busiest client.
    None when no client recorded its CPU time (raw files written before it was recorded, or load
    that ended before the window began)."""
    shares = []
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            window = data["cpu_window_ns"].tolist() if "cpu_window_ns" in data else []
        if len(window) == 4 and window[2] > window[0]:
            shares.append((window[3] - window[1]) / (window[2] - window[0]))
    return max(shares) if shares else None
