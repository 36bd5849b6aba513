"""Our REST load client against Debian's ``wrk``, on the same server in the same run.

    .venv/bin/python benchmarks/rest_vs_wrk.py [-c 16] [-d 10] [--model noop] [-b 16] [--rounds 2]

Starts ``clipper-bench serve`` (the local engine, one replica), then alternately runs ``wrk`` (a Lua
script posting the same JSON body, ``-c`` connections, one thread) and our REST client (closed loop
at concurrency ``-c``, one process), ``--rounds`` times each, and prints both throughputs and their
ratio. Install wrk with ``apt-get install wrk``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wrk(url: str, body: str, connections: int, seconds: float, work: Path) -> float:
    """Requests/s wrk reached (200 answers only: wrk counts non-2xx apart)."""
    script = work / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk got errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def ours(address: str, app: str, model: str, connections: int, seconds: float, work: Path) -> float:
    """Successful answers/s of our REST client over a window of ``seconds`` after 1 s of warm-up."""
    from clipper_bench.load.orchestrate import run_clients
    from clipper_bench.load.spec import LoadSpec
    from clipper_bench.load.stats import summarize

    spec = LoadSpec(client_index=0, transport="rest", address=address, app=app, model_name=model,
                    concurrency=connections, start_at_wall=0.0, warmup_s=1.0, duration_s=seconds,
                    drain_timeout_s=5.0, drain_max_s=30.0, slo_s=1.0, out_path=str(work / "ours.npz"),
                    pool_size=100, seed=0, cpus=())
    start_at, clients = run_clients([spec], work)
    window = (int((start_at + 1.0) * 1e9), int((start_at + 1.0 + seconds) * 1e9))
    return summarize(clients, window)["throughput_qps"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--connections", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("--model", default="noop")
    parser.add_argument("-b", "--batch_size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    from frontend_cost import (  # this directory is on sys.path when run as a script
        start_serve,
        stop,
    )

    from clipper_bench.containers.models import get_model_spec

    work = Path(tempfile.mkdtemp(prefix="rest-vs-wrk-"))
    server, ports = start_serve(REPO, args.batch_size, work, args.model)
    query = ports["query"]
    try:
        spec = get_model_spec(args.model)
        body = json.dumps({"input": spec.make_inputs(1)[0].tolist()})
        url = f"http://127.0.0.1:{query}/{args.model}/predict"
        rows = []
        for k in range(args.rounds):
            w = wrk(url, body, args.connections, args.duration, work)
            o = ours(f"127.0.0.1:{query}", args.model, args.model, args.connections, args.duration, work)
            rows.append((k + 1, w, o))
            print(f"round {k + 1}: wrk {w:,.0f} q/s, ours {o:,.0f} q/s, ours / wrk {o / w:.2f}", flush=True)
        print(f"\n{os.cpu_count()} cores; {args.model} batch {args.batch_size}, {args.connections} connections, "
              f"{args.duration:g} s windows\n")
        print("| round | wrk q/s | ours q/s | ours / wrk |\n| ---: | ---: | ---: | ---: |")
        for k, w, o in rows:
            print(f"| {k} | {w:,.0f} | {o:,.0f} | {o / w:.2f} |")
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
