"""What an engine is handed by the sweep: one configuration (:class:`ConfigPoint`), the cores the
frontend, the load clients and the replicas get (:class:`CorePlan`), each replica's cores and GPU
(:func:`placements`), and the error that names a request this machine cannot honour
(:class:`PlanError`). Below the sweep, so that engines never import it: the sweep's planning
(``sweep/plan.py``) makes these, the engines read them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..server.manager import Placement


class PlanError(ValueError):
    """A request this machine cannot honour; the message says what to change."""


@dataclass(frozen=True)
class CorePlan:
    """The cores of the frontend, of the load clients and of the replicas, and what the plan says
    about them (a shared machine, say)."""

    frontend_cpus: tuple[int, ...]
    client_cpus: tuple[int, ...]
    model_cpus: tuple[int, ...]
    note: str

    def to_json(self) -> dict:
        return {
            "frontend_cpus": list(self.frontend_cpus),
            "client_cpus": list(self.client_cpus),
            "model_cpus": list(self.model_cpus),
            "note": self.note,
        }


@dataclass(frozen=True)
class ConfigPoint:
    """One configuration of the sweep, with its canonical id."""

    model_name: str
    num_replicas: int
    cpus_per_replica: int
    batch_size: int
    gpu_power_limit_w: float | None = None
    gpu_clock_mhz: int | None = None
    rate_qps: float | None = None  # open loop at this offered rate
    concurrency: int | None = None  # closed loop with this many outstanding (None: the default)

    @property
    def config_id(self) -> str:
        """``model-rR-cC-bB``, then ``-plW``, ``-clkMHZ``, ``-rateQPS`` or ``-concN`` when swept."""
        cid = f"{self.model_name}-r{self.num_replicas}-c{self.cpus_per_replica}-b{self.batch_size}"
        if self.gpu_power_limit_w is not None:
            cid += f"-pl{self.gpu_power_limit_w:g}"
        if self.gpu_clock_mhz is not None:
            cid += f"-clk{self.gpu_clock_mhz}"
        if self.rate_qps is not None:
            cid += f"-rate{self.rate_qps:g}"
        if self.concurrency is not None:
            cid += f"-conc{self.concurrency}"
        return cid


def usable_cpus() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0))


def ranges_text(cpus: list[int]) -> str:
    """Cores as a comma-separated list, for messages."""
    return ",".join(str(c) for c in cpus)


def placements(point: ConfigPoint, plan: CorePlan, gpus: tuple[int, ...], oversubscribe: bool) -> list[Placement]:
    """Cores and GPU of each replica of ``point``."""
    cpus = plan.model_cpus
    need = point.num_replicas * point.cpus_per_replica
    if need > len(cpus) and not oversubscribe:
        raise PlanError(
            f"{point.num_replicas} replicas x {point.cpus_per_replica} cores need {need} cores, "
            f"but {len(cpus)} are free for replicas ({ranges_text(list(cpus))}); "
            "ask for fewer, or pass --oversubscribe to let replicas share cores"
        )
    out = []
    for i in range(point.num_replicas):
        mine = tuple(cpus[(i * point.cpus_per_replica + k) % len(cpus)] for k in range(point.cpus_per_replica))
        out.append(Placement(tuple(sorted(set(mine))), gpus[i] if gpus else None))
    return out
