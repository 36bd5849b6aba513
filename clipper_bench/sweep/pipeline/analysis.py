"""Where a pipeline query's time goes, per stage, from the frontend's trace of every stage pass.

The trace (see ``clipper_bench.server.pipeline``) has one row per query per stage: when it was
queued, when the batch it rode in went to a replica, when that batch was answered, the batch's size
and the replica. Times are on the frontend's clock; ``anchor`` turns them into wall-clock seconds.
Only passes of queries queued inside the measurement window count.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def stage_breakdown(trace: dict[str, Any], window_s: tuple[float, float], replicas: dict[str, int]) -> dict[str, Any]:
    """Per stage: passes, queueing and service time (ms), the mean batch size it achieved, its
    replicas' utilisation; and the bottleneck stage (the most utilised)."""
    offset = trace["anchor_wall"] - trace["anchor_perf"]
    queued = np.asarray(trace["queued_at"], dtype=float) + offset
    sent = np.asarray([np.nan if v is None else v for v in trace["sent_at"]], dtype=float) + offset
    done = np.asarray(trace["done_at"], dtype=float) + offset
    stages = np.asarray(trace["stage"], dtype=object)
    batch = np.asarray(trace["batch_size"], dtype=int)
    replica = np.asarray(trace["replica"], dtype=int)
    inside = (queued >= window_s[0]) & (queued < window_s[1])
    out: dict[str, Any] = {}
    for name, count in replicas.items():
        m = inside & (stages == name)
        ran = m & ~np.isnan(sent)
        mine = (stages == name) & ~np.isnan(sent)
        began = _service_start(sent, done, replica, mine)
        out[name] = {
            "passes": int(m.sum()),
            "queue_ms": _stats((began[ran] - queued[ran]) * 1000),
            "service_ms": _stats((_batch_back(sent, done, replica, mine)[ran] - began[ran]) * 1000),
            "mean_batch_size": _mean_batch(sent[ran], replica[ran], batch[ran]),
            "utilisation": _utilisation(sent[ran], done[ran], replica[ran], count, window_s),
        }
    busiest = max(out, key=lambda s: out[s]["utilisation"] or 0.0) if out else None
    return {"stages": out, "bottleneck": busiest, "dropped_rows": trace.get("dropped", 0)}


def _service_start(sent: np.ndarray, done: np.ndarray, replica: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """When each pass's batch began on its replica: when it was sent, or, if the replica was still on
    its previous batch (a second batch in flight waits in the replica), when that one came back.
    A batch is one replica's one send time; it came back when its first answer was handled.
    Queueing time then includes the wait inside the replica, and service time is the model's alone."""
    began = sent.copy()
    for r in np.unique(replica[mask]):
        rows = np.flatnonzero(mask & (replica == r))
        back: dict[float, float] = {}
        for i in rows:
            back[sent[i]] = min(back.get(sent[i], np.inf), done[i])
        start, free = {}, -np.inf
        for s_at in sorted(back):
            start[s_at] = max(s_at, free)
            free = max(free, back[s_at])
        for i in rows:
            began[i] = start[sent[i]]
    return began


def _batch_back(sent: np.ndarray, done: np.ndarray, replica: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """For each pass, when its batch came back (its batch's first answer handled)."""
    back = done.copy()
    firsts: dict[tuple[int, float], float] = {}
    rows = np.flatnonzero(mask)
    for i in rows:
        key = (int(replica[i]), float(sent[i]))
        firsts[key] = min(firsts.get(key, np.inf), done[i])
    for i in rows:
        back[i] = firsts[(int(replica[i]), float(sent[i]))]
    return back


def _stats(values_ms: np.ndarray) -> dict[str, float | None]:
    if values_ms.size == 0:
        return {"mean": None, "p50": None, "p99": None}
    p50, p99 = np.percentile(values_ms, [50, 99])
    return {"mean": float(values_ms.mean()), "p50": float(p50), "p99": float(p99)}


def _mean_batch(sent: np.ndarray, replica: np.ndarray, batch: np.ndarray) -> float | None:
    """Mean size over the distinct batches (one batch: one replica, one send time)."""
    if sent.size == 0:
        return None
    _, first = np.unique(np.stack([replica.astype(float), sent]), axis=1, return_index=True)
    return float(batch[first].mean())


def _utilisation(sent: np.ndarray, done: np.ndarray, replica: np.ndarray, count: int,
                 window_s: tuple[float, float]) -> float | None:
    """The share of the window the stage's replicas held a batch (union of their batches' spans,
    clipped to the window, averaged over ``count`` replicas)."""
    span = window_s[1] - window_s[0]
    if span <= 0 or count < 1:
        return None
    busy = 0.0
    for r in np.unique(replica):
        m = replica == r
        intervals = sorted(zip(np.clip(sent[m], *window_s), np.clip(done[m], *window_s), strict=True))
        end = -np.inf
        for a, b in intervals:
            if b <= end:
                continue
            busy += b - max(a, end)
            end = b
    return min(1.0, busy / (span * count))


def window_batch_sizes(trace: dict[str, Any], bounds_s: list[float]) -> list[dict[str, float | None]]:
    """The original e2e driver's per-window ``mean_batch_sizes``: for each span between consecutive
    ``bounds_s`` (wall seconds), each stage's mean batch size over the batches sent in it."""
    offset = trace["anchor_wall"] - trace["anchor_perf"]
    sent = np.asarray([np.nan if v is None else v for v in trace["sent_at"]], dtype=float) + offset
    stages = np.asarray(trace["stage"], dtype=object)
    batch = np.asarray(trace["batch_size"], dtype=int)
    replica = np.asarray(trace["replica"], dtype=int)
    out = []
    for lo, hi in zip(bounds_s, bounds_s[1:], strict=False):
        m = (sent >= lo) & (sent < hi)
        out.append({str(s): _mean_batch(sent[m & (stages == s)], replica[m & (stages == s)], batch[m & (stages == s)])
                    for s in sorted(set(trace["stage"]))})
    return out
