#!/usr/bin/env python3
"""The frontend's CPU seconds per 1,000 noop queries, REST and binary, on one ``serve``.

    .venv/bin/python benchmarks/frontend_cost.py [-c 16] [-d 8] [-b 16] [--rounds 3] [--repo DIR]

Starts ``clipper-bench serve -m noop -r 1 -b B`` from ``--repo`` (default: this checkout; give a
``git worktree`` of an older commit to measure that commit's frontend the same way), then, per round,
drives its REST port with Debian's ``wrk`` (one thread, ``-c`` connections, a different body per
request) and its binary port with the driver's own client (closed loop at concurrency ``-c``), and
reads the frontend process's own CPU time (user + system, from /proc) before and after each load.
CPU time per query is steadier than a rate on a shared machine: another process slows the frontend
down but does not make a query cost more instructions. Prints one line per load and a Markdown
table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]

# wrk sends a different body per request: Lua picks one of a pool of noop inputs
_WRK_SCRIPT = """
local bodies = {}
math.randomseed(7)
for i = 1, 256 do
  local xs = {}
  for j = 1, 8 do xs[j] = string.format("%.6f", math.random()) end
  bodies[i] = '{"input": [' .. table.concat(xs, ", ") .. ']}'
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n % 256 + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
"""


def start_serve(repo: Path, batch: int, work: Path, model: str = "noop") -> tuple[subprocess.Popen, dict[str, int]]:
    """``serve -m MODEL`` from ``repo`` on free ports; the process and its ports once it is up."""
    from clipper_bench.common.processes import free_ports

    query, admin, rpc, binary = free_ports(4)  # a tool: serve says so if one was taken meanwhile
    server = subprocess.Popen(
        [sys.executable, "-m", "clipper_bench", "serve", "-m", model, "-r", "1", "-b", str(batch),
         "--query_port", str(query), "--admin_port", str(admin), "--rpc_port", str(rpc),
         "--binary_port", str(binary), "--log_dir", str(work / "logs")],
        cwd=repo, env=_env(repo), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen: list[str] = []
    try:
        for line in server.stdout:
            seen.append(line)
            if line.startswith("Ctrl-C"):
                break
        else:
            raise SystemExit("serve did not start:\n" + "".join(seen))
        return server, _ports_from(seen)
    except BaseException:
        stop(server)
        raise


def _env(repo: Path) -> dict[str, str]:
    """The environment with ``repo`` first on PYTHONPATH (anything already on it, wheels unpacked
    beside the code on a machine without the package installed, stays after it)."""
    rest = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(repo.resolve()) + (os.pathsep + rest if rest else "")}


def _ports_from(lines: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for line in lines:
        m = re.search(r"binary queries\s+tcp://[\d.]+:(\d+)", line)
        if m:
            ports["binary"] = int(m.group(1))
        m = re.search(r"query frontend\s+http://[\d.]+:(\d+)", line)
        if m:
            ports["query"] = int(m.group(1))
    if set(ports) != {"query", "binary"}:
        raise SystemExit("could not read serve's query and binary ports from:\n" + "".join(lines))
    return ports


def frontend_process(server: subprocess.Popen) -> psutil.Process:
    """The frontend among serve's children (its title or command line names it)."""
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            text = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "frontend" in text and "container" not in text:
            return child
    raise SystemExit("no frontend process under serve")


def cpu_s(proc: psutil.Process) -> float:
    """The process's own CPU seconds so far (user + system, its threads included)."""
    t = proc.cpu_times()
    return t.user + t.system


def wrk_load(port: int, connections: int, seconds: float, work: Path) -> int:
    """Answered requests in one wrk run (all 200: errors stop the benchmark)."""
    script = work / "noop.lua"
    script.write_text(_WRK_SCRIPT)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script),
                          f"http://127.0.0.1:{port}/noop/predict"], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))


