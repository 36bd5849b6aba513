"""A small HTTP/1.1 client for the REST load: keep-alive connections over asyncio protocols, each
request written as prepared bytes, each response parsed only as far as its status, length and body.

A general client (aiohttp) spends most of a core on headers, cookies and stream machinery per request;
at a few thousand requests a second that made our REST load generator, not the server, the limit
(0.5 of ``wrk`` against the same server; ``benchmarks/rest_vs_wrk.py``). This one does what a load
generator needs and no more: POST a body, get the status and the body back.
"""

from __future__ import annotations

import asyncio
from collections import deque


class HttpError(Exception):
    """The connection broke or the response could not be read."""


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """The bytes of a keep-alive ``POST path`` with a JSON ``body``."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, answered in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(HttpError(f"connection lost: {exc or 'closed by the server'}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiting is None or self.waiting.done():
            return
        try:
            parsed = _parse_response(self.buffer)
        except HttpError as exc:
            self.waiting.set_exception(exc)
            return
        if parsed is not None:
            status, body, used = parsed
            del self.buffer[:used]
            self.waiting.set_result((status, body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send a prepared request; its status and body."""
        self.waiting = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await self.waiting
        finally:
            self.waiting = None


def _parse_response(buf: bytearray) -> tuple[int, bytes, int] | None:
    """``(status, body, bytes used)`` of the first whole response in ``buf``, or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    start = end + 4
    if buf.startswith(b"HTTP/1.1 ") and buf[12:13] == b" ":  # the usual case, cheaply
        at = buf.find(b"\r\nContent-Length: ", 0, end)
        if at >= 0:
            status = int(buf[9:12])
            length = int(buf[at + 18:buf.find(b"\r\n", at + 18)])
            if len(buf) < start + length:
                return None
            return status, bytes(buf[start:start + length]), start + length
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise HttpError(f"not an HTTP response: {head[0][:80]!r}") from None
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "content-length" in fields:
        length = int(fields["content-length"])
        if len(buf) < start + length:
            return None
        return status, bytes(buf[start:start + length]), start + length
    if fields.get("transfer-encoding", "").lower() == "chunked":
        return _parse_chunked(buf, status, start)
    raise HttpError("response has neither Content-Length nor chunked encoding")


def _parse_chunked(buf: bytearray, status: int, pos: int) -> tuple[int, bytes, int] | None:
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if len(buf) < eol + 2 + size + 2:
            return None
        body += buf[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2
        if size == 0:
            return status, bytes(body), pos


class HttpPool:
    """Keep-alive connections to one server, opened as requests need them (at most ``limit``; 0: no
    limit) and reused; a connection that breaks is dropped."""

    def __init__(self, host: str, port: int, limit: int = 0) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: deque[_Connection] = deque()
        self.opened = 0
        self.free = asyncio.Condition()

    async def _get(self) -> _Connection:
        while True:
            while self.idle:
                conn = self.idle.popleft()
                if not conn.closed:
                    return conn
                self.opened -= 1
            if not self.limit or self.opened < self.limit:
                self.opened += 1
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
                except OSError as exc:
                    self.opened -= 1
                    raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
                return conn
            async with self.free:
                await self.free.wait()

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send a prepared request on a free connection; its status and body."""
        conn = await self._get()
        try:
            result = await conn.request(data)
        except BaseException:
            conn.transport.close()
            self.opened -= 1
            await self._release()
            raise
        self.idle.append(conn)
        await self._release()
        return result

    async def _release(self) -> None:
        if self.limit:
            async with self.free:
                self.free.notify()

    def close(self) -> None:
        """Close every idle connection."""
        while self.idle:
            self.idle.popleft().transport.close()
