"""The frontend under hostile requests (issue 28, items 16-18, 23, 24): silent bodies, oversized
bodies, deeply nested JSON, a model deleted and added again, NaN on the binary path."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
import pytest
import requests
import zmq
from clipper_admin import ClipperConnection

from clipper_bench.common.processes import ChildProcess, python_module_argv, reap, spawn
from clipper_bench.protocol import binary
from clipper_bench.protocol.types import InputType
from clipper_bench.server import query_rest
from clipper_bench.server.inputs import InputError, check_input_size
from clipper_bench.server.registry import Application
from tests.conftest import our_processes, wait_until_gone

MAX_CONNECTIONS = 128
BODY_TIMEOUT_S = 2.0


class Frontend:
    """A frontend process started with small limits, and its addresses."""

    def __init__(self, child: ChildProcess, ports: dict[str, int]) -> None:
        self.child, self.ports = child, ports
        self.query = f"http://127.0.0.1:{ports['query']}"
        self.admin = f"http://127.0.0.1:{ports['admin']}/admin"

    def call(self, call: str, body: dict) -> None:
        r = requests.post(f"{self.admin}/{call}", json=body, timeout=10)
        assert r.status_code == 200, (call, r.text)

    def rss(self) -> int:
        return psutil.Process(self.child.pid).memory_info().rss


def _start(log_dir: Path) -> Frontend:
    ports_file = log_dir / "ports.json"
    argv = python_module_argv(
        "clipper_bench.server.frontend", "--host", "127.0.0.1", "--query_port", "0", "--admin_port", "0",
        "--rpc_port", "0", "--binary_port", "0", "--ports_file", str(ports_file),
        "--max_connections", str(MAX_CONNECTIONS), "--body_timeout_s", str(BODY_TIMEOUT_S),
        "--header_timeout_s", "3", "--max_json_mb", "4",
    )
    child = spawn("frontend", argv, log_dir / "frontend.log")
    deadline = time.monotonic() + 60
    while not ports_file.exists():
        assert child.alive() and time.monotonic() < deadline, child.log_tail()
        time.sleep(0.05)
    return Frontend(child, json.loads(ports_file.read_text())["ports"])


def _deploy(fe: Frontend, app: str, model: str | None, elements: int, slo_us: int = 200_000) -> None:
    """An app (doubles) and, unless ``model`` is None, a model of ``elements`` doubles per input
    linked to it, with no replica: queries of the right size wait for their SLO's default."""
    fe.call("add_app", {"name": app, "input_type": "doubles", "default_output": "D", "latency_slo_micros": slo_us})
    if model is None:
        return
    fe.call("add_model", {"model_name": model, "model_version": "1", "labels": [], "input_type": "doubles",
                          "container_name": "x", "model_data_path": "", "batch_size": -1})
    fe.call("clipper_bench/set_input_size", {"model_name": model, "model_version": "1", "input_elements": elements})
    fe.call("add_model_links", {"app_name": app, "model_names": [model]})


@pytest.fixture(scope="module")
def frontend(tmp_path_factory) -> Iterator[Frontend]:
    before = our_processes()
    fe = _start(tmp_path_factory.mktemp("hardening"))
    try:
        _deploy(fe, "free", None, 0)  # no model: answered with its default at once
        _deploy(fe, "small", "small-m", 3)
        _deploy(fe, "wide", "wide-m", 1000)
        yield fe
    finally:
        reap([fe.child])
        assert not wait_until_gone(our_processes() - before)


def _query(fe: Frontend, app: str = "free", **kwargs) -> tuple[int, float]:
    started = time.perf_counter()
    r = requests.post(f"{fe.query}/{app}/predict", timeout=30, **kwargs)
    return r.status_code, time.perf_counter() - started