def binary_load(repo: Path, port: int, connections: int, seconds: float, work: Path) -> int:
    """Answered queries in one run of the driver's binary client (closed loop)."""
    code = (
        "from pathlib import Path\n"
        "from clipper_bench.load.orchestrate import run_clients\n"
        "from clipper_bench.load.spec import LoadSpec\n"
        f"spec = LoadSpec(client_index=0, transport='binary', address='127.0.0.1:{port}', app='noop',"
        f" model_name='noop', concurrency={connections}, start_at_wall=0.0, warmup_s=0.0,"
        f" duration_s={seconds}, drain_timeout_s=5.0, drain_max_s=30.0, slo_s=1.0,"
        f" out_path='{work}/bin.npz', pool_size=256, seed=0, cpus=())\n"
        f"start, paths = run_clients([spec], Path('{work}'))\n"
        "c = paths[0]; print(int(((c.status == 0) & (c.done_wall_ns >= 0)).sum()))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, env=_env(repo),
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1])


def measure(repos: list[Path], args: argparse.Namespace) -> dict[Path, dict[str, list[float]]]:
    """CPU s per 1,000 queries (REST and binary) per round, on one serve per repo, all started
    first and measured in turn, round by round, so a slow spell of the machine falls on each."""
    work = Path(tempfile.mkdtemp(prefix="frontend-cost-"))
    servers: dict[Path, tuple[subprocess.Popen, dict[str, int]]] = {}
    costs = {repo: {t: [] for t in args.transports} for repo in repos}
    try:
        for i, repo in enumerate(repos):
            (work / str(i)).mkdir()
            servers[repo] = start_serve(repo, args.batch_size, work / str(i))
        for k in range(args.rounds):
            for i, repo in enumerate(repos):
                server, ports = servers[repo]
                for transport in args.transports:
                    cost = _one_load(repo, transport, frontend_process(server), ports, args, work / str(i))
                    costs[repo][transport].append(cost)
                    print(f"{repo} round {k + 1} {transport}: {cost:.3f} CPU s per 1,000", flush=True)
    finally:
        for server, _ in servers.values():
            stop(server)
        shutil.rmtree(work, ignore_errors=True)
    return costs


def _one_load(repo: Path, transport: str, frontend: psutil.Process, ports: dict[str, int],
              args: argparse.Namespace, work: Path) -> float:
    """One load on one transport; the frontend's CPU seconds per 1,000 answered queries."""
    before, t0 = cpu_s(frontend), time.perf_counter()
    if transport == "rest":
        n = wrk_load(ports["query"], args.connections, args.duration, work)
    else:
        n = binary_load(repo, ports["binary"], args.connections, args.duration, work)
    used, wall = cpu_s(frontend) - before, time.perf_counter() - t0
    print(f"  {n / wall:,.0f} q/s over the run, frontend {used:.2f} CPU s for {n:,} queries", flush=True)
    return used / n * 1000


def stop(server: subprocess.Popen) -> None:
    """SIGINT serve's process group and wait; SIGKILL it if it does not go."""
    os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--connections", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=8.0)
    parser.add_argument("-b", "--batch_size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", nargs="+", choices=["rest", "binary"], default=["rest", "binary"],
                        help="rest needs Debian's wrk; binary uses the driver's own client")
    parser.add_argument("--repo", type=Path, action="append",
                        help="checkout whose frontend to measure (repeatable; rounds interleave by repo)")
    args = parser.parse_args()
    if "rest" in args.transports and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk, or pass --transports binary")
    repos = args.repo or [REPO]
    results = measure(repos, args)
    print(f"\n{os.cpu_count()} cores; noop batch {args.batch_size}, concurrency {args.connections}, "
          f"{args.duration:g} s loads, {args.rounds} rounds; frontend CPU s per 1,000 queries (median)\n")
    print("| frontend | " + " | ".join(args.transports) + " |\n| --- | " + " | ".join("---:" for _ in args.transports) + " |")
    for repo, costs in results.items():
        print(f"| {repo} | " + " | ".join(f"{statistics.median(costs[t]):.3f}" for t in args.transports) + " |")
    if len(repos) == 2:
        a, b = (results[r] for r in repos)
        print("\nratio second / first: " + ", ".join(
            f"{t} {statistics.median(b[t]) / statistics.median(a[t]):.2f}" for t in args.transports))
    print(json.dumps({str(r): c for r, c in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
