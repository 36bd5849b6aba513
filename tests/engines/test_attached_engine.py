"""``--engine clipper``: a sweep against a Clipper that is already running (here ``clipper-bench serve``
with no model), which must keep running, with nothing of the run left on it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import REPO
from tests.server.test_serve import printed_ports, start_serve, stop_serve


def bench_run(*args: str, results: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``clipper-bench run ARGS`` with small windows, no idle measurement and results in ``results``."""
    return subprocess.run([sys.executable, "-m", "clipper_bench", "run", "--engine", "clipper", *args,
                           "-m", "noop", "-d", "1", "--warmup", "0.5", "--idle_s", "0",
                           "--results_dir", str(results)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def records(results: Path) -> list[dict]:
    """Every configuration record of the one experiment in ``results``."""
    (experiment,) = [p for p in results.iterdir() if p.is_dir()]
    paths = sorted(p for p in (experiment / "configs").glob("*.json") if not p.name.endswith(".power_samples.json"))
    return [json.loads(p.read_text()) for p in paths]


def admin(port: int, call: str) -> list:
    return requests.post(f"http://127.0.0.1:{port}/admin/{call}", json={"verbose": False}, timeout=10).json()


def test_a_sweep_on_a_running_clipper_leaves_it_running_and_clean(no_leftover_processes, tmp_path):
    proc, out = start_serve("--log_dir", str(tmp_path / "serve"))  # its own ports: free ones when taken
    try:
        ports = printed_ports(out)
        q, a = ports["query"], ports["admin"]
        done = bench_run("--clipper_address", f"127.0.0.1:{q}", "--clipper_admin_address", f"127.0.0.1:{a}",
                         "--clipper_rpc_address", f"127.0.0.1:{ports['rpc']}", "-b", "1", "4",
                         results=tmp_path / "res")
        assert done.returncode == 0, done.stdout + done.stderr
        recs = records(tmp_path / "res")
        assert [r["status"] for r in recs] == ["ok", "ok"]
        assert sorted(r["node_configs"][0]["batch_size"] for r in recs) == [1, 4]
        for r in recs:
            assert r["settings"]["engine"] == "clipper" and r["settings"]["transport"] == "rest"
            attached = r["deployment"]["attached"]
            assert attached["query"] == f"127.0.0.1:{q}" and attached["admin"] == f"127.0.0.1:{a}"
            assert attached["rpc"] == f"127.0.0.1:{ports['rpc']}" and attached["frontend"] == "clipper-bench"
            assert attached["clipper_metrics_reset"] is False
            assert r["deployment"]["reused"] is False and r["summary"]["num_completed"] > 0
        # the running Clipper still runs, answers, and holds nothing of the run
        assert proc.poll() is None
        assert requests.get(f"http://127.0.0.1:{q}/metrics", timeout=10).status_code == 200
        assert requests.get(f"http://127.0.0.1:{a}/admin/ping", timeout=10).status_code == 200
        assert admin(a, "get_all_applications") == []
        assert admin(a, "get_all_models") == []
        assert admin(a, "get_all_containers") == []
    finally:
        stop_serve(proc)


def test_a_wrong_address_is_one_line_naming_it_and_the_fix(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # held, never listening: nothing answers there, nothing else takes it
    port = closed.getsockname()[1]
    try:
        done = bench_run("--clipper_address", f"127.0.0.1:{port}", results=tmp_path / "res", timeout=120)
    finally:
        closed.close()
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"GET http://127.0.0.1:{port}/metrics" in line and "--clipper_address HOST:PORT" in line
    assert not list((tmp_path / "res").glob("*/experiment.json"))  # refused before any experiment began
    missing = bench_run(results=tmp_path / "res", timeout=120)
    assert missing.returncode == 2 and "pass --clipper_address HOST[:PORT]" in missing.stderr.strip()
    assert len(missing.stderr.strip().splitlines()) == 1
