"""``--calibrate``: the sleep model's known capacity measured before the sweep, stored, printed and
reported; a calibration that fails never stops the sweep, and ``--resume`` keeps the one it has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from clipper_bench.results.store import ExperimentStore
from clipper_bench.sweep import calibrate
from clipper_bench.sweep.progress import Progress
from clipper_bench.sweep.settings import RunSettings
from tests.conftest import REPO, our_processes

KEYS = {"model", "sleep_ms", "batch_size", "num_replicas", "known_capacity_qps", "measured_qps", "ratio", "duration_s"}


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipper_bench", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def test_a_run_with_calibrate_measures_the_known_capacity_and_the_report_shows_it(tmp_path):
    results = tmp_path / "results"
    proc = cli("run", "-m", "noop", "-r", "1", "-b", "1", "-d", "1", "--warmup", "0.3", "--idle_s", "0",
               "--calibrate", "--results_dir", str(results))
    assert proc.returncode == 0, proc.stderr
    (exp,) = list(results.iterdir())
    block = json.loads((exp / "experiment.json").read_text())["calibration"]
    assert KEYS <= set(block) and block["status"] == "ok"
    assert (block["model"], block["sleep_ms"], block["batch_size"], block["num_replicas"]) == ("sleep", 20.0, 1, 1)
    assert block["known_capacity_qps"] == pytest.approx(50.0)
    # loose: a shared 2-core machine; the sleep model can never beat its known capacity by much
    assert 0.5 <= block["ratio"] <= 1.1, block
    assert block["ratio"] == pytest.approx(block["measured_qps"] / 50.0)
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("calibration: ")]
    assert "known capacity 50.0 q/s" in line and f"measured {block['measured_qps']:.1f} q/s" in line
    nested = exp / block["experiment_dir"]
    assert json.loads((nested / "experiment.json").read_text())["calibration_of"] == exp.name
    assert [json.loads(x)["config_id"] for x in (exp / "runs.ndjson").read_text().splitlines()] == ["noop-r1-c1-b1"]
    assert not our_processes()

    report = cli("report", str(exp), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    (shown,) = [x for x in md.splitlines() if x.startswith("- Calibration run: ")]
    assert "known capacity 50.0 q/s" in shown and f"ratio {block['ratio']:.3f}" in shown


def _runner(tmp_path: Path, said: list[str]) -> SimpleNamespace:
    store = ExperimentStore(tmp_path)
    store.create({"experiment_id": store.experiment_id})
    return SimpleNamespace(store=store, say=said.append, progress=Progress(), command_line=["clipper-bench", "run"],
                           settings=RunSettings(model_name="noop", results_dir=tmp_path))


def test_a_calibration_that_fails_is_recorded_and_the_sweep_goes_on(tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("no engine here")

    said: list[str] = []
    runner = _runner(tmp_path, said)
    block = calibrate.run_calibration(runner, broken)
    stored = json.loads((runner.store.path / "experiment.json").read_text())["calibration"]
    assert stored == block and block["status"] == "failed" and block["measured_qps"] is None
    assert block["ratio"] is None and block["reason"] == "RuntimeError: no engine here"
    assert said == ["calibration: sleep model (20 ms per batch of 1, 1 replica), known capacity 50.0 q/s, "
                    "NOT measured (RuntimeError: no engine here)"]


def test_resume_keeps_the_calibration_the_experiment_has(tmp_path):
    said: list[str] = []
    runner = _runner(tmp_path, said)
    kept = {"model": "sleep", "sleep_ms": 20.0, "batch_size": 1, "num_replicas": 1, "known_capacity_qps": 50.0,
            "measured_qps": 48.0, "ratio": 0.96, "duration_s": 3.0, "concurrency": 3, "status": "ok"}
    runner.store.update_experiment({"calibration": kept})
    assert calibrate.run_calibration(runner, lambda *a, **k: pytest.fail("calibrated again")) == kept
    assert said[0].startswith("calibration: kept from the experiment's first run: ") and "ratio 0.960" in said[0]


def test_calibration_settings_keep_the_engine_and_drop_the_sweep(tmp_path):
    s = RunSettings(model_name="vgg", batch_sizes=(8, 32), num_replicas=(1, 2), model_gpus=(0, 0), rate_qps=(100.0,),
                    gpu_power_limits_w=(300.0,), baseline=True, repeats=3, calibrate=True, transport="shm", num_clients=2)
    c = calibrate.calibration_settings(s, tmp_path)
    assert (c.model_name, c.sleep_ms, c.batch_sizes, c.num_replicas, c.model_gpus) == ("sleep", 20.0, (1,), (1,), ())
    assert (c.rate_qps, c.concurrency, c.gpu_power_limits_w, c.baseline, c.repeats, c.calibrate, c.idle_s) == \
        ((), (), (), False, 1, False, 0.0)
    assert (c.engine, c.transport, c.num_clients, c.results_dir) == (s.engine, "shm", 2, tmp_path)
    assert calibrate.known_capacity_qps(2, 4, 20.0) == pytest.approx(400.0)
