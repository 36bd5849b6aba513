"""Power sampling against a fake powercap tree and a fake NVML, with the real sampler process above."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from clipper_bench.power.rapl import unwrap_delta
from clipper_bench.power.sampler import PowerMonitor, SamplerConfig
from clipper_bench.power.summary import summarize_power
from tests.conftest import REPO
from tests.power import fake_pynvml
from tests.power.fake_powercap import FakePowercap

FAKE_NVML = "tests.power.fake_pynvml"


def sample_window(tmp_path, seconds=1.0, interval_s=0.05, **kwargs) -> dict:
    cfg = SamplerConfig(interval_s=interval_s, start_wall=time.time() + 0.3, end_wall=time.time() + 0.3 + seconds,
                        out_path=str(tmp_path / "samples.json"), **kwargs)
    return run_window(cfg)


def run_window(cfg: SamplerConfig) -> dict:
    """The samples document of a real sampler process over ``cfg``'s window (stopped on every way out)."""
    monitor = PowerMonitor(cfg)
    try:
        monitor.start()
        return monitor.result()
    finally:
        monitor.stop()


@pytest.fixture
def fake_nvml(tmp_path, monkeypatch):
    state = tmp_path / "nvml.json"
    monkeypatch.setenv("CLIPPER_BENCH_NVML_MODULE", FAKE_NVML)
    monkeypatch.setenv("FAKE_NVML_STATE", str(state))
    monkeypatch.setenv("PYTHONPATH", str(REPO))

    def make(gpus, **kwargs):
        fake_pynvml.write_state(state, gpus, **kwargs)
        return state

    return make


def test_unwrap_delta_allows_one_wrap():
    assert unwrap_delta(100, 250, 1000) == 150
    assert unwrap_delta(900, 50, 999) == 150  # 900 -> 999, wrap to 0, -> 50
    assert unwrap_delta(0, 0, 999) == 0


def test_rapl_reads_packages_and_dram_once_each(tmp_path):
    with FakePowercap(tmp_path / "powercap"):
        doc = sample_window(tmp_path, powercap_root=str(tmp_path / "powercap"))
    assert doc["status"]["rapl"] == "ok"
    # psys contains the packages and core is inside package-0: neither may be added
    assert set(doc["series"]) == {"package-0", "dram-0", "package-1", "dram-1"}
    power = summarize_power(doc, num_completed=100)
    ch = power["channels"]
    for name, watts in (("package-0", 50.0), ("dram-0", 5.0), ("package-1", 40.0), ("dram-1", 4.0)):
        assert ch[name]["avg_w"] == pytest.approx(watts, rel=0.05), name
    assert power["avg_w"] == pytest.approx(99.0, rel=0.05)
    assert power["joules_per_query"] == pytest.approx(power["joules"] / 100)


def test_rapl_counter_wraparound_is_unwrapped(tmp_path):
    # a 1 J counter at 5 W wraps five times a second; read every 50 ms it never wraps unseen
    domains = {"intel-rapl:0": ("package-0", 5.0, 999_999)}
    with FakePowercap(tmp_path / "powercap", domains, start_uj={"intel-rapl:0": 900_000}, tick_s=0.005):
        doc = sample_window(tmp_path, seconds=1.5, powercap_root=str(tmp_path / "powercap"))
    ch = summarize_power(doc, num_completed=1)["channels"]["package-0"]
    assert ch["avg_w"] == pytest.approx(5.0, rel=0.05)
    assert ch["joules"] == pytest.approx(5.0 * ch["duration_s"], rel=0.05)


def test_missing_powercap_is_unavailable_with_its_reason(tmp_path):
    doc = sample_window(tmp_path, seconds=0.3, powercap_root=str(tmp_path / "nowhere"))
    assert doc["status"]["rapl"].startswith("unavailable: no powercap at")
    power = summarize_power(doc, num_completed=10)
    assert power["joules"] is None and power["joules_per_query"] is None  # unknown, not zero


