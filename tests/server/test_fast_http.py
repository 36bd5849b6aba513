"""The query port's predict fast path (engine/fast_http.py) on real sockets: answers in request
order, hands any other request to aiohttp on the same connection, and keeps the guard's deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

from aiohttp import web

from clipper_bench.server.fast_http import parse_head
from tests.server.test_http_guard import serve_guarded


class _Echo:
    """A predict handler that answers ``{"app", "body", "via": "fast"}`` after the delay in ms the
    body names, so later requests can be answered first."""

    def start_predict(self, app_name, body, reply):
        delay_ms = json.loads(body).get("delay_ms", 0)
        answer = json.dumps({"app": app_name, "body": body.decode(), "via": "fast"}).encode()
        asyncio.get_running_loop().call_later(delay_ms / 1000, reply, 200, answer)

    def predict_body_limit(self, app_name):
        return 1000


@contextlib.contextmanager
def _served(header_timeout_s: float = 5.0, body_timeout_s: float = 5.0):
    """A guarded site with the fast path (answering through _Echo) and aiohttp's routes behind it;
    yields its port."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="metrics")

    async def slow_path(request: web.Request) -> web.Response:
        return web.json_response({"via": "aiohttp", "body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/{app}/predict", slow_path)
    port, stop = serve_guarded(app, header_timeout_s, header_timeout_s=header_timeout_s,
                               body_timeout_s=body_timeout_s, body_limit=1000, fast=_Echo())
    try:
        yield port
    finally:
        stop()


def _post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path.encode(), len(body), extra, body))


def _read_responses(sock: socket.socket, count: int, timeout_s: float = 5.0) -> list[tuple[bytes, dict]]:
    """``count`` whole responses (head, JSON body) from ``sock``."""
    sock.settimeout(timeout_s)
    buf, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
        while len(rest) < length:
            rest += sock.recv(65536)
        out.append((head, json.loads(rest[:length])))
        buf = rest[length:]
    return out


def test_pipelined_predicts_are_answered_in_request_order_though_answered_out_of_it():
    with _served() as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            delays = [300, 10, 150, 0]  # the last is ready first
            sock.sendall(b"".join(_post("/m/predict", json.dumps({"delay_ms": d, "i": i}).encode())
                                  for i, d in enumerate(delays)))
            answers = _read_responses(sock, 4)
        assert [json.loads(body["body"])["i"] for _, body in answers] == [0, 1, 2, 3]
        assert all(head.startswith(b"HTTP/1.1 200") and body["via"] == "fast" for head, body in answers)


def test_any_other_request_goes_to_aiohttp_on_the_same_connection_after_the_fast_answers():
    with _served() as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            chunked = (b"POST /m/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"2\r\n{}\r\n0\r\n\r\n")
            sock.sendall(_post("/m/predict", b'{"delay_ms": 100}') + chunked + _post("/m/predict", b"{}"))
            answers = _read_responses(sock, 3)
        assert [body["via"] for _, body in answers] == ["fast", "aiohttp", "aiohttp"]  # handed over for good
        assert answers[1][1]["body"] == "{}"


def test_connection_close_is_honoured_and_a_late_body_gets_408_and_a_closed_connection():
    with _served(body_timeout_s=0.5) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_post("/m/predict", b"{}", extra=b"Connection: close\r\n"))
            (head, body), = _read_responses(sock, 1)
            assert b"Connection: close" in head and body["via"] == "fast"
            assert sock.recv(100) == b""
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_post("/m/predict", b'{"delay_ms": 0}')[:-5])  # the body's last bytes never come
            began = time.monotonic()
            (head, body), = _read_responses(sock, 1)
            assert head.startswith(b"HTTP/1.1 408") and "did not arrive" in body["cause"]
            assert sock.recv(100) == b"" and time.monotonic() - began < 3


def test_a_head_that_trickles_in_is_closed_at_the_header_deadline():
    with _served(header_timeout_s=0.5) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_post("/m/predict", b"{}"))
            _read_responses(sock, 1)
            began = time.monotonic()
            closed = False
            for byte in b"POST /m/predict HTTP/1.1\r\nHost: x\r\n":  # a byte every 0.1 s
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.1)
                sock.settimeout(0.001)
                try:
                    if sock.recv(10) == b"":
                        closed = True
                        break
                except TimeoutError:
                    pass
            assert closed and time.monotonic() - began < 2


def test_only_plain_http11_predicts_with_a_readable_length_take_the_fast_path():
    def head(*lines: str) -> bytes:
        return "\r\n".join(lines).encode()

    ok = parse_head(head("POST /my-app/predict HTTP/1.1", "Host: x", "Content-Length: 12", "Connection: close"))
    assert (ok.app, ok.length, ok.close) == ("my-app", 12, True)
    for refused in [
        head("GET /m/predict HTTP/1.1", "Content-Length: 2"),
        head("POST /m/predict HTTP/1.0", "Content-Length: 2"),
        head("POST /m/other HTTP/1.1", "Content-Length: 2"),
        head("POST /m/predict?x=1 HTTP/1.1", "Content-Length: 2"),
        head("POST /m/predict HTTP/1.1", "Content-Length: 2", "Content-Length: 3"),  # smuggling
        head("POST /m/predict HTTP/1.1", "Content-Length: -2"),
        head("POST /m/predict HTTP/1.1", "Content-Length: 2", "Transfer-Encoding: chunked"),
        head("POST /m/predict HTTP/1.1", "Content-Length: 2", "Expect: 100-continue"),
        head("POST /m/predict HTTP/1.1", "Content-Length: 2", "Bad Name: x"),
        head("POST /m/predict HTTP/1.1", "Content-Length: 2", "X: a\x01b"),
        head("POST /m/predict HTTP/1.1", "Host: x"),  # no length
    ]:
        assert parse_head(refused) is None, refused


def test_the_frontend_runs_on_uvloop_unless_asked_for_asyncio(monkeypatch):
    from clipper_bench.common import processes
    from clipper_bench.server.frontend import loop_factory, parse_args

    monkeypatch.setattr(processes, "become_child", lambda title: None)  # this is not the frontend's process

    assert parse_args([]).event_loop == "uvloop" and parse_args([]).fast_http
    assert parse_args(["--event_loop", "asyncio", "--no_fast_http"]).fast_http is False
    loop = loop_factory("uvloop")()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