def _stall(port: int, content_length: int = 100_000) -> socket.socket:
    """A connection that sends its request headers and a little of its body, then nothing."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST /free/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {content_length}\r\n\r\n".encode() + b'{"input": [1.0, ')
    return s


def _ended(s: socket.socket, within_s: float) -> bytes | None:
    """What the peer sent before closing, or None if it is still open after ``within_s``."""
    s.settimeout(within_s)
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return got


def _query_while(fe: Frontend, busy: threading.Event, out: list[tuple[int, float]], **kwargs) -> threading.Thread:
    """A thread that sends ordinary queries (each on a new connection) until ``busy`` is cleared."""

    def run() -> None:
        while busy.is_set():
            try:
                out.append(_query(fe, json={"input": [1.0]}, **kwargs))
            except requests.RequestException as exc:
                out.append((type(exc).__name__, math.inf))  # type: ignore[arg-type]
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_silent_bodies_neither_stay_nor_shut_out_queries(frontend):
    """Item 16: 300 connections (over twice the cap of 128) send headers and then stall in their
    body; ordinary queries keep being answered at once, and every stalled one is gone soon after
    the body deadline (408, or evicted for a newer connection)."""
    busy, answers = threading.Event(), []
    busy.set()
    stalled = [_stall(frontend.ports["query"]) for _ in range(300)]
    opened = time.monotonic()
    querier = _query_while(frontend, busy, answers)
    try:
        time.sleep(BODY_TIMEOUT_S + 1)
        busy.clear()
        querier.join(30)
        ends = [_ended(s, max(0.1, opened + BODY_TIMEOUT_S + 3 - time.monotonic())) for s in stalled]
    finally:
        busy.clear()
        for s in stalled:
            s.close()
    codes = [code for code, _ in answers]
    slowest = max(seconds for _, seconds in answers)
    assert len(answers) >= 20 and codes == [200] * len(answers), codes
    assert slowest < 1.0, slowest
    assert all(end is not None for end in ends), "a stalled connection outlived its body deadline"
    assert sum(b" 408 " in end.split(b"\r\n", 1)[0] for end in ends) >= MAX_CONNECTIONS // 2
    assert _query(frontend, json={"input": [1.0]})[0] == 200


def test_oversized_bodies_are_refused_early_and_memory_stays_bounded(frontend):
    """Item 17: the declared size of "small" (3 doubles) bounds its body far below 64 MiB: the
    Content-Length alone gets a 413, the frontend never holds the body, and queries go on meanwhile."""
    s = socket.create_connection(("127.0.0.1", frontend.ports["query"]))
    try:
        started = time.perf_counter()
        s.sendall(b"POST /small/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 67108864\r\n\r\n")
        head = s.recv(4096)
        refused_s = time.perf_counter() - started
    finally:
        s.close()
    assert head.startswith(b"HTTP/1.1 413") and b"limit" in head, head
    assert refused_s < 0.5, refused_s

    rss_before = frontend.rss()
    big = b'{"input": [' + b"1.0," * (16 * 1024 * 1024 - 1) + b"1.0]}"  # 64 MiB
    busy, answers = threading.Event(), []
    busy.set()
    querier = _query_while(frontend, busy, answers)
    try:
        sent = [_query(frontend, "small", data=big) for _ in range(2)]
        chunked = _query(frontend, "free", data=iter([big[i:i + 2**20] for i in range(0, 8 * 2**20, 2**20)]))
    finally:
        busy.clear()
        querier.join(30)
    assert [code for code, _ in sent] == [413, 413] and chunked[0] == 413  # "free": over --max_json_mb 4
    assert max(seconds for _, seconds in sent) < 5  # the upload itself; nothing is parsed
    assert answers and all(code == 200 for code, _ in answers) and max(t for _, t in answers) < 2.0, answers  # 20.5 s as reported
    assert frontend.rss() - rss_before < 64 * 2**20


def test_large_batches_are_parsed_in_pieces_and_checked(frontend):
    """A 2 MiB input_batch (over the 1 MiB parsed at once) is taken one input at a time: right sizes
    are queued (here: answered with the default), a wrong size or a NaN anywhere is a 400."""
    inputs = [[0.5] * 1000 for _ in range(120)]
    r = requests.post(f"{frontend.query}/wide/predict", json={"input_batch": inputs}, timeout=30)
    assert r.status_code == 200 and len(r.json()["batch_predictions"]) == 120
    for bad, fragment in [(inputs[:60] + [[0.5] * 999] + inputs[:60], "the model takes 1000"),
                          (inputs[:60] + [[0.5] * 999 + [math.nan]] + inputs[:60], "finite numbers")]:
        r = requests.post(f"{frontend.query}/wide/predict", data=json.dumps({"input_batch": bad}), timeout=30)
        assert r.status_code == 400 and fragment in r.json()["cause"], r.text


class _Rest(query_rest.RestQueries):
    """The REST decoding alone: inputs of ``size`` elements (None: any)."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.settings = SimpleNamespace(max_inputs_per_request=8)

    def _declared_elements(self, app):
        return self.size

    def _check_sizes(self, app, payloads):
        for p in payloads:
            check_input_size(p, app.input_type, self.size)


