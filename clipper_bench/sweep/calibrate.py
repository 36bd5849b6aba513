"""``--calibrate``: before the sweep, a short run whose right answer is known.

The built-in ``sleep`` model takes ``sleep_ms`` per batch whatever its size, so one replica at batch
size 1 can serve exactly 1 / sleep time queries a second (50 q/s at 20 ms). A closed loop that keeps
more queries outstanding than the replica holds saturates it; what the run measures against that
known capacity says how much the engine, its transport and the load generator take away, before
any number of the sweep is read. The run is an experiment of its own (``<experiment>/calibration/``,
with its record, raw data and logs), made by the same runner with the same engine, transport, load
clients and core plan as the sweep (the runner hands its own class in: this module imports no
runner); its result goes into the sweep's ``experiment.json`` as ``calibration`` and is printed in
one line. A failed calibration is recorded with its reason and never stops the sweep; ``--resume``
keeps the calibration the experiment already has.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..common.processes import EXPERIMENT_ENV
from ..results.store import EXPERIMENT_FILE, ExperimentStore
from .progress import LiveStats, Progress
from .settings import RunSettings

CALIBRATION_DIR = "calibration"  # inside the experiment directory
MODEL = "sleep"
SLEEP_MS = 20.0
BATCH_SIZE = 1
NUM_REPLICAS = 1
DURATION_S = 3.0
WARMUP_S = 1.0


class Sweep(Protocol):
    """What the calibration reads of the sweep's runner (an ``ExperimentRunner``)."""

    settings: RunSettings
    command_line: list[str]
    store: ExperimentStore
    progress: Progress
    say: Callable[[str], None]

    def run(self) -> Any:
        """Run the experiment."""


MakeRunner = Callable[..., Sweep]  # ExperimentRunner(settings, command_line, say=..., progress=...)


def known_capacity_qps(num_replicas: int, batch_size: int, sleep_ms: float) -> float:
    """The sleep model's capacity: replicas x batch size / sleep time (queries per second)."""
    return num_replicas * batch_size / (sleep_ms / 1000)


def calibration_settings(settings: RunSettings, results_dir: Path) -> RunSettings:
    """The sweep's settings (engine, transport, clients, cores) turned into the calibration run:
    the sleep model, one replica on one core, no GPU, batch 1, the default closed loop (one more
    batch waiting than the replica holds, so it never idles), a few seconds, nothing else."""
    return dataclasses.replace(
        settings, model_name=MODEL, sleep_ms=SLEEP_MS, batch_sizes=(BATCH_SIZE,), num_replicas=(NUM_REPLICAS,),
        cpus_per_replica_nums=(1,), model_gpus=(), concurrency=(), rate_qps=(), duration_s=DURATION_S,
        warmup_s=WARMUP_S, warmup_reused_s=WARMUP_S, idle_s=0.0, baseline=False, repeats=1,
        max_rate_under_p99_ms=None, gpu_power_limits_w=(), gpu_clocks_mhz=(), stable=False, resume=False,
        calibrate=False, results_dir=results_dir,
    )


def run_calibration(runner: Sweep, make_runner: MakeRunner) -> dict[str, Any]:
    """Run the calibration for ``runner``'s experiment (unless it has one already) with a runner made
    by ``make_runner``, store it in its ``experiment.json`` as ``calibration`` and say it in one
    line; return it."""
    path = runner.store.path / EXPERIMENT_FILE
    existing = json.loads(path.read_text()).get("calibration")
    if existing:
        runner.say(f"calibration: kept from the experiment's first run: {describe_calibration(existing)}")
        return existing
    runner.progress.update(LiveStats("calibrating: the sleep model, whose capacity is known"))
    settings = calibration_settings(runner.settings, runner.store.path / CALIBRATION_DIR)
    block: dict[str, Any] = {
        "model": MODEL, "sleep_ms": SLEEP_MS, "batch_size": BATCH_SIZE, "num_replicas": NUM_REPLICAS,
        "known_capacity_qps": known_capacity_qps(NUM_REPLICAS, BATCH_SIZE, SLEEP_MS),
        "measured_qps": None, "ratio": None, "duration_s": DURATION_S, "warmup_s": WARMUP_S,
        "engine": settings.engine, "transport": settings.transport, "num_clients": settings.num_clients,
    }
    block.update(_measure(runner, make_runner, settings))
    if block["measured_qps"] is not None:
        block["ratio"] = block["measured_qps"] / block["known_capacity_qps"]
    runner.store.update_experiment({"calibration": block})
    runner.say(f"calibration: {describe_calibration(block)}")
    return block


def _measure(runner: Sweep, make_runner: MakeRunner, settings: RunSettings) -> dict[str, Any]:
    """Run the calibration experiment; what its one configuration measured, or why it could not.
    The sweep's experiment id is put back in the environment afterwards (the nested run sets its own)."""
    experiment_env = os.environ.get(EXPERIMENT_ENV)
    lines: list[str] = []  # the nested run's own messages: its record says the same
    try:
        nested = make_runner(settings, runner.command_line, say=lines.append, progress=runner.progress)
        nested.run()
    except Exception as exc:  # noqa: BLE001 - a calibration that fails is recorded, never fatal to the sweep
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "concurrency": None}
    finally:
        if experiment_env is None:
            os.environ.pop(EXPERIMENT_ENV, None)
        else:
            os.environ[EXPERIMENT_ENV] = experiment_env
    nested.store.update_experiment({"calibration_of": runner.store.experiment_id})
    runs = nested.store.runs()
    if not runs:
        return {"status": "failed", "reason": "the calibration recorded no configuration", "concurrency": None,
                "experiment_dir": str(nested.store.path.relative_to(runner.store.path))}
    line = runs[-1]
    return {
        "measured_qps": line.get("throughput_qps"),
        "concurrency": line.get("concurrency"),
        "p99_ms": (line.get("latency_ms") or {}).get("p99"),
        "status": line["status"], "reason": line.get("reason"),
        "config_id": line["config_id"],
        "experiment_dir": str(nested.store.path.relative_to(runner.store.path)),
    }


def describe_calibration(block: dict[str, Any]) -> str:
    """One line: the known and the measured capacity, their ratio, and the status when not ok."""
    text = (f"{block['model']} model ({block['sleep_ms']:g} ms per batch of {block['batch_size']}, "
            f"{block['num_replicas']} replica), known capacity {block['known_capacity_qps']:.1f} q/s")
    if block.get("measured_qps") is None:
        return f"{text}, NOT measured ({block.get('reason') or block.get('status') or 'no answers'})"
    text += f", measured {block['measured_qps']:.1f} q/s (ratio {block['ratio']:.3f}"
    if block.get("p99_ms") is not None:
        text += f", p99 {block['p99_ms']:.1f} ms"
    text += f", closed loop of {block['concurrency']}, {block['duration_s']:g} s)"
    if block.get("status") not in (None, "ok"):
        text += f"; {str(block['status']).upper()}: {block.get('reason')}"
    return text
