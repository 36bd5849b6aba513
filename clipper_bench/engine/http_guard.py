"""Limits on the frontend's HTTP connections that aiohttp does not set itself.

aiohttp closes idle keep-alive connections, but it waits forever for a request that never arrives
or whose headers trickle in a byte at a time (slowloris), and it accepts connections until the
process runs out of file descriptors. :class:`GuardedSite` serves an aiohttp runner with

* a deadline for each connection's first request headers (``header_timeout_s``): a connection
  that has not sent a whole header block (up to the blank line) by then is closed;
* a cap on open connections (``max_connections``): above it, new connections are closed at once,
  so the frontend keeps descriptors for its replicas and clients.

Connections are only watched until their first header block is complete; later requests on a
kept-alive connection fall under aiohttp's keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

HEADER_END = b"\r\n\r\n"


class _Guard(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection; passes every event through."""

    def __init__(self, inner: asyncio.Protocol, site: GuardedSite) -> None:
        self._inner = inner
        self._site = site
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, to find the end of the header block across reads
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._site.open += 1
        if self._site.open > self._site.max_connections:
            self._refused = True
            transport.close()  # over the cap: refused before aiohttp sees it
            return
        self._timer = asyncio.get_running_loop().call_later(self._site.header_timeout_s, self._expire)
        self._inner.connection_made(transport)

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if HEADER_END in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._refused else self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._site.open -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._refused:
            self._inner.connection_lost(exc)


class GuardedSite(web.TCPSite):
    """An aiohttp TCP site with a header deadline and a connection cap (see the module docstring).

    With ``sock`` (a bound, listening socket) it serves that socket, so the port is held from
    before the site exists; ``host`` and ``port`` then only name it."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, header_timeout_s: float = 10.0,
                 max_connections: int = 4096, sock: socket.socket | None = None, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.open = 0
        self._sock = sock

    async def start(self) -> None:
        """Listen, handing each connection to aiohttp through a guard."""
        self._runner._reg_site(self)
        factory: Callable[[], asyncio.Protocol] = self._runner.server  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(lambda: _Guard(factory(), self), sock=self._sock,
                                                    backlog=self._backlog)
            return
        self._server = await loop.create_server(
            lambda: _Guard(factory(), self), self._host, self._port,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port,
        )
