"""A running frontend fed bounded random input on every port: it answers each with a clear status,
never crashes, never leaks an exception, and serves normally afterwards."""

from __future__ import annotations

import json

import pytest
import requests
import zmq
from clipper_admin import ClipperConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipper_bench.common.processes import free_ports
from clipper_bench.server.manager import LocalContainerManager

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["input", "input_batch", "other"]), json_values, max_size=3)
    .map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
)
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    q, a, r, b = free_ports(4)
    manager = LocalContainerManager(query_port=q, admin_port=a, rpc_port=r, binary_port=b,
                                    log_dir=tmp_path_factory.mktemp("logs"))
    conn = ClipperConnection(manager)
    try:
        conn.start_clipper()
        conn.register_application("calc", "doubles", "TIMEOUT", 5_000_000)
        conn.deploy_model("noop", "1", "doubles", "clipper-bench/noop", num_replicas=1, batch_size=8)
        conn.link_model_to_app("calc", "noop")
        conn.register_application("blobs", "bytes", "none", 5_000_000)
        conn.deploy_model("noop-bytes", "1", "bytes", "clipper-bench/noop-bytes", num_replicas=1, batch_size=8)
        conn.link_model_to_app("blobs", "noop-bytes")
        yield manager
    finally:
        manager.stop_all()


def still_serves(engine) -> None:
    assert engine.frontend.alive()
    r = requests.post(f"http://{engine.get_query_addr()}/calc/predict", json={"input": [1.0, 2.0]}, timeout=10)
    assert r.status_code == 200 and r.json()["output"] == 2


@HYPOTHESIS
@given(app=st.sampled_from(["calc", "blobs", "nosuch"]), body=bodies)
def test_any_predict_body_gets_a_clear_answer(engine, app, body):
    r = requests.post(f"http://{engine.get_query_addr()}/{app}/predict", data=body, timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 400), (r.status_code, r.text)
    answer = r.json()
    if r.status_code == 400:
        assert set(answer) == {"error", "cause"} and answer["cause"]
    else:
        assert "output" in answer or "batch_predictions" in answer


@HYPOTHESIS
@given(call=st.sampled_from(["add_app", "add_model", "add_model_links", "get_model", "delete_app",
                             "set_model_version", "clipper_bench/set_batch_size", "clipper_bench/drain_replica"]),
       body=bodies)
def test_any_admin_body_gets_a_clear_answer(engine, call, body):
    r = requests.post(f"http://{engine.get_admin_addr()}/admin/{call}", data=body, timeout=10)
    assert r.status_code in (200, 400), (r.status_code, r.text)


def test_garbage_on_the_zeromq_ports_is_dropped(engine):
    """Random frames to the container RPC port and the binary query port: refused or dropped."""

    ctx = zmq.Context.instance()
    socks = []
    try:
        for port in (engine.rpc_port, engine.binary_port):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(f"tcp://127.0.0.1:{port}")
            socks.append(s)

        @settings(max_examples=200, deadline=None)
        @given(st.lists(st.binary(max_size=64), min_size=1, max_size=10), st.integers(0, 1))
        def send_garbage(fs, which):
            socks[which].send_multipart(fs)

        send_garbage()
        still_serves(engine)
    finally:
        for s in socks:
            s.close(0)


@pytest.mark.parametrize("port", ["rpc_port", "binary_port"])
def test_oversized_zeromq_messages_are_refused_at_the_socket(engine, port):
    """Both ZeroMQ sockets have a message size limit (--max_body_mb, 64 MiB): a 100 MiB message is
    dropped by ZeroMQ (the peer is disconnected) and the frontend serves on."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"tcp://127.0.0.1:{getattr(engine, port)}")
    try:
        s.send_multipart([b"x" * 16, b"y" * (100 * 1024 * 1024)])
        still_serves(engine)
    finally:
        s.close(0)
