"""Limits on the frontend's HTTP connections that aiohttp does not set itself.

aiohttp closes idle keep-alive connections, but it waits forever for a request that never arrives,
whose headers trickle in a byte at a time (slowloris), or whose body never comes; it reads any body
up to the application's size limit before a handler can refuse it; and it accepts connections until
the process runs out of file descriptors. :class:`GuardedSite` serves an aiohttp runner with

* a deadline for request headers (``header_timeout_s``): a connection that has not sent a whole
  header block that long after it opened, or after its previous request was answered, is closed;
* a deadline for the request body (``body_timeout_s``, plus one second per ``body_min_bytes_per_s``
  it declares): the body is read before the handler runs, and one that is late is answered 408 and
  the connection closed;
* a size limit per request (``body_limit``, a number or a function of the request): a body that
  declares more in its Content-Length is answered 413 before a byte of it is read, one that sends
  more (chunked) is answered 413 once it passes the limit;
* a cap on open connections (``max_connections``). At the cap a new connection evicts the
  connection that has waited longest on its request's body, or else the one that has been idle
  (or sending headers) longest, if that is at least ``idle_grace_s``; connections whose request is
  being handled are never evicted. If none may go, the new connection is closed at once. So a flood
  of slow or silent connections cannot shut out clients that send whole requests.

Handlers see the request with its body already read: ``await request.read()`` returns it at once.
"""

from __future__ import annotations

import asyncio
import enum
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .fast_http import FastConnection, PredictHandler, late_body_cause

BodyLimit = int | Callable[[web.BaseRequest], int]
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class Phase(enum.Enum):
    """Where a connection is in its current request."""

    IDLE = "idle"  # waiting for (or receiving) request headers
    BODY = "body"  # headers in, body being read
    BUSY = "busy"  # the request is being handled


