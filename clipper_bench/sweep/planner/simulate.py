"""The estimator: a discrete-event simulation of a pipeline (or one model) under an arrival process.

Each stage is a FIFO queue in front of ``replicas`` servers. A free replica takes every queued
query up to its batch size at once, as the engine's dispatcher does, and holds the batch for the
stage's measured service time for that batch size. A query enters every entry stage on arrival,
moves to a stage's children when its batch there ends (plus ``hop_s``, the frontend's hand-off and
RPC), and is done when every sink stage has answered. Arrivals are the load generator's own
(``load.arrivals.schedule_ns``, same seed), so the simulation replays the arrival process the
validation will send.

Our own ~80 lines rather than SimPy or Ciw: the model is one event type (a batch ends) over FIFO
queues with batch service, which neither library offers directly (Ciw has no batch service;
SimPy would need processes and resources for what a heap and a few deques do), and it runs about
100k queries a second, which keeps the planner's search fast.

Assumptions (docs/planner.md): service times are the measured means for the batch formed (their
spread is not modelled); what replicas of a stage cost each other is in the service time the caller
passes (read from the profile at the stage's replica count, profiles.py); the frontend and network
add a constant ``hop_s`` per stage.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimStage:
    """One stage as the simulation sees it."""

    name: str
    children: tuple[str, ...]
    replicas: int
    batch_size: int
    service_s: Callable[[int], float]  # a batch of k queries takes this long


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
             window: tuple[float, float], hop_s: float = 0.0, batches_in_flight: int = 2) -> SimResult:
    """Run the queries arriving at ``arrivals_s`` through ``stages``; latencies of those due in ``window``.

    As the engine's dispatcher does, each replica is sent up to ``batches_in_flight`` batches: a batch
    is formed (every queued query up to the batch size) as soon as a replica has room for one, and
    the replica works through its batches one after the other."""
    sim = _Sim(stages, hop_s, batches_in_flight)
    nxt = 0
    while nxt < arrivals_s.size or sim.events:
        if nxt < arrivals_s.size and (not sim.events or arrivals_s[nxt] <= sim.events[0][0]):
            for e in entries:
                sim.arrive(e, nxt, float(arrivals_s[nxt]))
            nxt += 1
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


class _Sim:
    """The simulation's state: queues, replicas (when each is free, how many batches it holds), events."""

    def __init__(self, stages: list[SimStage], hop_s: float, batches_in_flight: int) -> None:
        self.stages = {s.name: s for s in stages}
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

    def arrive(self, name: str, q: int, now: float) -> None:
        self.queues[name].append(q)
        self.dispatch(name, now)

    def dispatch(self, name: str, now: float) -> None:
        stage, queue, held = self.stages[name], self.queues[name], self.held[name]
        while queue:
            room = [r for r in range(stage.replicas) if held[r] < self.room]
            if not room:
                return
            r = min(room, key=lambda i: (held[i], self.free_at[name][i]))
            take = [queue.popleft() for _ in range(min(stage.batch_size, len(queue)))]
            took = stage.service_s(len(take))
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
        for q in took:
            for child in children:
                self.arrive(child, q, now + self.hop_s)
            if not children:
                self.left[q] = self.left.get(q, len(self.sinks)) - 1
                if self.left[q] == 0:
                    self.done_at[q] = now + self.hop_s
        self.dispatch(name, now)

    def finished(self, n: int) -> np.ndarray:
        out = np.full(n, np.nan)
        for q, t in self.done_at.items():
            out[q] = t
        return out
