"""Prometheus' /metrics on the local engine: scraped while a configuration runs, parsed with
prometheus_client's own parser, and agreeing with the records."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO
from tests.power.fake_powercap import FakePowercap
from tests.sweep.test_driver import only_experiment


def scrape(port: int) -> dict[str, list]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def metrics_port_of_the_run(results: Path) -> int | None:
    """The Prometheus port the run's frontend holds, from the ports file it writes once bound (the
    default, 1390, or the free port it moved to when another run holds 1390)."""
    for path in results.glob("*/logs/*/frontend.ports.json"):
        try:
            return json.loads(path.read_text())["ports"]["metrics"]
        except (OSError, ValueError, KeyError):
            return None
    return None


def test_a_scrape_during_a_run_has_clippers_metrics_and_the_live_watts(tmp_path, no_leftover_processes):
    results = tmp_path / "results"
    with FakePowercap(tmp_path / "powercap"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipper_bench", "run", "-m", "sleep", "--sleep_ms", "20", "-b", "4", "-d", "4",
             "--warmup", "1", "--idle_s", "0", "--powercap_root", str(tmp_path / "powercap"),
             "--results_dir", str(results)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        found: dict[str, list] = {}
        port = None
        while proc.poll() is None:  # bounded by the run's own length
            port = port or metrics_port_of_the_run(results)
            try:
                found = scrape(port) if port else {}
            except requests.RequestException:
                found = {}
            if found.get("clipper_bench_power_watts") and found.get("clipper_app_num_predictions"):
                break
            time.sleep(0.3)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    predictions = found["clipper_app_num_predictions"]
    assert [(s.name, s.labels) for s in predictions] == [("clipper_app_num_predictions_total", {"app": "sleep"})]
    assert predictions[0].value > 0
    quantiles = {s.labels["quantile"]: s.value for s in found["clipper_model_batch_size_queries"]}
    assert quantiles == {"0.5": 4.0, "0.95": 4.0, "0.99": 4.0}  # full batches of 4 (the closed loop keeps them full)
    latency = {s.labels["quantile"]: s.value for s in found["clipper_app_prediction_latency_microseconds"]}
    assert 20_000 <= latency["0.5"] <= latency["0.99"]  # a batch takes 20 ms, in microseconds
    watts = {s.labels["channel"]: s.value for s in found["clipper_bench_power_watts"]}
    assert watts["package-0"] > 0  # the fake RAPL's package draws 50 W
    (record,) = [json.loads(p.read_text()) for p in (only_experiment(results) / "configs").glob("*-b4.json")]
    assert record["deployment"]["prometheus_metrics"] == f"http://127.0.0.1:{port}/metrics"
    assert record["deployment"]["ports"]["metrics"] == port


def hold_port(port: int, wait_s: float = 60.0) -> socket.socket:
    """A listening socket on 127.0.0.1:``port``, waiting while another run holds it; skips the test
    when it never comes free."""
    deadline = time.monotonic() + wait_s
    while True:
        held = socket.socket()
        try:
            held.bind(("127.0.0.1", port))
            held.listen()
            return held
        except OSError:
            held.close()
            if time.monotonic() > deadline:
                pytest.skip(f"port {port} stayed taken by another run for {wait_s:g} s")
            time.sleep(0.5)


def test_a_taken_default_metrics_port_moves_is_said_and_recorded(tmp_path, no_leftover_processes):
    held = hold_port(1390)  # held by this test for the whole run: another run's hold could end mid-run
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "clipper_bench", "run", "-m", "noop", "-b", "1", "-d", "1", "--warmup", "0.3",
             "--idle_s", "0", "--results_dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=240)
    finally:
        held.close()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (record,) = [json.loads(p.read_text()) for p in (only_experiment(tmp_path) / "configs").glob("noop-*.json")
                 if not p.name.endswith(".power_samples.json")]
    port = record["deployment"]["ports"]["metrics"]
    assert port not in (None, 1390) and record["deployment"]["prometheus_metrics"] == f"http://127.0.0.1:{port}/metrics"
    note = f"Prometheus metrics port 1390 on 127.0.0.1 is taken (another run?): using {port} instead"
    assert record["deployment"]["ports_moved"] == [note]
    assert sum(note in line for line in proc.stderr.splitlines()) == 1, proc.stderr


def test_a_taken_metrics_port_asked_for_is_a_one_line_error(tmp_path, no_leftover_processes):
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "clipper_bench", "run", "-m", "noop", "-d", "1", "--idle_s", "0",
             "--metrics_port", str(port), "--results_dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
            timeout=120)
    finally:
        held.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"clipper-bench: error: port {port} (Prometheus metrics) on 127.0.0.1 is in use")
    assert "pass another --metrics_port (0: none)" in line
