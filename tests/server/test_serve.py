"""`clipper-bench serve`: the engine alone, poked with plain HTTP, stopped with Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests
import zmq

from clipper_bench.protocol import binary
from clipper_bench.protocol.types import InputType
from tests.conftest import REPO


def start_serve(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """``clipper-bench serve ARGS`` up to its "Ctrl-C to stop" line; the process and what it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "clipper_bench", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    lines = []
    while True:  # bounded by serve itself: it prints this line, or exits (start_timeout_s at most)
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=30)
            raise AssertionError(f"serve exited early ({proc.returncode}): {''.join(lines)}{proc.stderr.read()}")
        lines.append(line)
        if line.startswith("Ctrl-C to stop"):
            return proc, "".join(lines)


def printed_ports(out: str) -> dict[str, int]:
    """The ports serve printed, by what they serve."""
    found = {}
    for what, prefix in (("query", "query frontend"), ("admin", "admin frontend"), ("rpc", "container RPC"),
                         ("binary", "binary queries")):
        (match,) = re.findall(rf"^{prefix} +(?:http|tcp)://127\.0\.0\.1:(\d+)", out, re.M)
        found[what] = int(match)
    return found


def stop_serve(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_serve_prints_addresses_answers_and_stops_cleanly(no_leftover_processes, tmp_path):
    """On its default ports, or the free ones it moves to when another run holds them: either way
    the addresses it prints are the ones it serves on."""
    proc, out = start_serve("-m", "noop", "-r", "2", "-b", "4", "--log_dir", str(tmp_path))
    try:
        ports = printed_ports(out)
        q, a, b = ports["query"], ports["admin"], ports["binary"]
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
        stop_serve(proc)
    assert (tmp_path / "frontend.log").exists() and (tmp_path / "replica-noop-1-1.log").exists()


def hold_port(port: int = 0) -> socket.socket | None:
    """A listening socket on ``port`` (0: one the OS picks), or None when another process holds it."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        sock.close()
        return None
    return sock


def test_a_taken_default_port_moves_to_a_free_one_and_says_so(no_leftover_processes, tmp_path):
    held = hold_port(1337)  # None: another run holds it, which takes it as well
    try:
        proc, out = start_serve("--log_dir", str(tmp_path))
        try:
            query = printed_ports(out)["query"]
            said_lines = [line for line in out.splitlines() if line.startswith("query port 1337 ")]
            if held is None and query == 1337:  # the other run let go of it before serve bound it
                assert said_lines == []
                return
            assert query != 1337
            (said,) = said_lines
            assert said == f"query port 1337 on 127.0.0.1 is taken (another run?): using {query} instead"
            assert requests.get(f"http://127.0.0.1:{query}/metrics", timeout=10).status_code == 200
        finally:
            stop_serve(proc)
    finally:
        if held is not None:
            held.close()


def serve_on_a_taken_port(flag: str, log_dir: Path) -> tuple[subprocess.CompletedProcess, int]:
    """``serve FLAG PORT`` while this test holds PORT (bound first, then named: nothing else can take
    it in between); serve's result and the port."""
    held = hold_port()
    port = held.getsockname()[1]
    try:
        proc = subprocess.run([sys.executable, "-m", "clipper_bench", "serve", flag, str(port),
                               "--log_dir", str(log_dir)], capture_output=True, text=True, cwd=REPO, timeout=120)
    finally:
        held.close()
    return proc, port


def test_a_taken_port_asked_for_is_a_one_line_error(no_leftover_processes, tmp_path):
    proc, port = serve_on_a_taken_port("--query_port", tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"clipper-bench: error: could not start the engine: port {port} (query) on 127.0.0.1 "
                           "is in use")
    assert "pass another --query_port, or leave the flag out" in line


def test_a_models_own_option_out_of_its_range_is_a_one_line_error_before_anything_starts(no_leftover_processes):
    """The sleep model's --sleep_ms, declared beside the model, is checked by serve as run checks it."""
    proc = subprocess.run([sys.executable, "-m", "clipper_bench", "serve", "-m", "sleep", "--sleep_ms", "-3"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("clipper-bench: error: --sleep_ms must be 0 or more ms, got -3"), line
    assert not proc.stdout  # nothing was started, so nothing was announced


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
    # vgg takes seconds to load on a CPU: SIGTERM arrives while the engine is starting
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_bench", "serve", "-m", "vgg", "--log_dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    time.sleep(1.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
