"""The search: every combination of per-stage replicas, batch size and cores, cheapest first, until
the estimator says one meets the SLO.

Plans are ordered by the objective (``gpus``, ``cores``, ``replicas`` or ``energy``; ties broken by
the others in that order). A plan whose stage the rate would load beyond ``max_utilisation`` of
its full-batch capacity (replicas x batch / service time) or that needs more cores than there are is rejected without simulating;
the rest are simulated in cost order, so the first that meets the SLO is the cheapest that does.
The one just cheaper than it is kept with why it fails. The space is small for the pipelines here
(a few thousand plans; most fail the capacity check), so this exhaustive walk is exact where
InferLine's greedy one is a heuristic.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..pipeline.spec import PipelineSpec, Stage
from .objectives import OBJECTIVES
from .profiles import Profile, ProfileError, profile_for
from .simulate import SimResult, SimStage, simulate

MAX_PLANS = 500_000
MAX_SIMULATED = 400


@dataclass(frozen=True)
class StageChoice:
    """One stage's part of a plan."""

    replicas: int
    batch_size: int
    cpus_per_replica: int
    gpu: bool
    profile: Profile

    def service_s(self, batch: float) -> float:
        """A batch of ``batch`` queries' service time on one of this stage's replicas, read at its
        replica count (replicas that share a GPU or a memory system slow each other)."""
        return self.profile.service_s(batch, self.replicas)[0]

    def capacity_qps(self) -> float:
        """The most this stage can serve: full batches back to back on every replica."""
        return self.replicas * self.batch_size / self.service_s(self.batch_size)

    def joules_per_query(self) -> float | None:
        """The profile's energy per query at this batch size (at the nearest measured replica count)."""
        return self.profile.joules_per_query(self.batch_size, self.replicas)


@dataclass
class Target:
    """What the plan must serve: the arrivals, the SLO, the resources, the objective."""

    rate_qps: float
    arrivals_s: np.ndarray  # the load generator's own arrivals over warm-up plus window
    window: tuple[float, float]
    slo_ms: float
    objective: str = "gpus"
    cores: int = 1 << 30
    oversubscribe: bool = True
    max_replicas: int = 8
    hop_s: float = 0.0005
    max_utilisation: float = 0.85  # the most of a stage's full-batch capacity the rate may take


@dataclass
class SearchResult:
    """The plan found (None when none meets the SLO), the one just cheaper and why it fails."""

    plan: dict[str, StageChoice] | None
    predicted: SimResult | None
    cheaper: dict[str, Any] | None  # {"plan": ..., "why": ...}
    evaluated: int
    simulated: int
    seconds: float
    limiting_stage: str | None = None
    notes: list[str] = field(default_factory=list)


def stage_options(stage: Stage, profiles: list[Profile], max_replicas: int) -> list[StageChoice]:
    """Every (replicas, batch size, cores) a stage may take: its measured batch sizes and core counts.
    Profiles measured under a GPU power limit are left out (a plan deploys at the default limit)."""
    device = "gpu" if stage.gpus else "cpu"
    found = [p for p in profile_for(profiles, stage.model, stage.options, device) if p.gpu_power_limit_w is None]
    if not found:
        raise ProfileError(f"stage {stage.name}: {stage.model} was measured only under GPU power limits; a plan "
                           "deploys at the default limit: measure it without --gpu_power_limits")
    variants = {json.dumps(p.options, sort_keys=True) for p in found}
    if len(variants) > 1:
        raise ProfileError(f"stage {stage.name}: the experiments hold {stage.model} with different options "
                           f"({'; '.join(sorted(variants))}): name the stage's in its options (or, with -m, give the model's flag)")
    return [StageChoice(r, b, p.cpus_per_replica, device == "gpu", p)
            for p in found for b in p.batch_sizes
            for r in ([p.replicas] if p.replicas else range(1, max_replicas + 1))
            if r <= max_replicas and (not stage.gpus or r <= len(stage.gpus))]


