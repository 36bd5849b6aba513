"""The query frontend as a client sees it: REST predict, the binary path, SLO defaults, metrics."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
import requests
import zmq
from clipper_admin import ClipperConnection

from clipper_bench.common.processes import free_ports
from clipper_bench.protocol import binary
from clipper_bench.protocol.types import InputType
from clipper_bench.server.manager import LocalContainerManager


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    q, a, r, b = free_ports(4)
    manager = LocalContainerManager(
        query_port=q, admin_port=a, rpc_port=r, binary_port=b,
        log_dir=tmp_path_factory.mktemp("logs"), container_args=["--sleep_ms", "300"],
    )
    conn = ClipperConnection(manager)
    try:
        conn.start_clipper()
        conn.register_application("calc", "doubles", "TIMEOUT", 5_000_000)
        conn.deploy_model("noop", "1", "doubles", "clipper-bench/noop", num_replicas=1, batch_size=8)
        conn.link_model_to_app("calc", "noop")
        # An app whose model is slower (300 ms) than its SLO (50 ms).
        conn.register_application("hurry", "doubles", "TOO-SLOW", 50_000)
        conn.deploy_model("slow", "1", "doubles", "clipper-bench/sleep", num_replicas=1, batch_size=1)
        conn.link_model_to_app("hurry", "slow")
        conn.register_application("lonely", "doubles", "NOBODY", 1_000_000)
        conn.register_application("blobs", "bytes", "none", 1_000_000)
        yield manager
    finally:
        manager.stop_all()


def post(engine, app, body, raw=None):
    url = f"http://{engine.get_query_addr()}/{app}/predict"
    if raw is not None:
        return requests.post(url, data=raw, timeout=10)
    return requests.post(url, json=body, timeout=10)


def test_single_and_batch_predictions(engine):
    r = post(engine, "calc", {"input": [1.5, 2.5]})
    assert r.status_code == 200
    body = r.json()
    assert body["output"] == 2 and body["default"] is False and isinstance(body["query_id"], int)
    assert "default_explanation" not in body

    r = post(engine, "calc", {"input_batch": [[1.0], [1.0, 2.0, 3.0]]})
    preds = r.json()["batch_predictions"]
    assert [p["output"] for p in preds] == [1, 3]
    assert preds[0]["query_id"] != preds[1]["query_id"]


def test_slo_passes_and_the_default_output_is_answered(engine):
    body = post(engine, "hurry", {"input": [1.0]}).json()
    assert body["default"] is True
    assert body["output"] == "TOO-SLOW"
    assert "SLO" in body["default_explanation"]


def test_app_without_a_model_answers_its_default(engine):
    body = post(engine, "lonely", {"input": [1.0]}).json()
    assert body["default"] is True and body["output"] == "NOBODY"
    assert body["default_explanation"] == "No connected models found for query"


@pytest.mark.parametrize(
    "app, body, raw, fragment",
    [
        ("nosuch", {"input": [1.0]}, None, "No registered application with name nosuch"),
        ("calc", None, b"{not json", "not valid JSON"),
        ("calc", {"inputs": [1.0]}, None, "exactly one of 'input' or 'input_batch'"),
        ("calc", {"input": "abc"}, None, "list of numbers"),
        ("calc", {"input": []}, None, "non-empty"),
        ("calc", {"input": [1.0, "x"]}, None, "numbers only"),
        ("calc", {"input_batch": []}, None, "non-empty list"),
        ("blobs", {"input": "***"}, None, "base64"),
        ("calc", None, b'{"input": [1.0, NaN]}', "finite numbers"),
        ("calc", None, b'{"input": [Infinity]}', "finite numbers"),
        ("calc", None, b'{"input": [1e999]}', "finite numbers"),
        ("calc", None, b'{"input": ' + b"[" * 200 + b"1" + b"]" * 200 + b"}", "numbers only"),
        ("calc", None, b'{"input": ' + b"[" * 100_000, "nested too deep"),
    ],
    ids=lambda v: v[:40] if isinstance(v, (bytes, str)) else None,
)
def test_bad_requests_get_clipper_style_400s(engine, app, body, raw, fragment):
    r = post(engine, app, body, raw)
    assert r.status_code == 400
    err = r.json()
    assert set(err) == {"error", "cause"}
    assert fragment in err["cause"]


def test_oversized_body_is_refused(engine):
    big = b'{"input": [' + b"1.0," * (20 * 1024 * 1024) + b"1.0]}"
    r = post(engine, "calc", None, raw=big)
    assert r.status_code == 413


def test_bytes_inputs_travel_as_base64(engine):
    conn = ClipperConnection(engine)
    conn.connect()
    conn.deploy_model("bnoop", "1", "bytes", "clipper-bench/noop-bytes", num_replicas=1)
    conn.link_model_to_app("blobs", "bnoop")
    body = post(engine, "blobs", {"input": base64.b64encode(b"hello!").decode()}).json()
    assert body == {"query_id": body["query_id"], "output": 6, "default": False}


def test_metrics_follow_clippers_format(engine):
    post(engine, "calc", {"input": [1.0]})
    metrics = requests.get(f"http://{engine.get_query_addr()}/metrics", timeout=10).json()
    assert set(metrics) == {"histograms", "meters", "ratio_counters", "counters"}
    hist = {k: v for item in metrics["histograms"] for k, v in item.items()}
    lat = hist["app:calc:prediction_latency"]
    assert lat["unit"] == "microseconds"
    assert set(lat) == {"unit", "size", "min", "max", "mean", "std_dev", "p50", "p95", "p99"}
    assert all(isinstance(v, str) for v in lat.values())
    assert float(lat["p50"]) > 0
    assert "model:noop:1:batch_size" in hist and "noop:1:queue_size" in hist
    meters = {k: v for item in metrics["meters"] for k, v in item.items()}
    assert set(meters["app:calc:prediction_throughput"]) == {"unit", "rate", "rate_1min", "rate_5min", "rate_15min"}
    counters = {k: v for item in metrics["counters"] for k, v in item.items()}
    assert int(counters["app:calc:num_predictions"]["count"]) >= 1
    ratios = {k: v for item in metrics["ratio_counters"] for k, v in item.items()}
    assert "app:calc:default_prediction_ratio" in ratios


CLIPPER_ORDER = {  # Clipper 0.4.1's /metrics for app "calc" and model "noop" version 1, in its order
    "counters": ["internal:prediction_cache_lookups", "internal:aggregate_num_predictions",
                 "app:calc:num_predictions", "model:noop:1:num_predictions"],
    "ratio_counters": ["internal:prediction_cache_hit_ratio", "app:calc:default_prediction_ratio",
                       "model:noop:1:cache_hit_ratio"],
    "meters": ["internal:aggregate_model_throughput", "app:calc:prediction_throughput",
               "model:noop:1:prediction_throughput"],
    "histograms": ["internal:rpc_request_queueing_delay", "app:calc:prediction_latency",
                   "model:noop:1:prediction_latency", "model:noop:1:batch_size"],
}


def _names(engine):
    metrics = requests.get(f"http://{engine.get_query_addr()}/metrics", timeout=10).json()
    return metrics, {group: [name for entry in entries for name in entry] for group, entries in metrics.items()}


def test_metrics_list_clippers_groups_and_names_in_clippers_order(manager_factory):
    manager = manager_factory()
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.register_application("calc", "doubles", "TIMEOUT", 5_000_000)
    conn.deploy_model("noop", "1", "doubles", "clipper-bench/noop", num_replicas=1, batch_size=4)
    conn.link_model_to_app("calc", "noop")
    _, names = _names(manager)
    assert names == CLIPPER_ORDER  # before any query: registered, so listed
    for _ in range(3):
        post(manager, "calc", {"input": [1.0]})
    metrics, names = _names(manager)
    assert list(metrics) == ["counters", "ratio_counters", "meters", "histograms"]
    for group, clipper in CLIPPER_ORDER.items():
        assert names[group][:len(clipper)] == clipper  # ours (queue_size, ...) after Clipper's
    assert "noop:1:queue_size" in names["histograms"][4:]
    counters = {k: v["count"] for entry in metrics["counters"] for k, v in entry.items()}
    assert counters["internal:aggregate_num_predictions"] == counters["model:noop:1:num_predictions"] == "3"
    assert counters["internal:prediction_cache_lookups"] == "0"
    hist = metrics["histograms"]
    assert hist[1]["app:calc:prediction_latency"]["size"] == "3"  # the original's result.py reads [1] and [2]
    assert int(hist[2]["model:noop:1:prediction_latency"]["size"]) >= 1
    assert int(hist[0]["internal:rpc_request_queueing_delay"]["size"]) == 3
    manager.reset_metrics()  # between a sweep's configurations: empty, in the same order
    metrics, names = _names(manager)
    assert names == CLIPPER_ORDER and metrics["histograms"][1]["app:calc:prediction_latency"]["size"] == "0"


def _binary_call(engine, frames):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(f"tcp://{engine.get_binary_addr()}")
    try:
        sock.send_multipart(frames)
        return binary.decode_response(sock.recv_multipart())
    finally:
        sock.close()


def test_binary_path_answers_raw_tensors(engine):
    x = np.arange(150_528, dtype="<f8")  # a 224x224x3 image's worth of doubles
    resp = _binary_call(engine, binary.encode_request(5, "calc", InputType.DOUBLES, [x.tobytes()]))
    assert resp.request_id == 5 and resp.statuses == b"\x00"
    assert list(resp.outputs) == [b"150528"]

    batch = [np.ones(n, dtype="<f8").tobytes() for n in (1, 2, 3)]
    resp = _binary_call(engine, binary.encode_request(6, "calc", InputType.DOUBLES, batch))
    assert resp.statuses == b"\x00\x00\x00" and list(resp.outputs) == [b"1", b"2", b"3"]


def test_a_client_that_asks_for_packed_answers_gets_a_batch_of_them_in_one_message(engine):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(f"tcp://{engine.get_binary_addr()}")
    try:
        for i in range(8):  # the model's batch size: one batch, answered at once
            sock.send_multipart(binary.encode_request(100 + i, "calc", InputType.DOUBLES,
                                                      [np.ones(i + 1, dtype="<f8").tobytes()], binary.FLAG_PACKED))
        sock.send_multipart(binary.encode_request(200, "calc", InputType.FLOATS, [b"\0" * 8], binary.FLAG_PACKED))
        answers = {}
        while len(answers) < 9:
            message = sock.recv_multipart()
            assert len(message) == 1  # one frame, however many answers
            answers.update({r.request_id: r for r in binary.decode_packed_responses(message[0])})
    finally:
        sock.close()
    assert {i: bytes(answers[100 + i].outputs[0]) for i in range(8)} == {i: str(i + 1).encode() for i in range(8)}
    assert all(answers[100 + i].statuses == b"\x00" for i in range(8))
    assert answers[200].statuses == bytes([binary.Status.ERROR]) and b"takes doubles" in bytes(answers[200].outputs[0])


def test_many_requests_in_one_message_are_each_answered_and_a_bad_one_refused_alone(engine):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(f"tcp://{engine.get_binary_addr()}")
    inputs = [np.ones(i + 1, dtype="<f8").tobytes() for i in range(6)]
    inputs[2] = np.array([1.0, np.nan, 3.0], dtype="<f8").tobytes()
    inputs[4] = b"\0" * 7
    try:
        sock.send_multipart(binary.encode_request(300, "calc", InputType.DOUBLES, inputs,
                                                  binary.FLAG_MANY | binary.FLAG_PACKED))
        answers = {}
        while len(answers) < len(inputs):
            message = sock.recv_multipart()
            answers.update({r.request_id: r for r in binary.decode_packed_responses(message[0])})
    finally:
        sock.close()
    assert sorted(answers) == list(range(300, 306)), "one answer per request, ids in frame order"
    assert all(len(r.outputs) == 1 for r in answers.values())
    assert {k: bytes(answers[300 + k].outputs[0]) for k in (0, 1, 3, 5)} == {0: b"1", 1: b"2", 3: b"4", 5: b"6"}
    assert answers[302].statuses == bytes([binary.Status.ERROR]) and b"finite" in bytes(answers[302].outputs[0])
    assert answers[304].statuses == bytes([binary.Status.ERROR]) and b"whole number" in bytes(answers[304].outputs[0])


def test_a_refused_message_of_many_requests_answers_every_request_id(engine):
    frames = binary.encode_request(400, "nosuch", InputType.DOUBLES, [b"\0" * 8] * 3, binary.FLAG_MANY)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(f"tcp://{engine.get_binary_addr()}")
    try:
        sock.send_multipart(frames)
        answers = [binary.decode_response(sock.recv_multipart()) for _ in range(3)]
    finally:
        sock.close()
    assert sorted(r.request_id for r in answers) == [400, 401, 402]
    assert all(r.statuses == bytes([binary.Status.ERROR]) and b"No registered application" in bytes(r.outputs[0])
               for r in answers)


@pytest.mark.parametrize(
    "frames, fragment",
    [
        (binary.encode_request(7, "nosuch", InputType.DOUBLES, [b"\0" * 8]), b"No registered application"),
        (binary.encode_request(7, "calc", InputType.FLOATS, [b"\0" * 8]), b"takes doubles"),
        (binary.encode_request(7, "calc", InputType.DOUBLES, [b"\0" * 7]), b"whole number"),
        ([struct.pack("<QII", 7, 3, 0)], b"at least one input"),
    ],
)
def test_binary_path_errors_name_the_problem(engine, frames, fragment):
    resp = _binary_call(engine, frames)
    assert resp.request_id == 7
    assert set(resp.statuses) == {binary.Status.ERROR}
    assert fragment in bytes(resp.outputs[0])


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"name": "a" * 200, "input_type": "doubles", "default_output": "x", "latency_slo_micros": 1000},
         "too long: at most 128"),
        ({"name": "huge-slo", "input_type": "doubles", "default_output": "x", "latency_slo_micros": 10**400},
         "at most 86400000000"),
        ({"name": "huge-default", "input_type": "doubles", "default_output": "x" * 100_000,
          "latency_slo_micros": 1000}, "default_output must be at most 65536 bytes"),
    ],
)
def test_management_refuses_what_would_break_queries_later(engine, body, fragment):
    r = requests.post(f"http://{engine.get_admin_addr()}/admin/add_app", json=body, timeout=10)
    assert r.status_code == 400 and fragment in r.text
