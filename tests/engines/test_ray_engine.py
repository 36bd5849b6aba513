"""--engine ray: a local Ray (loopback only) started and stopped by the run, replicas pinned from
inside, batch size and replica count changed without restarting the replicas that stay."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray Serve not installed (pip install -e '.[ray]')"),
    pytest.mark.timeout(900),
]
RAY_NAMES = ("raylet", "gcs_server", "ray::", "dashboard", "log_monitor")


def ray_processes() -> set[int]:
    """Ray's live processes among this test process's descendants (it is the subreaper of every
    orphan among them: see conftest), so a Ray that another run on the machine started never counts."""
    pids = set()
    for p in psutil.Process().children(recursive=True):
        try:
            text = p.name() + " " + " ".join(p.cmdline())
            if p.status() != psutil.STATUS_ZOMBIE and any(n in text for n in RAY_NAMES):
                pids.add(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return pids


def non_loopback_connections(root_pid: int) -> list[str]:
    """Established TCP connections of the run's process tree that leave 127.0.0.1."""
    bad = []
    try:
        procs = [psutil.Process(root_pid), *psutil.Process(root_pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return bad
    for p in procs:
        try:
            conns = p.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            if c.status == psutil.CONN_ESTABLISHED and c.raddr:
                for ip in (c.laddr.ip, c.raddr.ip):
                    if ip not in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
                        bad.append(f"{p.name()} {c.laddr.ip}:{c.laddr.port} -> {c.raddr.ip}:{c.raddr.port}")
    return bad


def sweep(model: str, results: Path, *extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_bench", "run", "-m", model, "--engine", "ray", "-r", "1", "2",
         "-b", "1", "4", "-d", "2", "--warmup", "0.5", "--idle_s", "0", "--results_dir", str(results), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    leaks: list[str] = []
    while proc.poll() is None:  # watch the connections while the run is up
        leaks += non_loopback_connections(proc.pid)
        time.sleep(0.5)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), leaks


def test_a_ray_sweep_pins_replicas_keeps_them_and_leaves_no_ray_behind(tmp_path):
    model = "noop"  # a trained model on Ray: the handle-ingress test below
    before = ray_processes()
    proc, leaks = sweep(model, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert leaks == []
    (exp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    assert [(r["config_id"], r["status"], r["engine"]) for r in runs] == [
        (f"{model}-r{r}-c1-b{b}", "ok", "ray") for r in (1, 2) for b in (1, 4)]
    assert all(r["num_completed"] > 0 and r["num_errors"] == 0 for r in runs)
    deps = {r["config_id"]: json.loads((exp / "configs" / f"{r['config_id']}.json").read_text())["deployment"]
            for r in runs}
    first = deps[f"{model}-r1-c1-b1"]["ray_replicas"]
    two = deps[f"{model}-r2-c1-b4"]["ray_replicas"]
    # each replica pinned, every one of its threads, to its own core, as read from inside it
    assert [(x["slot"], x["cpus"], x["thread_cpus"]) for x in two] == [(0, [0], [0]), (1, [1], [1])]
    # batch size and replica count changed with no new deployment: the first replica served them all
    assert all(d["started_for"] == f"{model}-r1-c1-b1" for d in deps.values())
    assert first[0]["pid"] in [x["pid"] for x in two]
    assert not wait_gone(ray_processes() - before)


def wait_gone(pids: set[int], timeout_s: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = {p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        if not pids:
            return set()
        time.sleep(0.2)
    return pids


def test_handle_ingress_serves_a_trained_model(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "clipper_bench", "run", "-m", "lgbm", "--engine", "ray", "--ray_ingress", "handle",
         "-b", "2", "-d", "2", "--warmup", "0.5", "--idle_s", "0", "--results_dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (exp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (line,) = [json.loads(x) for x in (exp / "runs.ndjson").read_text().splitlines()]
    assert line["status"] == "ok" and line["transport"] == "ray_handle" and line["num_completed"] > 0


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    from clipper_bench.engines.ray import engine as ray_deployment

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("ray") else real(name, *a))
    with pytest.raises(ray_deployment.PlanError, match=r"pip install -e '\.\[ray\]'"):
        ray_deployment.check_ray_installed()
