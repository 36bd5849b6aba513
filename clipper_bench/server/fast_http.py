"""The query port's fast path: ``POST /<app>/predict`` answered on the connection itself.

Through aiohttp a noop REST query cost the frontend about 0.25 ms of CPU, and aiohttp's request and
response machinery (a task per request, its router, its writer, a body timer) was more than half of
it. Here the guard's protocol (:mod:`.http_guard`) frames the hot request itself: an HTTP/1.1 ``POST
/<app>/predict`` with a ``Content-Length`` body within the endpoint's limit. It hands the body to
the frontend's ``start_predict`` (a callback, no task), and writes the answer when it comes, in
request order (pipelined requests are answered in order).

Anything else on a connection (another method, path or HTTP version, a chunked body, ``Expect``,
``Upgrade``, a duplicate or unreadable header, a header block over :data:`MAX_HEAD_BYTES`, a body
over the limit) hands the connection to aiohttp, from the first byte of that request on and for
good, once the fast answers before it are written. So every refusal, error page and limit other
than the body deadline is aiohttp's and the guard's, as before; the fast path only takes requests
both would have served. A body that does not arrive within the guard's body deadline is answered
408 and the connection closed, as the guard does for aiohttp.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, Protocol

import orjson

MAX_HEAD_BYTES = 8190  # aiohttp's own limit on a request line or header
MAX_PIPELINED = 64  # requests answered out of order are held; past this many, reading pauses
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*\Z")
_APP = re.compile(rb"/([A-Za-z0-9_.\-]+)/predict\Z")
_REASONS = {200: b"OK", 400: b"Bad Request", 408: b"Request Timeout", 500: b"Internal Server Error"}
_NOT_FAST = frozenset((b"transfer-encoding", b"expect", b"upgrade"))


def late_body_cause(deadline_s: float) -> str:
    """Why a request was answered 408, on either path (here and http_guard's)."""
    return f"request body did not arrive within {deadline_s:.1f} s"


class PredictHandler(Protocol):
    """What the fast path needs from the frontend."""

    def start_predict(self, app_name: str, body: bytes, reply: Callable[[int, bytes], None]) -> None:
        """Answer ``body`` for ``app_name`` through ``reply(http_status, json_body)``, once."""

    def predict_body_limit(self, app_name: str) -> int:
        """The largest predict body ``app_name`` takes."""


class Guard(Protocol):
    """What the fast path needs from its connection's guard (http_guard's protocol)."""

    inner: Any  # aiohttp's protocol for the connection, which takes over on a hand-over
    transport: Any

    def enter_idle(self) -> None:
        """The connection waits for a request head (the header deadline runs)."""

    def enter_body(self) -> None:
        """A head is in, its body is awaited."""

    def enter_busy(self) -> None:
        """A request is being answered."""

    def close(self) -> None:
        """Close the connection now."""


class _Date:
    """The ``Date`` header, formatted once a second."""

    second = -1
    value = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True).encode()
        return cls.value


def response(status: int, body: bytes, close: bool = False) -> bytes:
    """A whole HTTP/1.1 response with a JSON ``body``."""
    head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n" \
           b"Date: %s\r\nServer: clipper-bench\r\n" % (status, _REASONS[status], len(body), _Date.now())
    return head + (b"Connection: close\r\n\r\n" if close else b"\r\n") + body


class _Head:
    """A request head the fast path takes: its application, body length and whether to close."""

    __slots__ = ("app", "length", "close")

    def __init__(self, app: str, length: int, close: bool) -> None:
        self.app, self.length, self.close = app, length, close


