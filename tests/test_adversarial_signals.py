"""Issue 28 items 15 and 19: signals. SIGTERM during ``report`` is Ctrl-C (exit 130, one line, no
half-written figure); stopped children die with a driver killed by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, our_processes, wait_until_gone

DRIVER = REPO / "model_composition" / "image_driver_1" / "driver.py"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    proc = subprocess.run([sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "2", "-d", "1", "--warmup", "0",
                           "--idle_s", "0", "--results_dir", str(results)],
                          capture_output=True, text=True, cwd=REPO, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (exp,) = list(results.iterdir())
    return exp


def _half_written(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.stat().st_size == 0 or ".tmp" in p.name]


@pytest.mark.parametrize("after_s", [0.0, 0.4, 1.2])
def test_sigterm_during_report_is_ctrl_c_and_leaves_no_half_written_figure(experiment, tmp_path, after_s):
    """SIGTERM at some point after the report began writing files: exit 130 with one line (or 0 when it
    had finished), and every file in the report's directory whole."""
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "clipper_bench", "report", str(experiment), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not (out.exists() and any(out.iterdir())):
        time.sleep(0.005)
    time.sleep(after_s)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the report was finished before the signal")  # nothing to check about the signal
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines() == ["clipper-bench: interrupted (signal SIGTERM)"]
    assert not _half_written(out)


def test_a_figure_interrupted_while_saved_leaves_the_old_file_or_none(tmp_path, monkeypatch):
    """In process, at the narrowest point: the figure's bytes are half written when Ctrl-C lands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clipper_bench.report.build import Report, _save_figure

    fig = plt.figure()
    report = Report(tmp_path, None, [], [])
    (tmp_path / "fig.png").write_bytes(b"the old figure")

    def interrupted(path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _save_figure(report, fig, "fig")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
    assert (tmp_path / "fig.png").read_bytes() == b"the old figure"
    plt.close(fig)


def _titled(root: psutil.Process, prefix: str) -> list[psutil.Process]:
    found = []
    for proc in root.children(recursive=True):
        try:
            if " ".join(proc.cmdline()).startswith(prefix):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_stopped_children_die_with_a_driver_killed_by_sigkill(tmp_path):
    """Item 19: a replica, a load client and the power sampler stopped (SIGSTOP) when the driver is
    killed with -9 are gone within 15 s, having exited in order: the load client's shared-memory
    region and the sampler's live file are gone with them."""
    from clipper_bench.protocol.shm import SHM_DIR

    before = our_processes()
    proc = subprocess.Popen([sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "-d", "60", "--warmup", "0",
                             "--idle_s", "0", "--transport", "shm", "--results_dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    stopped: list[psutil.Process] = []
    try:
        root = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        kinds = ("clipper-bench replica", "clipper-bench loadgen", "clipper-bench sampler")
        while time.monotonic() < deadline and not all(_titled(root, k) for k in kinds):
            assert proc.poll() is None, f"the driver ended (exit {proc.returncode})"
            time.sleep(0.1)
        time.sleep(0.5)
        stopped = [_titled(root, k)[0] for k in kinds]
        client_pid = stopped[1].pid
        proc.send_signal(signal.SIGSTOP)  # first, or its manager kills the stopped replica itself
        for child in stopped:
            child.send_signal(signal.SIGSTOP)
        until = time.monotonic() + 5  # the kernel stops them as it delivers the signal
        while time.monotonic() < until and any(c.status() != psutil.STATUS_STOPPED for c in stopped):
            time.sleep(0.05)
        assert [c.status() for c in stopped] == [psutil.STATUS_STOPPED] * 3
        proc.kill()
        proc.wait()
        left = wait_until_gone(our_processes() - before, timeout_s=15)
        assert not left, f"alive 15 s after the driver was killed: {left}"
    finally:
        for child in stopped:  # only what this test stopped, should the check above have failed
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for pid in {c.pid for c in stopped}:  # this process is their subreaper: collect the zombies
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    assert not list(SHM_DIR.glob(f"cb-shm-{client_pid}-*"))
    assert not list(tmp_path.glob("*/configs/*.live.json"))
