"""What a user watching a sweep sees: a live panel on a terminal, plain lines in a log file."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys

import requests
from clipper_admin import ClipperConnection

from clipper_bench.sweep import progress as progress_mod
from clipper_bench.sweep.progress import LivePoller, LiveStats, PlainProgress
from tests.conftest import REPO

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_plain_progress_prints_status_lines_with_time_left(monkeypatch):
    monkeypatch.setattr(progress_mod, "PLAIN_EVERY_S", 0.0)
    out = io.StringIO()
    p = PlainProgress(out)
    p.begin([10.0, 10.0, 10.0])
    p.config_started(1, "lgbm-r1-c1-b1")
    p.update(LiveStats("warming up", 900.0, 4.0, 0, None))  # not measuring yet: no line
    p.update(LiveStats("measuring", 1234.4, 5.06, 2, 251.3))
    (line,) = out.getvalue().splitlines()
    assert line.startswith("[1/3] lgbm-r1-c1-b1 measuring: 1,234 q/s ok, p99 5.1 ms, 0 SLO defaults, 2 errors, "
                           "251 W; elapsed 0:00")
    # nothing measured yet: each configuration is estimated at warm-up + duration + 3 s
    assert line.endswith("about 0:39 left")
    assert not ANSI.search(out.getvalue())


def test_live_poller_reads_a_running_frontend(manager_factory):
    manager = manager_factory()
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.register_application("calc", "doubles", "TIMEOUT", 5_000_000)
    conn.deploy_model("noop", "1", "doubles", "clipper-bench/noop", num_replicas=1, batch_size=4)
    conn.link_model_to_app("calc", "noop")
    url = f"http://{manager.get_query_addr()}"
    poller = LivePoller(f"{url}/metrics", "calc", lambda: 42.0, lambda: "measuring", lambda live: None)
    first = poller.poll()
    assert first.throughput_qps is None and first.p99_ms is None and first.watts == 42.0
    for _ in range(30):
        assert requests.post(f"{url}/calc/predict", json={"input": [1.0]}, timeout=10).status_code == 200
    second = poller.poll()
    assert second.throughput_qps > 0 and second.p99_ms > 0 and second.errors == 0
    manager.reset_metrics()
    assert poller.poll().p99_ms is None


def test_live_numbers_count_successes_only_and_warmup_is_cleared_when_the_window_begins(manager_factory):
    manager = manager_factory(container_args=["--sleep_ms", "300"])
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.register_application("slow", "doubles", "TIMEOUT", 30_000)  # a 30 ms SLO for 300 ms batches
    conn.deploy_model("sleep", "1", "doubles", "clipper-bench/sleep", num_replicas=1, batch_size=4)
    conn.link_model_to_app("slow", "sleep")
    url = f"http://{manager.get_query_addr()}"
    phase = ["warming up"]
    resets = []
    poller = LivePoller(f"{url}/metrics", "slow", lambda: None, lambda: phase[0], lambda live: None,
                        on_measuring=lambda: (resets.append(1), manager.reset_metrics()))
    warm = poller.poll()
    assert progress_mod.describe_live(warm).startswith("warming up (not measured): ")
    for _ in range(3):
        assert requests.post(f"{url}/slow/predict", json={"input": [1.0]}, timeout=10).json()["default"]
    assert poller.poll().defaults == 3 and resets == []
    phase[0] = "measuring"
    assert poller.poll().defaults == 0 and resets == [1]  # the window starts with clean metrics
    for _ in range(4):
        assert requests.post(f"{url}/slow/predict", json={"input": [1.0]}, timeout=10).json()["default"]
    live = poller.poll()
    assert live.defaults == 4 and live.errors == 0 and live.throughput_qps == 0  # defaults are not throughput
    assert "0 q/s ok" in progress_mod.describe_live(live) and "4 SLO defaults" in progress_mod.describe_live(live)


def test_a_terminal_gets_a_live_panel_and_a_file_gets_plain_lines(tmp_path, no_leftover_processes):
    args = [sys.executable, "-m", "clipper_bench", "run", "-m", "noop", "-b", "1", "2", "-d", "2",
            "--warmup", "0.5", "--idle_s", "0", "--results_dir", str(tmp_path / "tty")]
    pid, fd = pty.fork()
    if pid == 0:  # the child: run the driver on the pseudo-terminal
        os.chdir(REPO)
        os.execv(sys.executable, args)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    screen = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert "configuration  1 of 2" in screen and "configuration  2 of 2" in screen
    assert "left" in screen and "q/s" in screen and "results in" in screen

    plain = subprocess.run([*args[:-1], str(tmp_path / "file")], capture_output=True, text=True, cwd=REPO,
                           timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert not ANSI.search(plain.stdout) and "configuration  1 of 2" not in plain.stdout
    assert "[2/2] noop-r1-c1-b2: " in plain.stdout