def parse_head(head: bytes) -> _Head | None:
    """The fast path's reading of a request head (without its blank line); None: aiohttp's."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1":
        return None
    app = _APP.match(parts[1])
    if app is None:
        return None
    length, close = None, False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name) or not _VALUE.match(value):
            return None
        name = name.lower()
        if name == b"content-length":
            value = value.strip(b" \t")
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name == b"connection":
            close = b"close" in value.lower()
            if b"upgrade" in value.lower():
                return None
        elif name in _NOT_FAST:
            return None
    return None if length is None else _Head(app.group(1).decode(), length, close)


class FastConnection:
    """One connection's fast path; the guard feeds it bytes until it hands over to aiohttp."""

    def __init__(self, guard: Guard, handler: PredictHandler, body_deadline: Callable[[int], float]) -> None:
        self._guard = guard
        self._handler = handler
        self._body_deadline = body_deadline
        self._buf = bytearray()
        self._answers: deque[list] = deque()  # [response bytes or None, close after]
        self._head: _Head | None = None  # the request whose body is awaited
        self._head_end = 0
        self._timer: asyncio.TimerHandle | None = None
        self._handing_over = False
        self._paused = False
        self._parsing = False
        self.handed_over = False
        self.closed = False

    def feed(self, data: bytes) -> None:
        """Take the bytes the connection received (the guard's ``data_received``)."""
        if self.handed_over:
            self._guard.inner.data_received(data)
            return
        self._buf += data
        if not self._handing_over:
            self._parse()

    def _parse(self) -> None:
        """Answer every whole request in the buffer; start waiting for a partial one."""
        if self._parsing:  # an answer given at once, inside the loop below
            return
        self._parsing = True
        try:
            self._parse_buffer()
        finally:
            self._parsing = False
        if not self._answers and self._head is None and not self._handing_over and not self.closed:
            self._guard.enter_idle()  # the header deadline runs from the last answer

    def _parse_buffer(self) -> None:
        while self._buf and not self.closed and not self._handing_over:
            if self._head is None and not self._read_head():
                return
            head = self._head
            end = self._head_end + head.length
            if len(self._buf) < end:
                self._await_body(head)
                return
            body = bytes(self._buf[self._head_end:end])
            del self._buf[:end]
            self._head = None
            self._cancel_timer()
            self._start(head, body)

    def _read_head(self) -> bool:
        """Frame the next request's head; False when it is not all here yet or goes to aiohttp."""
        end = self._buf.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
        if end < 0:
            if len(self._buf) > MAX_HEAD_BYTES:
                self._hand_over()
            return False
        head = parse_head(bytes(self._buf[:end]))
        if head is None or head.length > self._handler.predict_body_limit(head.app):
            self._hand_over()
            return False
        self._head, self._head_end = head, end + 4
        return True

    def _await_body(self, head: _Head) -> None:
        if self._timer is None:
            self._guard.enter_body()
            deadline_s = self._body_deadline(head.length)
            self._timer = asyncio.get_running_loop().call_later(deadline_s, self._late_body, deadline_s)

    def _late_body(self, deadline_s: float) -> None:
        self._timer = None
        cause = orjson.dumps({"error": "Request body timed out", "cause": late_body_cause(deadline_s)})
        self._answers.append([response(408, cause, close=True), True])
        self._head = None
        self._buf.clear()
        self._flush()

    def _start(self, head: _Head, body: bytes) -> None:
        slot: list = [None, head.close]
        self._answers.append(slot)
        self._guard.enter_busy()
        if len(self._answers) >= MAX_PIPELINED and not self._paused:
            self._paused = True
            self._guard.transport.pause_reading()

        def reply(status: int, data: bytes) -> None:
            if slot[0] is None:
                slot[0] = response(status, data, close=head.close)
                self._flush()

        self._handler.start_predict(head.app, body, reply)

    def _flush(self) -> None:
        """Write the answers that are ready, in request order."""
        transport = self._guard.transport
        while self._answers and self._answers[0][0] is not None and not self.closed:
            data, close = self._answers.popleft()
            transport.write(data)
            if close:
                self._guard.close()
                return
        if self._answers or self.closed:
            return
        if self._paused:
            self._paused = False
            transport.resume_reading()
        if self._handing_over:
            self._finish_hand_over()
        else:
            self._parse()

    def _hand_over(self) -> None:
        """From the request at the buffer's start on, the connection is aiohttp's (once answered)."""
        self._handing_over = True
        self._cancel_timer()
        if not self._answers:
            self._finish_hand_over()

    def _finish_hand_over(self) -> None:
        self.handed_over = True
        data, self._buf = bytes(self._buf), bytearray()
        self._guard.enter_idle()
        if data:
            self._guard.inner.data_received(data)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def lost(self) -> None:
        """The connection closed: answers still to come are dropped."""
        self.closed = True
        self._cancel_timer()
        self._answers.clear()
