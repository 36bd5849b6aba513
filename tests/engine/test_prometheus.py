"""Prometheus' /metrics on the local engine: scraped while a configuration runs, parsed with
prometheus_client's own parser, and agreeing with the records."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from clipper_bench.common.processes import free_ports
from tests.conftest import REPO
from tests.power.fake_powercap import FakePowercap
from tests.sweep.test_driver import only_experiment


def scrape(port: int) -> dict[str, list]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_a_scrape_during_a_run_has_clippers_metrics_and_the_live_watts(tmp_path, no_leftover_processes):
    (port,) = free_ports(1)
    with FakePowercap(tmp_path / "powercap"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipper_bench", "run", "-m", "sleep", "--sleep_ms", "20", "-b", "4", "-d", "4",
             "--warmup", "1", "--idle_s", "0", "--metrics_port", str(port), "--powercap_root", str(tmp_path / "powercap"),
             "--results_dir", str(tmp_path / "results")],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        found: dict[str, list] = {}
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                found = scrape(port)
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
    (record,) = [json.loads(p.read_text()) for p in (only_experiment(tmp_path / "results") / "configs").glob("*-b4.json")]
    assert record["deployment"]["prometheus_metrics"] == f"http://127.0.0.1:{port}/metrics"
