"""Raw in-process baselines and the serving efficiency they give each served configuration."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common.pinning import CPUS_ENV, format_cpu_list
from ..common.processes import python_module_argv, reap, spawn
from ..server.manager import Placement
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


EFFICIENCY_LIMIT = 1.05  # served faster than this share of the raw speed is a measurement problem


def resource_sets(placements: Sequence[Placement]) -> list[Placement]:
    """The distinct resources a configuration's replicas had, each of which a raw baseline measures:
    per GPU, that GPU with the cores of every replica on it (replicas sharing a GPU drive it from all
    their cores together); per distinct CPU core set, those cores (replicas on the same cores under
    --oversubscribe share them); each unpinned CPU replica on its own."""
    by_gpu: dict[int, set[int]] = {}
    on_cpu: list[tuple[int, ...]] = []
    for p in placements:
        if p.gpu is not None:
            by_gpu.setdefault(p.gpu, set()).update(p.cpus)
        elif not p.cpus or p.cpus not in on_cpu:
            on_cpu.append(p.cpus)
    return [Placement(tuple(sorted(cpus)), gpu) for gpu, cpus in by_gpu.items()] + [Placement(c) for c in on_cpu]


def resource_key(resources: Placement) -> tuple[str, int]:
    """What a raw baseline depends on: the device and the number of cores (core sets of one size are
    alike, so one baseline serves every set of that size on that device)."""
    return device_of(resources), len(resources.cpus)


def baseline_units(placements: Sequence[Placement]) -> int:
    """How many raw baselines the served throughput is compared with: :func:`resource_sets`' count."""
    return len(resource_sets(placements))


def serving_efficiency(served_qps: float | None, raw_qps: Sequence[float | None]) -> float | None:
    """Served throughput / the sum of the raw throughputs of the configuration's resource sets
    (:func:`resource_sets`); None when any of them is unknown."""
    if not served_qps or not raw_qps or any(not r for r in raw_qps):
        return None
    return served_qps / sum(raw_qps)


def efficiency_problem(efficiency: float | None) -> str | None:
    """Why a serving efficiency cannot be a result: serving cannot make a model faster than the model
    itself, so above ``EFFICIENCY_LIMIT`` the baseline did not measure what the replicas had."""
    if efficiency is None or efficiency <= EFFICIENCY_LIMIT:
        return None
    return (f"served {efficiency:.2f}x the raw in-process speed: the baseline measured less than the replicas "
            "had (fewer cores driving the device, or a model whose speed depends on threads the baseline "
            "process did not get); not a result")
