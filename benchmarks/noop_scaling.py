"""Does the engine scale with replicas and clients? noop at one batch size, same run, several core sets.

    python3 benchmarks/noop_scaling.py [-b 16] [-r 1 2 4] [-n 1 2] [--cpus 0-5 all] [-d 6]

For each core set (``all``: every core this process may use; ``0-5``: the driver runs under
``taskset -c 0-5``, so the core plan sees six cores and gives the frontend and the clients one
core each) and each client count it runs ``clipper-bench run -m noop -r R... -b B -n N`` and prints
queries/s, p50 and p99 per replica count, with the core plan the run chose.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(cpus: str, clients: int, args, out: Path) -> tuple[dict[int, dict], dict]:
    """One sweep over the replica counts; its runs.ndjson lines by replica count, and its core plan."""
    results = out / f"cpus-{cpus}-n{clients}"
    cmd = [sys.executable, "-m", "clipper_bench", "run", "-m", "noop", "-r", *map(str, args.replicas),
           "-b", str(args.batch_size), "-n", str(clients), "-d", str(args.duration), "--warmup", "2",
           "--idle_s", "0", "--results_dir", str(results), "--transport", args.transport]
    if cpus != "all":
        cmd = ["taskset", "-c", cpus, *cmd]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    lines = [json.loads(x) for p in results.glob("*/runs.ndjson") for x in p.read_text().splitlines()]
    plans = [json.loads(p.read_text()).get("core_plan", {}) for p in results.glob("*/experiment.json")]
    return {line["num_replicas"]: line for line in lines}, (plans[0] if plans else {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--batch_size", type=int, default=16)
    parser.add_argument("-r", "--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("-n", "--clients", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus", nargs="+", default=["all"], help="taskset core lists, or 'all'")
    parser.add_argument("--transport", default="binary")
    parser.add_argument("-d", "--duration", type=float, default=6.0)
    args = parser.parse_args()
    print(f"{len(os.sched_getaffinity(0))} cores; noop, batch {args.batch_size}, {args.transport}, "
          f"closed loop, {args.duration:g} s windows\n")
    print("| cores | clients | frontend cores | client cores | replicas | q/s | p50 ms | p99 ms | status |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for cpus in args.cpus:
            for clients in args.clients:
                lines, plan = measure(cpus, clients, args, Path(tmp))
                for r in args.replicas:
                    line = lines.get(r, {})
                    lat = line.get("latency_ms") or {}
                    print(f"| {cpus} | {clients} | {plan.get('frontend_cpus')} | {plan.get('client_cpus')} | {r} | "
                          f"{line.get('throughput_qps', 0):,.0f} | {lat.get('p50', 0):.2f} | {lat.get('p99', 0):.2f} | "
                          f"{line.get('status', 'missing')} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