def cost(plan: dict[str, StageChoice], objective: str) -> tuple:
    """The plan's cost: the objective first, then the others in OBJECTIVES' order."""
    values = {
        "gpus": sum(c.replicas for c in plan.values() if c.gpu),
        "cores": sum(c.replicas * c.cpus_per_replica for c in plan.values()),
        "replicas": sum(c.replicas for c in plan.values()),
        "energy": sum(c.joules_per_query() or 0.0 for c in plan.values()),
    }
    return (values[objective], *(values[o] for o in OBJECTIVES if o != objective))


def predict(spec: PipelineSpec, plan: dict[str, StageChoice], target: Target) -> SimResult:
    """The estimator's end-to-end prediction for ``plan`` under ``target``'s arrivals."""
    stages = [SimStage(s.name, tuple(spec.children(s.name)), plan[s.name].replicas, plan[s.name].batch_size,
                       plan[s.name].service_s, plan[s.name].profile.service_cv()) for s in spec.stages]
    return simulate(stages, tuple(s.name for s in spec.entries), target.arrivals_s, target.window, target.hop_s,
                    gather_s=target.hop_s)


def search(spec: PipelineSpec, profiles: list[Profile], target: Target, coarse: bool = False) -> SearchResult:
    """The cheapest plan the estimator says meets the SLO (with ``coarse``, only plans that give every
    stage the same replica count: the whole pipeline provisioned as one unit)."""
    t0 = time.monotonic()
    options = [stage_options(s, profiles, target.max_replicas) for s in spec.stages]
    total = int(np.prod([len(o) for o in options], dtype=float))
    if total > MAX_PLANS:
        raise ProfileError(f"{total:,} plans to consider: too many; lower --max_replicas or measure fewer batch sizes")
    plans = [dict(zip([s.name for s in spec.stages], combo, strict=True)) for combo in itertools.product(*options)]
    if coarse:
        plans = [p for p in plans if len({c.replicas for c in p.values()}) == 1]
    plans.sort(key=lambda p: cost(p, target.objective))
    result = SearchResult(None, None, None, len(plans), 0, 0.0)
    for plan in plans:
        why, limiting = _rejected(plan, target)
        if why is None:
            if result.simulated >= MAX_SIMULATED:
                result.notes.append(f"stopped after simulating {MAX_SIMULATED} plans")
                break
            result.simulated += 1
            predicted = predict(spec, plan, target)
            if predicted.percentile_ms(99) <= target.slo_ms:
                result.plan, result.predicted = plan, predicted
                break
            limiting = max(predicted.utilisation, key=predicted.utilisation.get)
            why = (f"predicted p99 {predicted.percentile_ms(99):,.1f} ms > {target.slo_ms:g} ms; busiest stage "
                   f"{limiting} ({100 * predicted.utilisation[limiting]:.0f}% of the time holding a batch)")
        result.cheaper, result.limiting_stage = {"plan": plan, "why": why}, limiting
    result.seconds = time.monotonic() - t0
    return result


def _rejected(plan: dict[str, StageChoice], target: Target) -> tuple[str | None, str | None]:
    """Why a plan cannot work without simulating it (capacity, cores), and the stage at fault."""
    cores = sum(c.replicas * c.cpus_per_replica for c in plan.values())
    if cores > target.cores and not target.oversubscribe:
        return f"needs {cores} cores, {target.cores} are free for replicas", None
    for name, c in plan.items():
        if c.capacity_qps() * target.max_utilisation < target.rate_qps:
            return (f"stage {name} serves at most {c.capacity_qps():,.1f} q/s with {c.replicas} replica(s) at "
                    f"batch {c.batch_size}: {target.rate_qps:g} q/s would take "
                    f"{100 * target.rate_qps / c.capacity_qps():.0f}% of it (bound "
                    f"{100 * target.max_utilisation:.0f}%)"), name
    return None, None
