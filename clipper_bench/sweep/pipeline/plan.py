"""Where every stage's replicas run in one pipeline configuration: cores in stage order, GPUs as given."""

from __future__ import annotations

from ...server.manager import Placement
from ..plan import CorePlan
from .spec import PipelineError, PipelineSpec, StageConfig


def stage_placements(spec: PipelineSpec, config: dict[str, StageConfig], plan: CorePlan,
                     oversubscribe: bool, gpu_count: int) -> dict[str, list[Placement]]:
    """Each stage's replica placements: consecutive cores of the plan's replica cores, stage after
    stage in file order (with ``oversubscribe``, wrapping around when they run out); replica i of a
    stage gets the stage's ``gpus[i]``. PipelineError when they do not fit."""
    cores = list(plan.model_cpus)
    need = sum(c.replicas * c.cpus_per_replica for c in config.values())
    if need > len(cores) and not oversubscribe:
        detail = ", ".join(f"{name} {c.replicas}x{c.cpus_per_replica}" for name, c in config.items())
        raise PipelineError(
            f"this configuration's replicas need {need} cores ({detail}) but {len(cores)} are free for "
            f"replicas ({','.join(map(str, cores))}): ask for fewer, or pass --oversubscribe to let them share"
        )
    out: dict[str, list[Placement]] = {}
    next_core = 0
    for stage in spec.stages:
        c = config[stage.name]
        if stage.gpus and len(stage.gpus) < c.replicas:
            raise PipelineError(f"stage '{stage.name}' runs {c.replicas} replicas but lists {len(stage.gpus)} "
                                "GPUs: give one GPU index per replica (repeat an index to share a GPU)")
        missing = [g for g in stage.gpus if g >= gpu_count]
        if missing:
            raise PipelineError(f"stage '{stage.name}' asks for GPU {missing[0]}, but this machine has "
                                f"{gpu_count} GPU(s): drop 'gpus' to run it on CPU cores")
        places = []
        for i in range(c.replicas):
            mine = tuple(sorted({cores[(next_core + k) % len(cores)] for k in range(c.cpus_per_replica)})) if cores else ()
            next_core += c.cpus_per_replica
            places.append(Placement(mine, stage.gpus[i] if stage.gpus else None))
        out[stage.name] = places
    return out
