"""The estimator: a discrete-event simulation of a pipeline (or one model) under an arrival process.

Each stage is a FIFO queue in front of ``replicas`` servers. A free replica takes every queued
query up to its batch size at once, as the engine's dispatcher does, and holds the batch for the
stage's measured service time for that batch size. A query enters every entry stage on arrival,
moves to a stage's children when its batch there ends (plus ``hop_s``, the frontend's hand-off and
RPC), and is done when every sink stage has answered. As the frontend reads every message waiting
on its socket before it dispatches, queries arriving within ``gather_s`` of each other are queued
together before a batch is formed, and a batch's answers reach the next stage together. Arrivals are the load generator's own
(``load.arrivals.schedule_ns``, same seed), so the simulation replays the arrival process the
validation will send.

Our own ~80 lines rather than SimPy or Ciw: the model is one event type (a batch ends) over FIFO
queues with batch service, which neither library offers directly (Ciw has no batch service;
SimPy would need processes and resources for what a heap and a few deques do), and it runs about
100k queries a second, which keeps the planner's search fast.

Service times spread: each batch's time is the profile's mean for the batch formed times a
lognormal factor of mean 1 and the profile's spread (``SimStage.cv``, from the engine's batch-latency
histogram, profiles.py). Slow spells persist (a replica slowed by what else runs on the machine stays
slow for a while), so each replica's factor follows an AR(1) process over its batches with lag-1
correlation ``PERSISTENCE``: independent draws made the stage's slow spells too short and its p99
too low near saturation, where a batching stage's latency grows steeply with its service time.

Assumptions (docs/planner.md): what replicas of a stage cost each other is in the service time the caller
passes (read from the profile at the stage's replica count, profiles.py); the frontend and network
add a constant ``hop_s`` per stage.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# lag-1 correlation of a replica's successive service-time factors. The H200 profiles' closed loops
# imply 0.24-0.86 (median 0.67) from how much their 1-s throughput varied against their per-batch
# spread; the H200 pipeline traces measured 0.43-0.55 for KPCA-SVM batches in start order.
PERSISTENCE = 0.6


@dataclass(frozen=True)
class SimStage:
    """One stage as the simulation sees it."""

    name: str
    children: tuple[str, ...]
    replicas: int
    batch_size: int
    service_s: Callable[[int], float]  # a batch of k queries takes this long (on average)
    cv: float = 0.0  # the spread (std / mean) of one batch's service time


@dataclass
class SimResult:
    """End-to-end latency of every query due in the window, and each stage's load."""

    latencies_s: np.ndarray
    window_s: float
    utilisation: dict[str, float]
    mean_batch: dict[str, float]

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile of end-to-end latency, in ms."""
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s.size else float("inf")

    def goodput(self, slo_s: float) -> float:
        """The share of the window's queries answered within ``slo_s``."""
        return float((self.latencies_s <= slo_s).mean()) if self.latencies_s.size else 0.0


def simulate(stages: list[SimStage], entries: tuple[str, ...], arrivals_s: np.ndarray,
             window: tuple[float, float], hop_s: float = 0.0, batches_in_flight: int = 2,
             persistence: float = PERSISTENCE, seed: int = 0, gather_s: float = 0.0) -> SimResult:
    """Run the queries arriving at ``arrivals_s`` through ``stages``; latencies of those due in ``window``.

    As the engine's dispatcher does, each replica is sent up to ``batches_in_flight`` batches: a batch
    is formed (every queued query up to the batch size) as soon as a replica has room for one, and
    the replica works through its batches one after the other. Queries arriving within ``gather_s``
    of the first still waiting are queued before any batch is formed (the frontend reads what is
    waiting first). A stage with ``cv`` draws each batch's time around its mean (see the module's
    docstring), from ``seed``."""
    sim = _Sim(stages, hop_s, batches_in_flight, _Spread(stages, persistence, seed))
    nxt = 0
    while nxt < arrivals_s.size or sim.events:
        if nxt < arrivals_s.size and (not sim.events or arrivals_s[nxt] <= sim.events[0][0]):
            nxt = _arrive_together(sim, entries, arrivals_s, nxt, gather_s)
        else:
            sim.batch_done()
    finished = sim.finished(arrivals_s.size)
    due = (arrivals_s >= window[0]) & (arrivals_s < window[1])
    done = finished[np.isfinite(finished)]
    span = max(float(done.max() - arrivals_s[0]), 1e-9) if done.size else 1.0
    return SimResult(
        latencies_s=(finished - arrivals_s)[due], window_s=window[1] - window[0],
        utilisation={n: sim.busy[n] / (span * st.replicas) for n, st in sim.stages.items()},
        mean_batch={n: (b[1] / b[0] if b[0] else 0.0) for n, b in sim.batches.items()},
    )