class _Guard(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection; passes every event through."""

    def __init__(self, inner: asyncio.Protocol, site: GuardedSite) -> None:
        self.inner = inner
        self._site = site
        self.fast = FastConnection(self, site.fast, site.body_deadline) if site.fast is not None else None
        self.transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False
        self.closed = False
        self.phase = Phase.IDLE
        self.since = 0.0  # loop time the current phase began

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        site = self._site
        if site.open >= site.max_connections and not site.evict_one():
            self._refused = True
            transport.close()  # over the cap and nobody to evict: refused before aiohttp sees it
            return
        site.open += 1
        site.by_transport[transport] = self
        self.enter(Phase.IDLE)
        self.inner.connection_made(transport)

    def enter(self, phase: Phase) -> None:
        """Start ``phase``: its clock, its place among the site's eviction candidates, its timer."""
        if self.closed:
            return
        self.phase = phase
        self.since = asyncio.get_running_loop().time()
        self._site.candidates(Phase.IDLE).pop(self, None)
        self._site.candidates(Phase.BODY).pop(self, None)
        if phase is not Phase.BUSY:
            self._site.candidates(phase)[self] = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if phase is Phase.IDLE:  # the body and handler phases have their deadlines in GuardedSite
            self._timer = asyncio.get_running_loop().call_later(self._site.header_timeout_s, self.close)

    def enter_idle(self) -> None:
        """IDLE, unless already: the header deadline keeps running while a head trickles in."""
        if self.phase is not Phase.IDLE:
            self.enter(Phase.IDLE)

    def enter_body(self) -> None:
        """BODY (the fast path keeps the body's deadline itself)."""
        if self.phase is not Phase.BODY:
            self.enter(Phase.BODY)

    def enter_busy(self) -> None:
        """BUSY: a request is being answered; never evicted."""
        if self.phase is not Phase.BUSY:
            self.enter(Phase.BUSY)

    def close(self) -> None:
        """Close the connection now (an expired deadline, or evicted); it no longer counts."""
        if self.closed or self.transport is None:
            return
        self._forget()
        self.transport.close()

    def _forget(self) -> None:
        self.closed = True
        self._site.open -= 1
        self._site.candidates(Phase.IDLE).pop(self, None)
        self._site.candidates(Phase.BODY).pop(self, None)
        self._site.by_transport.pop(self.transport, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self.fast is not None:
            self.fast.feed(data)
        else:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._refused else self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        if not self.closed:
            self._forget()
        if self.fast is not None:
            self.fast.lost()
        self.inner.connection_lost(exc)


class _Refusal(Exception):
    """A request refused before its handler ran; ``close``: drop the connection once answered."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


class GuardedSite(web.TCPSite):
    """An aiohttp TCP site with header and body deadlines, a body size limit and a connection cap
    that evicts stalled connections (see the module docstring).

    With ``sock`` (a bound, listening socket) it serves that socket, so the port is held from
    before the site exists; ``host`` and ``port`` then only name it."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, header_timeout_s: float = 10.0,
                 max_connections: int = 4096, sock: socket.socket | None = None, body_timeout_s: float = 10.0,
                 body_min_bytes_per_s: float = 4 * 2**20, body_limit: BodyLimit = 1 << 20,
                 idle_grace_s: float = 1.0, fast: PredictHandler | None = None, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.fast = fast  # answers POST /<app>/predict itself (see fast_http); None: aiohttp does
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.body_min_bytes_per_s = body_min_bytes_per_s
        self.body_limit = body_limit
        self.idle_grace_s = idle_grace_s
        self.max_connections = max_connections
        self.open = 0
        self.evicted = 0
        self.by_transport: dict[asyncio.BaseTransport, _Guard] = {}
        self._candidates: dict[Phase, OrderedDict[_Guard, None]] = {Phase.IDLE: OrderedDict(),
                                                                     Phase.BODY: OrderedDict()}
        self._sock = sock

    def body_deadline(self, length: int) -> float:
        """How long a body of ``length`` bytes may take to arrive, in seconds."""
        return self.body_timeout_s + length / self.body_min_bytes_per_s

    def candidates(self, phase: Phase) -> OrderedDict[_Guard, None]:
        """Open connections in ``phase`` (IDLE or BODY), the one longest in it first."""
        return self._candidates[phase]

    def evict_one(self) -> bool:
        """Close the connection that has stalled longest (see the module docstring); False if none may go."""
        body = next(iter(self._candidates[Phase.BODY]), None)
        idle = next(iter(self._candidates[Phase.IDLE]), None)
        if idle is not None and asyncio.get_running_loop().time() - idle.since < self.idle_grace_s:
            idle = None
        victim = min((g for g in (body, idle) if g is not None), key=lambda g: g.since, default=None)
        if victim is None:
            return False
        victim.close()
        self.evicted += 1
        return True

    async def start(self) -> None:
        """Listen, handing each connection to aiohttp through a guard and each request through
        :meth:`_guarded` (body deadline and size limit)."""
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None, "the runner must be set up first"
        inner: Handler = server.request_handler
        server.request_handler = lambda request: self._guarded(request, inner)
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            self._server = await loop.create_server(lambda: _Guard(server(), self), sock=self._sock,
                                                    backlog=self._backlog)
            return
        self._server = await loop.create_server(
            lambda: _Guard(server(), self), self._host, self._port,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port,
        )

    async def _guarded(self, request: web.BaseRequest, inner: Handler) -> web.StreamResponse:
        """Read the body within its deadline and limit, then hand the request to aiohttp's app."""
        guard = self.by_transport.get(request.transport)  # type: ignore[arg-type]
        if guard is not None:
            guard.enter(Phase.BODY)
        try:
            if request.body_exists:
                request = await self._read_body(request)
            if guard is not None:
                guard.enter(Phase.BUSY)
            return await inner(request)
        except _Refusal as refusal:
            return await self._refuse(request, refusal)
        finally:
            if guard is not None:
                guard.enter(Phase.IDLE)

    async def _read_body(self, request: web.BaseRequest) -> web.BaseRequest:
        """The request with its body read (a clone whose ``read()`` returns it); _Refusal when it
        declares or sends more than the limit, or does not arrive in time."""
        limit = self.body_limit if isinstance(self.body_limit, int) else self.body_limit(request)
        length = request.content_length
        if length is not None and length > limit:
            raise _Refusal(413, f"request body of {length} bytes is over this endpoint's limit of {limit} bytes")
        deadline_s = self.body_deadline(length or 0)
        clone = request.clone(client_max_size=limit)
        try:
            await asyncio.wait_for(clone.read(), deadline_s)
        except TimeoutError:
            raise _Refusal(408, late_body_cause(deadline_s), close=True) from None
        except web.HTTPRequestEntityTooLarge:
            raise _Refusal(413, f"request body is over this endpoint's limit of {limit} bytes") from None
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise _Refusal(400, f"request body was cut off: {exc}", close=True) from None
        return clone

    @staticmethod
    async def _refuse(request: web.BaseRequest, refusal: _Refusal) -> web.StreamResponse:
        """Answer a refused request (``{"error", "cause"}``, as Clipper's query errors are) and end
        its connection: at once for a late body, else after aiohttp has drained what is still
        coming (so a client that sends its whole body first still reads the answer)."""
        reason = {408: "Request body timed out", 413: "Request body too large"}.get(refusal.status, "Bad request")
        response = web.json_response({"error": reason, "cause": refusal.message}, status=refusal.status)
        response.force_close()
        if refusal.close:
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionError:
                pass
            request.protocol.force_close()  # flushes the answer, then closes; no lingering read
        return response
