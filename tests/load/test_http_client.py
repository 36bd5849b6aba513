"""The REST load client's HTTP/1.1 connections against a real aiohttp server."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from clipper_bench.load.http_client import HttpError, HttpPool, _parse_response, post_request


def test_responses_are_read_by_length_or_in_chunks_and_only_when_whole():
    plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello"
    assert _parse_response(bytearray(plain)) == (200, b"hello", len(plain))
    assert _parse_response(bytearray(plain[:-1])) is None
    lower = b"HTTP/1.0 404 Not Found\r\ncontent-length: 3\r\n\r\nabcNEXT"
    assert _parse_response(bytearray(lower)) == (404, b"abc", len(lower) - 4)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert _parse_response(bytearray(chunked)) == (200, b"abcde", len(chunked))
    assert _parse_response(bytearray(chunked[:-3])) is None
    with pytest.raises(HttpError, match="not an HTTP response"):
        _parse_response(bytearray(b"SSH-2.0-OpenSSH\r\n\r\n"))


async def _serve_and_query(n: int, limit: int):
    seen = []

    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body["input"])
        if body["input"] == "stream":  # a chunked answer
            resp = web.StreamResponse()
            await resp.prepare(request)
            await resp.write(b'{"output": 1, ')
            await resp.write(b'"default": true}')
            await resp.write_eof()
            return resp
        await asyncio.sleep(0.01)
        return web.json_response({"output": body["input"], "default": False})

    app = web.Application()
    app.router.add_post("/app/predict", predict)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    pool = HttpPool("127.0.0.1", port, limit=limit)
    try:
        requests = [post_request("127.0.0.1", port, "/app/predict", json.dumps({"input": i}).encode())
                    for i in range(n)]
        answers = await asyncio.gather(*(pool.request(r) for r in requests))
        chunked = await pool.request(post_request("127.0.0.1", port, "/app/predict", b'{"input": "stream"}'))
        opened = pool.opened
    finally:
        pool.close()
        await runner.cleanup()
    return answers, chunked, opened, seen


def test_concurrent_requests_share_keep_alive_connections_up_to_the_limit_and_each_gets_its_answer():
    answers, chunked, opened, seen = asyncio.run(_serve_and_query(40, limit=4))
    assert [json.loads(body)["output"] for _, body in answers] == list(range(40))
    assert all(status == 200 for status, _ in answers) and sorted(seen[:40]) == list(range(40))
    assert opened <= 4  # 40 requests over at most 4 connections
    assert chunked[0] == 200 and json.loads(chunked[1]) == {"output": 1, "default": True}
