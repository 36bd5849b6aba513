"""Issue 28 items 20 and 21, end to end with the fake NVML: GPU power reads that fail partway through a
configuration are said, not silent; limits a killed run left are restored by the next run whatever its
flags."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from clipper_bench.results.store import read_run_lines
from tests.conftest import REPO
from tests.power import fake_pynvml

DRIVER = REPO / "model_composition" / "image_driver_1" / "driver.py"
GPU = {"watts": 200.0, "power_limit_w": 700.0, "min_limit_w": 200.0, "max_limit_w": 700.0, "locked_clock_mhz": None}


@pytest.fixture
def nvml_state(tmp_path, monkeypatch):
    state = tmp_path / "nvml.json"
    monkeypatch.setenv("CLIPPER_BENCH_NVML_MODULE", "tests.power.fake_pynvml")
    monkeypatch.setenv("FAKE_NVML_STATE", str(state))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("CLIPPER_BENCH_STATE_DIR", str(tmp_path / "limits-state"))
    fake_pynvml.write_state(state, [dict(GPU)])
    return state


def test_a_run_without_gpus_restores_what_a_killed_run_left(tmp_path, nvml_state, no_leftover_processes):
    """Item 21: a run killed while GPU 0 was held at 300 W; the next run, a CPU-only one (no -g), puts
    700 W back before anything runs and says so."""
    from clipper_bench.power.limits import GpuLimits, state_path

    GpuLimits([0], power_limit_w=300).__enter__()  # ... and that run was killed: no __exit__
    saved = json.loads(state_path().read_text())
    state_path().write_text(json.dumps({**saved, "pid": 2**22 + 12345}))
    assert json.loads(nvml_state.read_text())["gpus"][0]["power_limit_w"] == 300
    proc = subprocess.run([sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "-d", "1", "--warmup", "0",
                           "--idle_s", "0", "--results_dir", str(tmp_path / "results")],
                          capture_output=True, text=True, cwd=REPO, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "GPU 0: power limit restored to 700 W (left by run pid 4206649, which was killed)" in proc.stdout
    assert json.loads(nvml_state.read_text())["gpus"][0]["power_limit_w"] == 700
    assert not state_path().exists()


def test_a_gpu_lost_while_measured_is_in_the_record_and_its_line(tmp_path, nvml_state, no_leftover_processes):
    """Item 20: the fake GPU is lost about a second into the window: the record's power block is
    'incomplete' with the reason, GPU joules are null with the reason, and the runs.ndjson line's
    sources say nvml failed (not ok)."""
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, str(DRIVER), "-m", "noop", "-g", "0", "-b", "1", "-d", "3",
                             "--warmup", "0", "--idle_s", "0", "--power_interval_ms", "50",
                             "--powercap_root", str(tmp_path / "none"), "--results_dir", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(results.glob("*/logs/noop-r1-c1-b1/client*.log")):
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            time.sleep(0.05)
        state = json.loads(nvml_state.read_text())
        state["gpus"][0]["lost_at"] = time.time() + 1.5  # the counter goes on from the same t0 until then
        tmp = nvml_state.with_name("nvml.json.new")
        tmp.write_text(json.dumps(state))
        tmp.replace(nvml_state)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]  # the serving numbers were measured: the power block says the rest
    (exp,) = list(results.iterdir())
    record = json.loads((exp / "configs" / "noop-r1-c1-b1.json").read_text())
    power = record["power"]
    assert power["sources"]["nvml"].startswith("failed ") and "GPU is lost" in power["sources"]["nvml"]
    assert power["status"].startswith("incomplete: gpu0: failed") and power["joules"] is None
    assert power["channels"]["gpu0"]["joules"] is None and "GPU is lost" in power["channels"]["gpu0"]["joules_problem"]
    (line,) = read_run_lines(exp / "runs.ndjson")
    assert line["power"]["joules"] is None and line["power"]["sources"]["nvml"] == power["sources"]["nvml"]
