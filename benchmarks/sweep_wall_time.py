#!/usr/bin/env python3
"""Share of a sweep's wall time spent measuring, with deployments reused and restarted.

Runs ``clipper-bench run -m lgbm -r 1 2 -b 1 8 32 -d 20`` as a user would (a subprocess, timed from
launch to exit) and reads the records: the measuring time is the sum of every configuration's
measurement window; the rest is start-up, idle power, deployments, warm-up, draining and writing.

Usage: .venv/bin/python benchmarks/sweep_wall_time.py [--duration 20] [--also_fresh] [-- extra run flags]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path("results/benchmarks/sweep_wall_time")


def one_sweep(duration: float, extra: list[str]) -> dict:
    before = set(RESULTS.glob("*")) if RESULTS.exists() else set()
    cmd = [sys.executable, "-m", "clipper_bench", "run", "-m", "lgbm", "-r", "1", "2", "-b", "1", "8", "32",
           "-d", str(duration), "--results_dir", str(RESULTS), *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout[-2000:]}")
    (exp,) = set(RESULTS.glob("*")) - before
    records = [json.loads(p.read_text()) for p in sorted((exp / "configs").glob("*.json"))
               if not p.name.endswith(".power_samples.json")]
    measured = sum((r["window_wall_ns"][1] - r["window_wall_ns"][0]) / 1e9 for r in records)
    startup = sum(r["deployment"]["startup_s"] for r in records if not r["deployment"]["reused"])
    in_configs = sum(r["ended_at"] - r["started_at"] for r in records)
    return {
        "command": " ".join(["clipper-bench", *cmd[3:]]),
        "wall_s": wall, "measured_s": measured, "share_measuring": measured / wall,
        "deployments": sum(not r["deployment"]["reused"] for r in records),
        "deployment_startup_s": startup,
        "outside_configurations_s": wall - in_configs,
        "throughput_qps": {r["config_id"]: round(r["summary"]["throughput_qps"], 1) for r in records},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--also_fresh", action="store_true", help="also run with --fresh_deployments")
    parser.add_argument("extra", nargs="*", help="more flags for clipper-bench run (after --)")
    args = parser.parse_args()
    variants = [("reused", [])] + ([("fresh", ["--fresh_deployments"])] if args.also_fresh else [])
    for name, flags in variants:
        r = one_sweep(args.duration, [*flags, *args.extra])
        print(f"{name}: {r['command']}")
        print(f"  wall {r['wall_s']:.1f} s, measuring {r['measured_s']:.1f} s = {100 * r['share_measuring']:.1f}%; "
              f"{r['deployments']} deployments took {r['deployment_startup_s']:.1f} s; "
              f"{r['outside_configurations_s']:.1f} s outside configurations (start-up, idle power, exit)")
        print(f"  throughput q/s: {r['throughput_qps']}")


if __name__ == "__main__":
    main()
