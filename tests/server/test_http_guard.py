"""The frontend's HTTP ports against idle, slow and too many connections."""

from __future__ import annotations

import asyncio
import socket
import time

import requests
from aiohttp import web

from clipper_bench.server.http_guard import GuardedSite


def serve_guarded(app: web.Application, keepalive_timeout_s: float, **site_kwargs):
    """``app`` behind a GuardedSite in a background loop, on a port bound before it is named;
    returns (port, stop)."""
    import threading

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box = []

    async def start() -> None:
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=keepalive_timeout_s)
        await runner.setup()
        await GuardedSite(runner, "127.0.0.1", port, sock=sock, **site_kwargs).start()
        runner_box.append(runner)
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return port, stop


def _serve(header_timeout_s: float, max_connections: int):
    """A guarded aiohttp site answering ``GET /``; returns (port, stop)."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    return serve_guarded(app, header_timeout_s, header_timeout_s=header_timeout_s, max_connections=max_connections)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except (TimeoutError, ConnectionResetError):
        return False


def test_idle_and_slowloris_connections_are_closed_and_requests_still_served():
    port, stop = _serve(header_timeout_s=1.0, max_connections=64)
    try:
        idle = socket.create_connection(("127.0.0.1", port))
        slow = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        for chunk in (b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n"):  # never the blank line
            slow.sendall(chunk)
            time.sleep(0.3)
        assert _closed_within(slow, 3) and _closed_within(idle, 3)
        assert time.monotonic() - started < 4
        # a whole request is answered; the same connection is kept alive between requests
        with requests.Session() as s:
            assert [s.get(f"http://127.0.0.1:{port}/", timeout=5).text for _ in range(3)] == ["ok"] * 3
    finally:
        stop()


def test_connections_over_the_cap_are_closed_at_once_and_the_port_recovers():
    port, stop = _serve(header_timeout_s=30.0, max_connections=8)
    try:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        extra = socket.create_connection(("127.0.0.1", port))
        assert _closed_within(extra, 3)
        for sock in held:
            sock.close()
        time.sleep(0.3)
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"
    finally:
        stop()
