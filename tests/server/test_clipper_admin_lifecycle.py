"""clipper_admin's ClipperConnection drives the local engine unchanged."""

from __future__ import annotations

import os

import psutil
import pytest
import requests
from clipper_admin import ClipperConnection
from clipper_admin.exceptions import ClipperException

from clipper_bench.server.manager import Placement


def predict(conn: ClipperConnection, app: str, body: dict) -> requests.Response:
    return requests.post(f"http://{conn.get_query_addr()}/{app}/predict", json=body, timeout=10)


def test_full_lifecycle(manager_factory):
    manager = manager_factory()
    conn = ClipperConnection(manager)
    conn.start_clipper()

    conn.register_application("calc", "doubles", "TIMEOUT", 2_000_000)
    conn.deploy_model("noop", "1", "doubles", "clipper-bench/noop", num_replicas=1, batch_size=4)
    conn.link_model_to_app("calc", "noop")

    assert conn.get_all_apps() == ["calc"]
    info = conn.get_app_info("calc")
    assert info["input_type"] == "doubles" and info["latency_slo_micros"] == 2_000_000
    assert info["linked_models"] == ["noop"]
    assert conn.get_linked_models("calc") == ["noop"]
    model = conn.get_model_info("noop", "1")
    assert model["model_name"] == "noop" and model["model_version"] == "1"
    assert model["is_current_version"] is True and model["container_name"] == "clipper-bench/noop"
    assert model["batch_size"] == 4
    assert conn.get_current_model_version("noop") == "1"
    assert conn.get_num_replicas("noop") == 1
    assert len(conn.get_all_model_replicas()) == 1

    r = predict(conn, "calc", {"input": [1.0, 2.0, 3.0]})
    assert r.status_code == 200
    assert r.json()["output"] == 3 and r.json()["default"] is False

    first = {r.process.pid for r in manager.replicas[("noop", "1")]}
    conn.set_num_replicas("noop", 3)
    assert conn.get_num_replicas("noop") == 3
    assert len(conn.get_all_model_replicas()) == 3
    pids = {r.process.pid for r in manager.replicas[("noop", "1")]}
    assert first <= pids, "adding replicas restarted the one already running"

    conn.set_num_replicas("noop", 1)
    assert conn.get_num_replicas("noop") == 1
    assert len(conn.get_all_model_replicas()) == 1
    assert {r.process.pid for r in manager.replicas[("noop", "1")]} == first
    assert predict(conn, "calc", {"input": [1.0]}).json()["output"] == 1

    conn.stop_models(["noop"])
    assert conn.get_all_models() == []
    conn.unregister_application("calc")
    assert conn.get_all_apps() == []
    conn.stop_all()
    assert manager.frontend is None


def test_replicas_are_pinned_and_named(manager_factory):
    cpus = sorted(os.sched_getaffinity(0))
    manager = manager_factory(placements=[Placement((cpus[-1],), None), Placement((cpus[0],), 0)])
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.deploy_model("noop", "1", "doubles", "clipper-bench/noop", num_replicas=2)
    replicas = manager.replicas[("noop", "1")]
    first, second = (psutil.Process(r.process.pid) for r in replicas)
    assert first.cpu_affinity() == [cpus[-1]]
    # Pinned before numpy loaded: no BLAS thread pool beside the main thread and ZeroMQ's two.
    assert first.num_threads() <= 3, [t.id for t in first.threads()]
    assert second.cpu_affinity() == [cpus[0]]
    assert " ".join(first.cmdline()).strip() == f"clipper-bench replica noop#1 cpus={cpus[-1]} gpu=none"
    assert " ".join(second.cmdline()).strip() == f"clipper-bench replica noop#2 cpus={cpus[0]} gpu=0"
    # What each replica saw of its placement, in its own words (its log).
    first_log, second_log = (r.process.log_path.read_text() for r in replicas)
    assert f"placement: cpus=[{cpus[-1]}] CUDA_VISIBLE_DEVICES='' OMP_NUM_THREADS=1" in first_log
    assert f"placement: cpus=[{cpus[0]}] CUDA_VISIBLE_DEVICES='0' OMP_NUM_THREADS=1" in second_log


def test_port_in_use_is_a_clear_error(manager_factory):
    first = manager_factory()
    ClipperConnection(first).start_clipper()
    clash = manager_factory()
    clash.query_port = first.query_port
    with pytest.raises(ClipperException, match=f"port {first.query_port}.*in use"):
        clash.start_clipper()
    assert clash.frontend is None


def test_replica_that_cannot_start_fails_deploy_with_its_log(manager_factory):
    manager = manager_factory()
    conn = ClipperConnection(manager)
    conn.start_clipper()
    with pytest.raises(ClipperException, match="exited while starting.*unknown model 'nosuch'"):
        conn.deploy_model("nosuch", "1", "doubles", "clipper-bench/nosuch", num_replicas=1)
