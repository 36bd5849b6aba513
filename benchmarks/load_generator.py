#!/usr/bin/env python3
"""How much load the generator itself can offer on this machine, against the noop model.

* closed loop: noop throughput with one and with two client processes (concurrency 64, batch 16);
* open loop: the highest constant rate at which 99% of queries leave within 1 ms of their
  scheduled time, for one and two clients (doubling, then bisection).

Usage: .venv/bin/python benchmarks/load_generator.py [--duration 4]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from clipper_bench.sweep.runner import ExperimentRunner
from clipper_bench.sweep.settings import RunSettings


def run(**kwargs) -> dict:
    settings = RunSettings("noop", batch_sizes=(16,), idle_s=0, results_dir=Path("results/benchmarks"), **kwargs)
    path = ExperimentRunner(settings, ["benchmarks/load_generator.py"], say=lambda s: None).run()
    line = json.loads((path / "runs.ndjson").read_text().splitlines()[-1])
    if line["status"] != "ok":
        raise SystemExit(f"configuration failed: {line['error']}")
    return line


def kept_up(rate: float, clients: int, duration: float) -> tuple[bool, dict]:
    line = run(rate_qps=rate, num_clients=clients, duration_s=duration, warmup_s=1)
    late = line["load"]["lateness"]
    return late["share_over_1ms"] <= 0.01, line


def highest_rate(clients: int, duration: float) -> tuple[float, dict]:
    lo, hi, best = 0.0, 250.0, None
    while True:
        ok, line = kept_up(hi, clients, duration)
        if not ok:
            break
        lo, best = hi, line
        hi *= 2
        if hi > 64000:
            return lo, best
    for _ in range(4):
        mid = (lo + hi) / 2
        ok, line = kept_up(mid, clients, duration)
        if ok:
            lo, best = mid, line
        else:
            hi = mid
    return lo, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    logging.getLogger("clipper_admin").setLevel(logging.WARNING)
    logging.getLogger("clipper_bench.manager").setLevel(logging.WARNING)
    print("| load | clients | rate or concurrency | queries/s | p50 ms | p99 ms | sent >1 ms late |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for clients in (1, 2):
        line = run(concurrency=64, num_clients=clients, duration_s=2 * args.duration, warmup_s=1)
        lat = line["latency_ms"]
        print(f"| closed | {clients} | 64 outstanding | {line['throughput_qps']:,.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | - |")
    for clients in (1, 2):
        rate, line = highest_rate(clients, args.duration)
        if line is None:
            print(f"| open | {clients} | none kept up from 250 q/s | - | - | - | - |")
            continue
        lat, late = line["latency_ms"], line["load"]["lateness"]
        print(f"| open (highest rate with 99% within 1 ms) | {clients} | {rate:,.0f} q/s | "
              f"{line['throughput_qps']:,.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | {100 * late['share_over_1ms']:.2f}% |")


if __name__ == "__main__":
    main()
