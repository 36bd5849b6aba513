"""GPU power and clock limits: set for a configuration, restored on every way out (fake NVML only)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from clipper_bench.power.limits import GpuLimits, LimitError, check_permission
from tests.conftest import REPO, our_processes, wait_until_gone
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
    fake_pynvml.write_state(state, [dict(GPU), dict(GPU)])
    return state


def gpus(state):
    return json.loads(state.read_text())["gpus"]


def test_limits_are_set_inside_and_restored_after(nvml_state):
    with GpuLimits([0, 1], power_limit_w=300, clock_mhz=1410):
        assert [g["power_limit_w"] for g in gpus(nvml_state)] == [300, 300]
        assert [g["locked_clock_mhz"] for g in gpus(nvml_state)] == [1410, 1410]
    assert [g["power_limit_w"] for g in gpus(nvml_state)] == [700, 700]
    assert [g["locked_clock_mhz"] for g in gpus(nvml_state)] == [None, None]


@pytest.mark.parametrize("error", [RuntimeError("a replica crashed"), KeyboardInterrupt()])
def test_limits_are_restored_when_the_configuration_fails_or_is_interrupted(nvml_state, error):
    with pytest.raises(type(error)):
        with GpuLimits([0], power_limit_w=250):
            assert gpus(nvml_state)[0]["power_limit_w"] == 250
            raise error
    assert gpus(nvml_state)[0]["power_limit_w"] == 700


def test_without_permission_the_error_comes_before_anything_runs(nvml_state):
    fake_pynvml.write_state(nvml_state, [dict(GPU)], may_set=False)
    with pytest.raises(LimitError, match="run the driver as root"):
        check_permission([0], [300], [])
    with pytest.raises(LimitError, match="from 200 to 700 W"):
        fake_pynvml.write_state(nvml_state, [dict(GPU)])
        check_permission([0], [150], [])
    with pytest.raises(LimitError, match="need GPUs"):
        check_permission([], [300], [])


def run_driver(*args, results, timeout=180):
    return subprocess.run([sys.executable, str(DRIVER), *args, "--results_dir", str(results)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_power_limit_sweep_records_each_limit_and_restores(tmp_path, nvml_state, no_leftover_processes):
    proc = run_driver("-m", "noop", "-g", "0", "-b", "2", "--gpu_power_limits", "250", "400", "-d", "1",
                      "--warmup", "0.3", "--idle_s", "0", "--power_interval_ms", "50",
                      "--powercap_root", str(tmp_path / "none"), results=tmp_path / "results")
    assert proc.returncode == 0, proc.stderr
    (exp,) = (tmp_path / "results").iterdir()
    runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    assert [r["config_id"] for r in runs] == ["noop-r1-c1-b2-pl250", "noop-r1-c1-b2-pl400"]
    for run, limit in zip(runs, (250, 400), strict=True):
        assert run["status"] == "ok" and run["gpu_power_limit_w"] == limit
        record = json.loads((exp / "configs" / f"{run['config_id']}.json").read_text())
        # what the GPU reported while the configuration was measured
        assert record["power"]["channels"]["gpu0"]["power_limit_w_avg"] == limit
    assert gpus(nvml_state)[0]["power_limit_w"] == 700


def test_no_permission_stops_the_driver_before_it_starts(tmp_path, nvml_state, no_leftover_processes):
    fake_pynvml.write_state(nvml_state, [dict(GPU)], may_set=False)
    proc = run_driver("-m", "noop", "-g", "0", "--gpu_power_limits", "300", results=tmp_path / "results", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "run the driver as root" in proc.stderr
    assert gpus(nvml_state)[0]["power_limit_w"] == 700


def test_ctrl_c_during_a_limited_configuration_restores_the_limit(tmp_path, nvml_state):
    before = our_processes()
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), "-m", "noop", "-g", "0", "-b", "2", "--gpu_power_limits", "300",
         "--gpu_clocks", "1200", "-d", "20", "--warmup", "0", "--idle_s", "0",
         "--powercap_root", str(tmp_path / "none"), "--results_dir", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (gpus(nvml_state)[0]["power_limit_w"], gpus(nvml_state)[0]["locked_clock_mhz"]) != (300, 1200):
        time.sleep(0.05)
    assert gpus(nvml_state)[0]["power_limit_w"] == 300 and gpus(nvml_state)[0]["locked_clock_mhz"] == 1200
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert gpus(nvml_state)[0]["power_limit_w"] == 700
    assert gpus(nvml_state)[0]["locked_clock_mhz"] is None
    assert not wait_until_gone(our_processes() - before, timeout_s=5)


def test_clock_permission_is_checked_before_anything_runs(nvml_state):
    fake_pynvml.write_state(nvml_state, [dict(GPU)], may_set=False)
    with pytest.raises(LimitError, match="run the driver as root"):
        check_permission([0], [], [1200])


def test_an_nvml_error_while_setting_is_a_limit_error_and_puts_back_what_was_set(nvml_state, monkeypatch):
    def refuse(h, lo, hi):
        raise fake_pynvml.NVMLError("Unknown Error")

    monkeypatch.setattr(fake_pynvml, "nvmlDeviceSetGpuLockedClocks", refuse)
    with pytest.raises(LimitError, match="setting GPU limits failed .*put back"):
        with GpuLimits([0], power_limit_w=300, clock_mhz=1200):
            pass
    assert gpus(nvml_state)[0]["power_limit_w"] == 700


def test_a_killed_run_is_undone_from_the_state_file_to_the_first_value_found(nvml_state, tmp_path):
    from clipper_bench.power.limits import restore_leftovers, state_path

    limits = GpuLimits([0], power_limit_w=300, clock_mhz=1200)
    limits.__enter__()  # ... and the driver is killed: no __exit__
    saved = json.loads(state_path().read_text())
    assert saved["gpus"]["0"] == {"power_limit_mw": 700_000, "clock_locked": True}
    saved["pid"] = 2**22 + 12345  # a pid that is not running: the run was killed
    state_path().write_text(json.dumps(saved))
    # the next run sets a limit again before anything restored: it must remember 700 W, not 300 W
    assert restore_leftovers() == [
        "GPU 0: power limit restored to 700 W (left by run pid 4206649, which was killed)",
        "GPU 0: clock lock released (left by run pid 4206649, which was killed)",
    ]
    assert gpus(nvml_state)[0]["power_limit_w"] == 700 and gpus(nvml_state)[0]["locked_clock_mhz"] is None
    assert not state_path().exists() and restore_leftovers() == []


def test_a_second_limit_remembers_the_value_found_before_the_first(nvml_state):
    from clipper_bench.power.limits import state_path

    first = GpuLimits([0], power_limit_w=300)
    first.__enter__()  # killed: 300 W stays set, the state file says 700 W was found
    with GpuLimits([0], power_limit_w=400):
        assert gpus(nvml_state)[0]["power_limit_w"] == 400
    assert gpus(nvml_state)[0]["power_limit_w"] == 700  # not the leftover 300 W
    assert not state_path().exists()


def test_a_leftover_is_restored_even_when_its_pid_now_names_another_process(nvml_state):
    """Issue 28 item 21: the state file is the truth; a pid the system gave to another process (here
    this test's own, with another start time) does not pass for the killed run being alive."""
    import os

    from clipper_bench.power.limits import restore_leftovers, state_path

    GpuLimits([0], power_limit_w=300).__enter__()  # killed: no __exit__
    saved = json.loads(state_path().read_text())
    assert saved["pid"] == os.getpid() and saved["pid_start"]  # the pid *and* its start time name the run
    assert restore_leftovers() == []  # that run (this process) is still running: its limits are its own
    saved["pid_start"] -= 1  # the same pid, another process: the run that wrote it is gone
    state_path().write_text(json.dumps(saved))
    assert restore_leftovers() == [f"GPU 0: power limit restored to 700 W (left by run pid {os.getpid()}, "
                                   "which was killed)"]
    assert gpus(nvml_state)[0]["power_limit_w"] == 700 and not state_path().exists()


def test_a_leftover_without_nvml_is_one_line_not_a_crash(nvml_state):
    from clipper_bench.power.limits import restore_leftovers, state_path

    GpuLimits([0], power_limit_w=300).__enter__()
    saved = json.loads(state_path().read_text())
    state_path().write_text(json.dumps({**saved, "pid": 2**22 + 12345}))
    fake_pynvml.write_state(nvml_state, [dict(GPU)], missing=True)
    (line,) = restore_leftovers()
    assert line.startswith("NOT restored: GPU 0: GPU limits need NVML") and "which was killed" in line
    assert state_path().exists()  # kept for a run that can


def test_a_failed_set_whose_restore_fails_too_never_says_put_back(nvml_state, monkeypatch):
    """Issue 28 item 22: setting fails, then putting back fails: the error does not claim they were put
    back, the problems are listed, and the next run says the earlier one could not restore them (not
    that it was killed)."""
    from clipper_bench.power.limits import restore_leftovers, state_path

    real_set = fake_pynvml.nvmlDeviceSetPowerManagementLimit
    calls = []

    def set_once(h, mw):  # the limit is set, then every later set (the restore) is refused
        calls.append(mw)
        if len(calls) > 1:
            raise fake_pynvml.NVMLError("Unknown Error")
        real_set(h, mw)

    def refuse(h, lo, hi):
        raise fake_pynvml.NVMLError("Insufficient Permissions")

    monkeypatch.setattr(fake_pynvml, "nvmlDeviceSetPowerManagementLimit", set_once)
    monkeypatch.setattr(fake_pynvml, "nvmlDeviceSetGpuLockedClocks", refuse)
    limits = GpuLimits([0], power_limit_w=300, clock_mhz=1200)
    with pytest.raises(LimitError) as caught:
        limits.__enter__()
    assert "put back" not in str(caught.value).replace("putting back what was found failed", "")
    assert "putting back what was found failed too" in str(caught.value)
    assert limits.restore_problems == ["GPU 0: power limit not restored to 700 W: Unknown Error"]
    assert gpus(nvml_state)[0]["power_limit_w"] == 300  # left set, and the state file knows
    saved = json.loads(state_path().read_text())
    saved["pid"] = 2**22 + 12345  # that run has ended now (normally: it was not killed)
    state_path().write_text(json.dumps(saved))
    monkeypatch.setattr(fake_pynvml, "nvmlDeviceSetPowerManagementLimit", real_set)
    lines = restore_leftovers()
    assert lines[0] == ("GPU 0: power limit restored to 700 W (left by run pid 4206649, which could not restore it: "
                        "GPU 0: power limit not restored to 700 W: Unknown Error)")
    assert not any("killed" in line for line in lines)
    assert gpus(nvml_state)[0]["power_limit_w"] == 700


def test_a_set_that_fails_but_is_put_back_says_so_once(nvml_state, monkeypatch):
    def refuse(h, lo, hi):
        raise fake_pynvml.NVMLError("Unknown Error")

    monkeypatch.setattr(fake_pynvml, "nvmlDeviceSetGpuLockedClocks", refuse)
    limits = GpuLimits([0], power_limit_w=300, clock_mhz=1200)
    with pytest.raises(LimitError, match="what had been changed was put back"):
        limits.__enter__()
    assert limits.restore_problems == [] and gpus(nvml_state)[0]["power_limit_w"] == 700