def _arrive_together(sim: _Sim, entries: tuple[str, ...], arrivals_s: np.ndarray, nxt: int,
                     gather_s: float) -> int:
    """Queue query ``nxt`` and every later one arriving within ``gather_s`` of it, then dispatch
    once at the last one's arrival; returns the next query not yet arrived."""
    last = nxt
    limit = arrivals_s[nxt] + gather_s
    while last + 1 < arrivals_s.size and arrivals_s[last + 1] <= limit:
        last += 1
    now = float(arrivals_s[last])
    for q in range(nxt, last + 1):
        for e in entries:
            sim.queues[e].append(q)
    for e in entries:
        sim.dispatch(e, now)
    return last + 1


class _Spread:
    """Each replica's service-time factor: lognormal with mean 1 and its stage's cv, following an
    AR(1) process over the replica's batches (lag-1 correlation ``persistence``)."""

    def __init__(self, stages: list[SimStage], persistence: float, seed: int) -> None:
        self.rng = np.random.default_rng(seed + 7919)
        self.rho = persistence
        self.sigma = {s.name: float(np.sqrt(np.log1p(s.cv * s.cv))) for s in stages}
        self.state = {s.name: self.rng.standard_normal(s.replicas) for s in stages}

    def factor(self, name: str, replica: int) -> float:
        """The next batch's factor on ``replica`` of stage ``name`` (1.0 when the stage has no spread)."""
        sigma = self.sigma[name]
        if sigma == 0.0:
            return 1.0
        z = self.state[name]
        z[replica] = self.rho * z[replica] + np.sqrt(1 - self.rho * self.rho) * self.rng.standard_normal()
        return float(np.exp(sigma * z[replica] - sigma * sigma / 2))


class _Sim:
    """The simulation's state: queues, replicas (when each is free, how many batches it holds), events."""

    def __init__(self, stages: list[SimStage], hop_s: float, batches_in_flight: int, spread: _Spread) -> None:
        self.stages, self.spread = {s.name: s for s in stages}, spread
        self.hop_s, self.room = hop_s, batches_in_flight
        self.queues = {s.name: deque() for s in stages}
        self.free_at = {s.name: [0.0] * s.replicas for s in stages}
        self.held = {s.name: [0] * s.replicas for s in stages}
        self.busy = dict.fromkeys(self.stages, 0.0)
        self.batches = {s: [0, 0] for s in self.stages}
        self.sinks = [s.name for s in stages if not s.children]
        self.left: dict[int, int] = {}
        self.done_at: dict[int, float] = {}
        self.events: list = []  # (time the batch ends, seq, stage, replica, queries)
        self.seq = 0

    def dispatch(self, name: str, now: float) -> None:
        stage, queue, held = self.stages[name], self.queues[name], self.held[name]
        while queue:
            room = [r for r in range(stage.replicas) if held[r] < self.room]
            if not room:
                return
            r = min(room, key=lambda i: (held[i], self.free_at[name][i]))
            take = [queue.popleft() for _ in range(min(stage.batch_size, len(queue)))]
            took = stage.service_s(len(take)) * self.spread.factor(name, r)
            begin = max(now, self.free_at[name][r])
            self.free_at[name][r] = begin + took
            held[r] += 1
            self.busy[name] += took
            self.batches[name][0] += 1
            self.batches[name][1] += len(take)
            self.seq += 1
            heapq.heappush(self.events, (begin + took, self.seq, name, r, take))

    def batch_done(self) -> None:
        now, _, name, r, took = heapq.heappop(self.events)
        self.held[name][r] -= 1
        children = self.stages[name].children
        self.dispatch(name, now)  # the replica's next batch leaves before this one's answers
        for q in took:
            for child in children:
                self.queues[child].append(q)
            if not children:
                self.left[q] = self.left.get(q, len(self.sinks)) - 1
                if self.left[q] == 0:
                    self.done_at[q] = now + self.hop_s
        for child in children:  # a batch's answers reach a child stage together
            self.dispatch(child, now + self.hop_s)

    def finished(self, n: int) -> np.ndarray:
        out = np.full(n, np.nan)
        for q, t in self.done_at.items():
            out[q] = t
        return out
