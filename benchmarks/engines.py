#!/usr/bin/env python3
"""noop and lgbm through the local engine and through Ray Serve, on this machine.

Each row is one ``clipper-bench run`` (1 replica, batch size 8, closed loop at the default
concurrency): local engine over the binary path and over Clipper's REST API, Ray Serve through its
HTTP proxy (the same Clipper JSON) and through deployment handles.

Usage: .venv/bin/python benchmarks/engines.py [--duration 10] [--models noop lgbm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path("results/benchmarks/engines")
PATHS = [
    ("local", "binary", ["--engine", "local", "--transport", "binary"]),
    ("local", "REST", ["--engine", "local", "--transport", "rest"]),
    ("ray", "HTTP proxy", ["--engine", "ray", "--ray_ingress", "http"]),
    ("ray", "handle", ["--engine", "ray", "--ray_ingress", "handle"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--models", nargs="+", default=["noop", "lgbm"])
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    print("| model | engine | path | queries/s | p50 ms | p99 ms | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for model in args.models:
        for engine, path, flags in PATHS:
            before = set(RESULTS.glob("*")) if RESULTS.exists() else set()
            cmd = [sys.executable, "-m", "clipper_bench", "run", "-m", model, "-b", str(args.batch), "-d",
                   str(args.duration), "--warmup", "3", "--idle_s", "0", "--results_dir", str(RESULTS), *flags]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {model} | {engine} | {path} | failed: {proc.stderr.strip()[-200:]} | | | |")
                continue
            (exp,) = set(RESULTS.glob("*")) - before
            line = json.loads((exp / "runs.ndjson").read_text().splitlines()[-1])
            lat = line["latency_ms"]
            print(f"| {model} | {engine} | {path} | {line['throughput_qps']:,.0f} | {lat['p50']:.2f} | "
                  f"{lat['p99']:.2f} | {line['num_errors']} |", flush=True)


if __name__ == "__main__":
    main()
