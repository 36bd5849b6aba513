"""Faults in service: replicas that die or raise, replicas that never connect, a frontend that dies."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from clipper_admin import ClipperConnection
from clipper_admin.exceptions import ClipperException


def deploy(manager, model: str, replicas: int, batch_size: int = 1, slo_us: int = 20_000_000) -> str:
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.register_application("app", "doubles", "TIMEOUT", slo_us)
    conn.deploy_model(model, "1", "doubles", f"clipper-bench/{model}", num_replicas=replicas, batch_size=batch_size)
    conn.link_model_to_app("app", model)
    return f"http://{manager.get_query_addr()}/app/predict"


def containers(manager) -> list[dict]:
    return requests.post(f"http://{manager.get_admin_addr()}/admin/get_all_containers",
                         json={"verbose": True}, timeout=5).json()


def test_a_killed_replica_fails_its_queries_fast_and_the_other_serves_on(manager_factory):
    manager = manager_factory(container_args=["--sleep_ms", "2000"])
    url = deploy(manager, "sleep", 2)
    victim = manager.replicas[("sleep", "1")][0].process
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(requests.post, url, json={"input": [1.0]}, timeout=30) for _ in range(2)]
        time.sleep(0.5)  # both replicas are inside their 2 s batch
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        answers = [f.result() for f in futures]
        first_answer_s = min(time.monotonic() - killed_at, 99)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 500], [r.text for r in answers]
    failed = next(r for r in answers if r.status_code == 500).json()
    assert "killed by signal 9" in failed["cause"]
    assert first_answer_s < 5
    (fault,) = manager.faults
    assert fault["pid"] == victim.pid and fault["exit_code"] == -9
    assert len(containers(manager)) == 1
    # the survivor serves on
    assert requests.post(url, json={"input": [1.0]}, timeout=30).status_code == 200
    assert manager.get_num_replicas("sleep", "1") == 1


def test_a_model_that_raises_takes_down_its_replica_only(manager_factory):
    manager = manager_factory()
    url = deploy(manager, "crash", 2)
    bad = requests.post(url, json={"input": [-1.0, 2.0]}, timeout=30)
    assert bad.status_code == 500 and "exited with code 1" in bad.json()["cause"]
    deadline = time.monotonic() + 5
    while not manager.faults and time.monotonic() < deadline:
        time.sleep(0.05)
    (fault,) = manager.faults
    assert "the model raised" in open(fault["log"]).read()
    for _ in range(5):
        good = requests.post(url, json={"input": [1.0, 2.0]}, timeout=30)
        assert good.status_code == 200 and good.json()["output"] == 2


def test_a_replica_that_never_connects_fails_after_the_timeout(manager_factory):
    # The replica warms up with a 30 s batch before it connects: a model far too slow to load.
    manager = manager_factory(container_args=["--sleep_ms", "30000", "--warm_batch_size", "1"],
                              start_timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(ClipperException, match=r"did not connect within 2 s"):
        deploy(manager, "sleep", 1)
    assert time.monotonic() - started < 10


def test_a_silent_replica_is_forgotten_by_the_frontend(manager_factory):
    """Without the manager's help (as for containers it does not own): a stopped replica sends no
    heartbeat and is removed after --replica_timeout_s."""
    manager = manager_factory(replica_timeout_s=2.0, watch_interval_s=3600)
    url = deploy(manager, "noop", 1, slo_us=500_000)
    replica = manager.replicas[("noop", "1")][0].process
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 15
        while containers(manager) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert containers(manager) == []
        # queries now wait for a replica and get the app's default at the SLO
        assert requests.post(url, json={"input": [1.0]}, timeout=30).json()["default"] is True
    finally:
        os.kill(replica.pid, signal.SIGCONT)


def test_a_replica_holding_a_batch_too_long_is_declared_hung_by_the_frontend(manager_factory):
    """Without the manager's help: a stopped replica holding a batch is hung once the batch is 10x
    older than this model's batches take (never under --hang_min_s); its queries fail and the
    frontend reports the fault."""
    manager = manager_factory(container_args=["--sleep_ms", "50"], watch_interval_s=3600, hang_min_s=1.0)
    url = deploy(manager, "sleep", 1)
    for _ in range(3):  # the frontend learns how long batches take
        assert requests.post(url, json={"input": [1.0]}, timeout=30).status_code == 200
    replica = manager.replicas[("sleep", "1")][0].process
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        held = requests.post(url, json={"input": [1.0]}, timeout=30)
        assert held.status_code == 500 and "hung: held a batch for" in held.json()["cause"]
        assert 1.0 <= time.monotonic() - started < 5
        (fault,) = manager.collect_frontend_faults()
        assert fault["kind"] == "hung" and fault["identity"] == f"cb-{replica.pid}"
        assert manager.faults == [fault] and containers(manager) == []
    finally:
        os.kill(replica.pid, signal.SIGCONT)


def test_the_manager_kills_a_replica_the_frontend_declared_hung(manager_factory, monkeypatch):
    import clipper_bench.server.manager as manager_module

    monkeypatch.setattr(manager_module, "_stopped", lambda pid: False)  # only the frontend's rule sees it
    manager = manager_factory(container_args=["--sleep_ms", "50"], hang_min_s=1.0)
    url = deploy(manager, "sleep", 1)
    assert requests.post(url, json={"input": [1.0]}, timeout=30).status_code == 200
    replica = manager.replicas[("sleep", "1")][0].process
    os.kill(replica.pid, signal.SIGSTOP)
    assert requests.post(url, json={"input": [1.0]}, timeout=30).status_code == 500
    deadline = time.monotonic() + 5
    while replica.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not replica.alive() and replica.popen.returncode == -signal.SIGKILL
    assert [f["kind"] for f in manager.faults] == ["hung"]
    assert manager.unhealthy("sleep", "1", 1) == "0 of 1 replicas are running"
