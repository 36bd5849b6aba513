"""`clipper-bench serve`: the engine alone, poked with plain HTTP, stopped with Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import requests

from clipper_bench.engine.processes import free_ports
from tests.conftest import REPO


def test_serve_prints_addresses_answers_and_stops_cleanly(no_leftover_processes, tmp_path):
    q, a, r, b = free_ports(4)
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_bench", "serve", "-m", "noop", "-b", "4",
         "--query_port", str(q), "--admin_port", str(a), "--rpc_port", str(r), "--binary_port", str(b),
         "--log_dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"serve exited early: {proc.stderr.read()}"
            lines.append(line)
            if line.startswith("Ctrl-C to stop"):
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{q}" in out and f"http://127.0.0.1:{a}" in out
        assert f"tcp://127.0.0.1:{r}" in out and f"tcp://127.0.0.1:{b}" in out
        resp = requests.post(f"http://127.0.0.1:{q}/noop/predict", json={"input": [1.0, 2.0]}, timeout=10)
        assert resp.json()["output"] == 2
        assert requests.get(f"http://127.0.0.1:{a}/admin/ping", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert (tmp_path / "frontend.log").exists() and (tmp_path / "replica-noop-1-1.log").exists()
