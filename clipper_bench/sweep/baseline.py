"""Raw in-process baselines and the serving efficiency they give each served configuration."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common.pinning import CPUS_ENV, format_cpu_list
from ..common.processes import python_module_argv, reap, spawn
from ..engine.manager import Placement
from .settings import RunSettings


class BaselineError(RuntimeError):
    """The baseline process failed; the message names its log."""


def device_of(placement: Placement) -> str:
    """``cpu``, or ``gpu<N>`` for a placement on GPU N."""
    return "cpu" if placement.gpu is None else f"gpu{placement.gpu}"


def run_baseline(
    settings: RunSettings, placement: Placement, batch_sizes: Sequence[int], work_dir: Path, tag: str
) -> list[dict[str, Any]]:
    """Measure the model in a process pinned like a replica; return one record per batch size."""
    import os

    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path = work_dir / f"baseline-{tag}.json"
    out_path = work_dir / f"baseline-{tag}.out.json"
    spec_path.write_text(json.dumps({
        "model_name": settings.model_name,
        "options": settings.model_options(),
        "batch_sizes": list(batch_sizes),
        "warmup_s": min(settings.warmup_s, 5.0) if settings.warmup_s else 1.0,
        "duration_s": settings.baseline_s,
    }))
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = "" if placement.gpu is None else str(placement.gpu)
    if placement.cpus:
        env[CPUS_ENV] = format_cpu_list(placement.cpus)
    else:
        env.pop(CPUS_ENV, None)
    child = spawn(f"baseline {tag}", python_module_argv("clipper_bench.containers.baseline", str(spec_path), str(out_path)),
                  work_dir / f"baseline-{tag}.log", env=env)
    try:
        code = child.popen.wait()
    finally:
        reap([child])
    if code != 0 or not out_path.exists():
        raise BaselineError(f"baseline of {settings.model_name} failed (exit {code}); see {child.log_path}: {child.log_tail(1)}")
    out = json.loads(out_path.read_text())
    return [
        {
            "model_name": settings.model_name,
            "framework": settings.framework,
            "precision": settings.precision,
            "device": device_of(placement),
            "cpus": out["cpus"],
            "cpus_per_replica": len(placement.cpus) if placement.cpus else None,
            "measured_at": time.time(),
            **r,
        }
        for r in out["results"]
    ]


def baseline_key(model: str, framework: str, precision: str, device: str, batch_size: int) -> tuple:
    """The key a baseline record is matched by: model, framework, precision, device and batch size."""
    return (model, framework, precision, device, batch_size)


def baseline_units(placements: Sequence[Placement]) -> int:
    """How many raw baselines the served throughput can reach: one per distinct GPU for replicas on
    GPUs, one per distinct core set for replicas on CPUs (replicas sharing a GPU, or the same cores
    under --oversubscribe, share its speed); an unpinned CPU replica counts once."""
    gpus = {p.gpu for p in placements if p.gpu is not None}
    on_cpu = [p.cpus for p in placements if p.gpu is None]
    return len(gpus) + len({c for c in on_cpu if c}) + sum(1 for c in on_cpu if not c)


def serving_efficiency(served_qps: float | None, units: int, raw_qps: float | None) -> float | None:
    """Served throughput / (units x raw throughput), ``units`` from :func:`baseline_units`; None when
    either throughput is unknown."""
    if not served_qps or not raw_qps or units < 1:
        return None
    return served_qps / (units * raw_qps)
