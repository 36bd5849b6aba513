"""The original-format results files as the original repository's analysis reads them.

``image_driver_1``'s ``containerized/result.py`` and ``plots/plot_*.py`` list the experiment's
directory, load every file whose name holds ``results``, and read ``data["client_metrics"]["thrus"]``
(one client: a dict, as every results file stored in that repository) and
``data["clipper_metrics"]["histograms"][1]`` / ``[2]`` (the app's and the model's prediction latency,
by position). These tests read a real sweep's files the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from clipper_bench.results.records import original_client_metrics
from tests.conftest import REPO

DRIVER = REPO / "model_composition" / "image_driver_1" / "driver.py"


def sweep(results: Path, *args: str) -> Path:
    """Run a short noop sweep and return its experiment directory."""
    proc = subprocess.run(
        [sys.executable, str(DRIVER), "-m", "noop", "-b", "2", "-d", "1.5", "--warmup", "0.5", "--idle_s", "0",
         *args, "--results_dir", str(results)],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (exp,) = [p for p in results.iterdir() if p.is_dir()]
    return exp


def load_like_the_original(exp: Path) -> list[dict]:
    """The original's ``load_results_data``: every file of the directory whose name holds ``results``."""
    return [json.loads((exp / name).read_text()) for name in os.listdir(exp) if "results" in name]


def clipper_latency_p99s(data: dict) -> tuple[float, float]:
    """``result.py``'s reading of Clipper's metrics: the app's p99 at ``histograms[1]``, the model's at ``[2]``."""
    model = data["node_configs"][0]["name"]
    histograms = data["clipper_metrics"]["histograms"]
    app_p99 = histograms[1]["app:" + model + ":prediction_latency"]["p99"]
    model_p99 = histograms[2]["model:" + model + ":1:prediction_latency"]["p99"]
    return float(app_p99), float(model_p99)


def test_one_clients_file_holds_its_dict_as_the_originals_files_do(tmp_path, no_leftover_processes):
    exp = sweep(tmp_path)
    (data,) = load_like_the_original(exp)
    thrus = np.mean(data["client_metrics"]["thrus"][1:])  # result.py
    p99_lats = np.mean(data["client_metrics"]["p99_lats"][1:])
    mean_lats = np.mean(data["client_metrics"]["mean_lats"][1:])
    assert thrus > 0 and 0 < mean_lats <= p99_lats < 1  # queries/s; seconds
    app_p99, model_p99 = clipper_latency_p99s(data)
    assert app_p99 > 0 and model_p99 > 0  # microseconds
    assert data["clipper_metrics"]["histograms"][0]["internal:rpc_request_queueing_delay"]["unit"] == "microseconds"
    record = json.loads((exp / data["clipper_bench"]["record"]).read_text())
    assert record["client_metrics"] == {k: v for k, v in data["client_metrics"].items() if k != "all_lats"}


def test_several_clients_files_hold_one_dict_per_client(tmp_path, no_leftover_processes):
    exp = sweep(tmp_path, "-n", "2")
    (data,) = load_like_the_original(exp)
    assert isinstance(data["client_metrics"], list) and len(data["client_metrics"]) == 2
    for client in range(2):
        assert np.mean(data["client_metrics"][client]["thrus"]) > 0
    app_p99, model_p99 = clipper_latency_p99s(data)
    assert app_p99 > 0 and model_p99 > 0
    record = json.loads((exp / data["clipper_bench"]["record"]).read_text())
    assert [set(c) for c in record["client_metrics"]] == [{"thrus", "p99_lats", "mean_lats"}] * 2


def test_client_metrics_take_the_originals_shape_for_one_client_and_the_later_drivers_for_several():
    one, two = {"thrus": [1.0]}, {"thrus": [2.0]}
    assert original_client_metrics([one]) == one
    assert original_client_metrics(one) == one  # shaping twice changes nothing
    assert original_client_metrics([one, two]) == [one, two]
    assert original_client_metrics([]) == []
