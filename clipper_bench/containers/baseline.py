"""A model's raw speed: in-process batches, same device and threads as a replica, no serving.

Run as ``python -m clipper_bench.containers.baseline SPEC.json OUT.json`` with the replica's
environment (``CLIPPER_BENCH_CPUS``, ``CUDA_VISIBLE_DEVICES``); the driver does this for
``clipper-bench baseline`` and ``run --baseline``. Each batch goes through exactly what a replica
does with it after the RPC frames are decoded (``Model.predict``: copy to the device, run, copy
back, encode the outputs), so served / raw throughput isolates the cost of serving.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def measure(spec_path: Path, out_path: Path) -> None:
    """Run the job in ``spec_path`` (model, options, batch sizes, warm-up, duration); write each batch
    size's throughput and batch latency, with the cores and GPU used, to ``out_path``."""
    job = json.loads(spec_path.read_text())
    from .models import ModelOptions, get_model_spec

    spec = get_model_spec(job["model_name"])
    opts = ModelOptions.from_flat(job["options"])
    model = spec.build(opts)
    pool_n = spec.pool_size(max(job["batch_sizes"]) * 4)
    pool = spec.make_inputs(pool_n, seed=opts.seed)
    # what a replica's predict receives: 1-D arrays of the wire dtype
    pool = [np.frombuffer(x.tobytes(), dtype=spec.input_type.dtype) for x in pool]
    for size in sorted({s for b in job["batch_sizes"] for s in model.warm_batch_sizes(b)}):
        model.predict([pool[0]] * size)  # as a replica does at load
    results = []
    for batch_size in job["batch_sizes"]:
        batches = [[pool[(i * batch_size + k) % pool_n] for k in range(batch_size)] for i in range(4)]
        warm_end = time.perf_counter() + job["warmup_s"]
        i = 0
        while time.perf_counter() < warm_end or i < 3:
            model.predict(batches[i % 4])
            i += 1
        times, elapsed = _timed_batches(model, batches, job["duration_s"])
        arr = np.asarray(times) * 1e3
        results.append({
            "batch_size": batch_size,
            "iterations": len(times),
            "pipelined": model.overlaps_batches,
            "throughput_qps": batch_size * len(times) / elapsed,
            "batch_latency_ms": {
                "mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)),
                "p99": float(np.percentile(arr, 99)), "max": float(arr.max()),
            },
        })
    out_path.write_text(json.dumps({
        "cpus": sorted(os.sched_getaffinity(0)),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "results": results,
    }))


def _timed_batches(model, batches: list, duration_s: float) -> tuple[list[float], float]:
    """Run batches for ``duration_s`` as a replica does; return each batch's time from submit to
    answer and the total time. A model that overlaps batches gets the next one before the last
    is answered (two in flight, as a replica with --batches_in_flight 2), so the throughput is its
    steady state; the default sends one batch after the other."""
    depth = 2 if model.overlaps_batches else 1
    times: list[float] = []
    pending: list[tuple[float, object]] = []
    start = time.perf_counter()
    end = start + duration_s
    i = 0
    while time.perf_counter() < end or len(times) < 3:
        pending.append((time.perf_counter(), model.submit(batches[i % 4])))
        i += 1
        if len(pending) >= depth:
            t, handle = pending.pop(0)
            model.finish(handle)
            times.append(time.perf_counter() - t)
    for t, handle in pending:
        model.finish(handle)
        times.append(time.perf_counter() - t)
    return times, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Entry point: pin and name this process, then measure ``SPEC.json`` into ``OUT.json``; return 0."""
    argv = sys.argv[1:] if argv is None else argv
    from ..common.pinning import pin_from_environment

    pin_from_environment()
    from ..common.processes import become_child

    become_child(f"clipper-bench baseline {Path(argv[0]).stem}")
    measure(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