async def _decoded(rest: _Rest, app: Application, body: bytes):
    """The inputs, or which of the handler's answers an error gets."""
    try:
        if len(body) > query_rest.INLINE_PARSE_BYTES:
            return await rest._decode_large(app, body)
        return rest._decode_body(app, body)
    except InputError:
        return "invalid input"
    except query_rest._BodyError:
        return "not Clipper's shape"
    except ValueError:
        return "not valid JSON"


@pytest.mark.parametrize("body, kind, size", [
    (b'{"input": [1.0, 2.5, -3e10, 4]}', InputType.DOUBLES, 4),
    (b' {\n "input_batch" : [ [1, 2,3] , [4,5, 6]\t] }\n', InputType.INTS, 3),
    (b'{"input_batch": [[1, 2], [1, 2, 3]]}', InputType.INTS, 2),
    (b'{"input_batch": [[1.0, NaN, 2.0, 3.0, 4.0, 5.0, 6.0]]}', InputType.DOUBLES, None),
    (b'{"input": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0,]}', InputType.DOUBLES, None),
    (b'{"input": [1.0, 2.0, 3.0,, 4.0, 5.0, 6.0, 7.0]}', InputType.DOUBLES, None),
    (b'{"input": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] , "x": 1}', InputType.DOUBLES, None),
    (b'{"input_batch": []}', InputType.DOUBLES, None),
    (b'{"input_batch": [[1], [2], [3], [4], [5], [6], [7], [8], [9]]}', InputType.DOUBLES, None),
    (b'{"input": [[1.0, 2.0], 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]}', InputType.DOUBLES, None),
    (b'{"input": [true, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]}', InputType.DOUBLES, None),
    (b'{"input": "aGVsbG8gd29ybGQsIGhlbGxvIHdvcmxk"}', InputType.BYTES, None),
    ('{"input_batch": ["\\"\u00e9t\u00e9\\\\", "ab\\\\"]}'.encode(), InputType.STRINGS, None),
    (b'{"input": "abc', InputType.STRINGS, None),
])
def test_large_bodies_decode_as_small_ones_do(body, kind, size, monkeypatch):
    """The piecewise parse of a large body (here: every body, in 16-byte slices) gives the inputs, or
    the kind of error, that parsing the whole body at once gives (except the fields it refuses)."""
    app = Application("a", kind, "D", 1000)
    whole = asyncio.run(_decoded(_Rest(size), app, body))
    monkeypatch.setattr(query_rest, "INLINE_PARSE_BYTES", 0)
    monkeypatch.setattr(query_rest, "YIELD_EVERY_BYTES", 16)
    pieces = asyncio.run(_decoded(_Rest(size), app, body))
    assert pieces == whole or (b'"x"' in body and pieces == "not Clipper's shape"), (whole, pieces)