def test_root_only_counter_names_the_fix(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="powercap-"))
    try:
        os.chmod(root, 0o755)
        FakePowercap(root, {"intel-rapl:0": ("package-0", 10.0, 999_999_999)})
        os.chmod(root / "intel-rapl:0" / "energy_uj", 0o400)
        code = (
            "from pathlib import Path; from clipper_bench.power.rapl import RaplSource; "
            "from clipper_bench.power.source import SourceUnavailable\n"
            f"try:\n    RaplSource(Path({str(root)!r})).open(); print('opened')\n"
            "except SourceUnavailable as e:\n    print('unavailable:', e)"
        )
        # a copy of the package that user nobody can read (the checkout may sit in a 0700 directory)
        pkg = root / "pkg"
        shutil.copytree(REPO / "clipper_bench", pkg / "clipper_bench", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [pkg, *pkg.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        cmd = [sys.executable, "-c", code]
        if os.geteuid() == 0:  # root reads anything: drop to nobody, as a normal user would be
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv to drop privileges")
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=root,
                             env={**os.environ, "PYTHONPATH": str(pkg), "PYTHONDONTWRITEBYTECODE": "1"})
        assert "unavailable: permission denied" in out.stdout, out.stdout + out.stderr
        assert "chmod a+r" in out.stdout
    finally:
        shutil.rmtree(root)


def test_nvml_absent_is_unavailable(tmp_path, fake_nvml):
    fake_nvml([], missing=True)
    doc = sample_window(tmp_path, seconds=0.3, gpus=(0,), powercap_root=str(tmp_path / "none"))
    assert doc["status"]["nvml"].startswith("unavailable: NVML library or driver not found")


def test_nvml_counter_and_integrated_energy_agree(tmp_path, fake_nvml):
    fake_nvml([{"watts": 300.0, "counter": True, "instant": True}])
    doc = sample_window(tmp_path, seconds=1.5, gpus=(0,), powercap_root=str(tmp_path / "none"))
    assert doc["status"]["nvml"] == "ok"
    gpu = summarize_power(doc, num_completed=300)["channels"]["gpu0"]
    assert gpu["avg_w"] == pytest.approx(300.0, rel=0.02)
    assert gpu["joules_counter"] == pytest.approx(gpu["joules_integrated"], rel=0.02)
    assert abs(gpu["counter_vs_integrated_rel_diff"]) < 0.02
    assert gpu["util_pct_avg"] == 87 and gpu["sm_clock_mhz_avg"] == 1980 and gpu["temp_c_avg"] == 41


def test_gpu_without_energy_counter_falls_back_to_integrated_power(tmp_path, fake_nvml):
    fake_nvml([{"watts": 120.0, "counter": False, "instant": False}])
    doc = sample_window(tmp_path, seconds=1.0, gpus=(0,), powercap_root=str(tmp_path / "none"))
    gpu = summarize_power(doc, num_completed=1)["channels"]["gpu0"]
    assert gpu["joules_counter"] is None
    assert gpu["joules"] == gpu["joules_integrated"] == pytest.approx(120.0 * gpu["duration_s"], rel=0.02)


def test_energy_per_query_total_and_above_idle():
    doc = {
        "config": {"interval_s": 0.5},
        "status": {"nvml": "ok", "rapl": "ok", "cpu": "ok"},
        "series": {
            "gpu0": {"t": [0.0, 1.0, 2.0], "energy_j": [10.0, 310.0, 610.0], "power_w": [300.0, 300.0, 300.0]},
            "package-0": {"t": [0.0, 1.0, 2.0], "energy_j": [0.0, 50.0, 100.0], "power_w": [None, None, None]},
            "cpu:replica1": {"t": [0.0, 1.0, 2.0], "energy_j": [None] * 3, "power_w": [None] * 3, "util_pct": [50, 60, 70]},
        },
    }
    p = summarize_power(doc, num_completed=1000, idle_w={"gpu0": 70.0, "package-0": 20.0})
    assert p["joules"] == pytest.approx(700.0)  # 600 J GPU + 100 J package; CPU use is not energy
    assert p["avg_w"] == pytest.approx(350.0)
    assert p["joules_per_query"] == pytest.approx(0.7)
    # above idle: (600 - 70*2) + (100 - 20*2) = 520 J over 1000 queries
    assert p["joules_per_query_above_idle"] == pytest.approx(0.52)
    assert p["channels"]["cpu:replica1"]["util_pct_avg"] == pytest.approx(60.0)
    assert summarize_power(doc, num_completed=0)["joules_per_query"] is None


def test_a_sampler_that_fails_is_recorded_and_the_run_goes_on(tmp_path):
    doc = sample_window(tmp_path, seconds=0.2, powercap_root=str(tmp_path / "none"),
                        **{})  # out_path below a missing directory: the sampler cannot write
    assert "status" in doc
    cfg = SamplerConfig(interval_s=0.05, start_wall=time.time(), end_wall=time.time() + 0.2,
                        out_path=str(tmp_path / "missing-dir" / "samples.json"))
    monitor = PowerMonitor(cfg)
    monitor.start()
    result = monitor.result()
    assert "error" in result and "power sampler failed" in result["error"]
    assert summarize_power(result, num_completed=10)["joules"] is None


def test_driver_records_power_with_idle_baseline(tmp_path, fake_nvml, no_leftover_processes):
    fake_nvml([{"watts": 250.0}])
    with FakePowercap(tmp_path / "powercap"):
        proc = subprocess.run(
            [sys.executable, str(REPO / "model_composition/image_driver_1/driver.py"), "-m", "noop", "-g", "0",
             "-b", "2", "-d", "1.5", "--warmup", "0.5", "--idle_s", "1", "--power_interval_ms", "50",
             "--powercap_root", str(tmp_path / "powercap"), "--results_dir", str(tmp_path / "results")],
            capture_output=True, text=True, cwd=REPO, timeout=180,
        )
    assert proc.returncode == 0, proc.stderr
    (exp,) = (tmp_path / "results").iterdir()
    experiment = json.loads((exp / "experiment.json").read_text())
    assert experiment["idle_power"]["watts"]["gpu0"] == pytest.approx(250.0, rel=0.05)
    record = json.loads((exp / "configs" / "noop-r1-c1-b2.json").read_text())
    power = record["power"]
    assert power["sources"] == {"nvml": "ok", "rapl": "ok", "cpu": "ok"}
    assert power["channels"]["gpu0"]["avg_w"] == pytest.approx(250.0, rel=0.05)
    assert set(power["energy_channels"]) == {"gpu0", "package-0", "dram-0", "package-1", "dram-1"}
    completed = record["summary"]["num_completed"]
    assert power["joules_per_query"] == pytest.approx(power["joules"] / completed)
    # idle and loaded draw are the same fake watts, so nothing is above idle
    assert abs(power["joules_per_query_above_idle"]) < 0.05 * power["joules_per_query"]
    samples = json.loads((exp / "configs" / record["power_samples_file"]).read_text())
    assert len(samples["series"]["gpu0"]["t"]) >= 20
    line = json.loads((exp / "runs.ndjson").read_text().splitlines()[0])
    assert line["power"]["joules_per_query"] == power["joules_per_query"]


def test_a_gpu_lost_partway_is_recorded_with_its_reason_and_no_joules(tmp_path, fake_nvml):
    """Issue 28 item 20: NVML reads that start failing partway through the window: the source is
    recorded as failed with the reason, the GPU's joules and the totals are null with the reason, and
    the power block is not 'ok'."""
    fake_nvml([{"watts": 200.0, "lost_at": time.time() + 0.3 + 0.6}])  # 0.6 s into a 1.5 s window
    with FakePowercap(tmp_path / "powercap") as powercap:
        doc = sample_window(tmp_path, seconds=1.5, gpus=(0,), powercap_root=str(powercap.root))
    assert doc["status"]["nvml"].startswith("failed ") and "GPU 0: energy counter read failed: GPU is lost" in \
        doc["status"]["nvml"]
    assert doc["status"]["rapl"] == "ok"
    power = summarize_power(doc, num_completed=100, idle_w={"gpu0": 50.0, "package-0": 10.0})
    gpu = power["channels"]["gpu0"]
    assert gpu["joules"] is None and gpu["avg_w"] is None and "GPU is lost" in gpu["joules_problem"]
    assert power["joules"] is None and power["joules_per_query"] is None and power["avg_w"] is None
    assert power["joules_per_query_above_idle"] is None
    assert power["status"].startswith("incomplete: gpu0: failed") and "GPU is lost" in power["joules_problem"]
    assert power["sources"]["nvml"] == doc["status"]["nvml"]
    assert "package-0" in power["measured_channels"] and power["channels"]["package-0"]["joules"] is not None


def test_a_gpu_with_neither_counter_nor_power_is_unavailable_with_its_reason(tmp_path, fake_nvml, monkeypatch):
    def unsupported(h):
        raise fake_pynvml.NVMLError_NotSupported("Not Supported")

    monkeypatch.setattr(fake_pynvml, "nvmlDeviceGetPowerUsage", unsupported)
    from clipper_bench.power.nvml import NvmlSource
    from clipper_bench.power.source import SourceUnavailable

    fake_nvml([{"watts": 120.0, "counter": False, "instant": False}])
    with pytest.raises(SourceUnavailable, match="GPU 0 reports neither an energy counter nor its power"):
        NvmlSource([0]).open()
