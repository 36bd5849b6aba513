"""`clipper-bench serve`: the engine alone, poked with plain HTTP, stopped with Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import requests
import zmq

from clipper_bench.common.processes import free_ports
from clipper_bench.protocol import binary
from clipper_bench.protocol.types import InputType
from tests.conftest import REPO


def test_serve_prints_addresses_answers_and_stops_cleanly(no_leftover_processes, tmp_path):
    q, a, r, b = free_ports(4)
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_bench", "serve", "-m", "noop", "-r", "2", "-b", "4",
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
        url = f"http://127.0.0.1:{q}/noop/predict"
        resp = requests.post(url, json={"input": [0.5] * 8}, timeout=10)
        assert resp.json()["output"] == 8
        assert requests.get(f"http://127.0.0.1:{a}/admin/ping", timeout=10).status_code == 200
        # inputs of the wrong length never reach a replica: a clear 400 (REST) or status 2 (binary)
        for _ in range(2):
            bad = requests.post(url, json={"input": [0.5, 0.5, 0.5]}, timeout=10)
            assert bad.status_code == 400
            assert "input has 3 doubles; the model takes 8 doubles per input" in bad.json()["cause"]
        assert "the model takes 8 doubles" in _binary_error(b, np.full(3, 0.5))
        batch = requests.post(url, json={"input_batch": [[0.5] * 8, [0.5] * 9]}, timeout=10)
        assert batch.status_code == 400 and "input has 9 doubles" in batch.json()["cause"]
        replicas = requests.post(f"http://127.0.0.1:{a}/admin/get_all_containers", json={}, timeout=10).json()
        assert len(replicas) == 2  # both replicas still serve
        assert all(requests.post(url, json={"input": [0.5] * 8}, timeout=10).json()["output"] == 8
                   for _ in range(4))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert (tmp_path / "frontend.log").exists() and (tmp_path / "replica-noop-1-1.log").exists()


def _binary_error(port: int, item: np.ndarray) -> str:
    """Send one doubles input over the binary path; return its error output (status must be 2)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(f"tcp://127.0.0.1:{port}")
    try:
        sock.send_multipart(binary.encode_request(7, "noop", InputType.DOUBLES, [item.astype("<f8").tobytes()]))
        resp = binary.decode_response(sock.recv_multipart())
    finally:
        sock.close()
    assert resp.statuses == bytes([binary.Status.ERROR])
    return bytes(resp.outputs[0]).decode()


def test_serve_refuses_impossible_ports_and_stops_on_sigterm_while_starting(no_leftover_processes, tmp_path):
    for bad in ("70000", "-5", "0"):
        proc = subprocess.run([sys.executable, "-m", "clipper_bench", "serve", "--query_port", bad],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "argument --query_port: must be a port number from 1 to 65535" in proc.stderr
    q, a, r, b = free_ports(4)
    # vgg takes seconds to load on a CPU: SIGTERM arrives while the engine is starting
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_bench", "serve", "-m", "vgg", "--query_port", str(q), "--admin_port", str(a),
         "--rpc_port", str(r), "--binary_port", str(b), "--log_dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    time.sleep(1.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