DEEP = b"[" * 100_000


@pytest.mark.parametrize("port, path", [
    ("admin", "/admin/clipper_bench/set_batch_size"), ("admin", "/admin/clipper_bench/drain_replica"),
    ("admin", "/admin/clipper_bench/set_input_size"), ("admin", "/admin/clipper_bench/add_pipeline"),
    ("admin", "/admin/add_app"), ("query", "/small/predict"), ("query", "/free/predict"),
])
def test_deep_json_is_a_clear_400(frontend, port, path):
    """Item 18: 100,000 levels of '[' anywhere a body is parsed: 400 naming the nesting, never a 500."""
    for body in (DEEP, b'{"model_name": ' + DEEP):
        r = requests.post(f"http://127.0.0.1:{frontend.ports[port]}{path}", data=body, timeout=10)
        assert r.status_code == 400 and "nested too deep" in r.text, (r.status_code, r.text)


def test_nan_and_infinity_on_the_binary_path_are_refused_like_rest(frontend):
    """Item 24: the binary path answers status ERROR with REST's message for NaN and infinities."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(f"tcp://127.0.0.1:{frontend.ports['binary']}")
    try:
        for bad in (math.nan, math.inf, -math.inf):
            x = np.array([1.0, bad, 2.0], dtype="<f8")
            sock.send_multipart(binary.encode_request(9, "small", InputType.DOUBLES, [x.tobytes()]))
            resp = binary.decode_response(sock.recv_multipart())
            rest = requests.post(f"{frontend.query}/small/predict", data=f'{{"input": [1.0, {json.dumps(bad)}, 2.0]}}',
                                 timeout=10)
            assert resp.statuses == bytes([binary.Status.ERROR]) and rest.status_code == 400
            assert bytes(resp.outputs[0]).decode() in rest.json()["cause"]
            assert "finite numbers" in bytes(resp.outputs[0]).decode()
    finally:
        sock.close()


def test_a_model_deleted_and_added_again_keeps_its_size_check(manager_factory):
    """Item 23: deleting noop:1 and adding it again through the admin API (its replica stopped and a
    new one started, as an operator would) keeps its declared input size; a wrong-size query is a 400
    and never reaches the replica, which serves on."""
    manager = manager_factory()
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.register_application("calc", "doubles", "D", 5_000_000)
    conn.deploy_model("noop", "1", "doubles", "clipper-bench/noop", num_replicas=1, batch_size=4)
    conn.link_model_to_app("calc", "noop")
    manager.set_input_size("noop", "1", 4)
    admin, url = f"http://{manager.get_admin_addr()}/admin", f"http://{manager.get_query_addr()}/calc/predict"
    model = {"model_name": "noop", "model_version": "1", "labels": [], "input_type": "doubles",
             "container_name": "clipper-bench/noop", "model_data_path": "", "batch_size": 4}
    conn.stop_versioned_models({"noop": ["1"]})  # stops its replica, then delete_versioned_model
    assert requests.post(f"{admin}/get_model", json=model, timeout=10).json() == {}
    assert requests.post(f"{admin}/add_model", json=model, timeout=10).status_code == 200
    manager.deploy_model("noop", "1", "doubles", "clipper-bench/noop", num_replicas=1)
    got = requests.post(f"{admin}/get_model", json=model, timeout=10).json()
    assert got["input_elements"] == 4
    wrong = requests.post(url, json={"input": [1.0, 2.0, 3.0]}, timeout=10)
    assert wrong.status_code == 400 and "the model takes 4" in wrong.json()["cause"]
    right = requests.post(url, json={"input": [1.0, 2.0, 3.0, 4.0]}, timeout=30)
    assert right.status_code == 200 and right.json()["output"] == 4, right.text
    assert manager.get_num_replicas("noop", "1") == 1 and not manager.faults
