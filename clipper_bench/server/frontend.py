"""The local engine's frontend process: query frontend, management frontend and RPC endpoint.

One asyncio loop serves

* the query frontend over HTTP (Clipper 0.4.1's ``POST /<app>/predict`` and ``GET /metrics``),
* the binary query path over ZeroMQ (see :mod:`clipper_bench.protocol.binary`),
* the management frontend over HTTP (the ``/admin/...`` calls ``clipper_admin`` makes), and
* the model-container RPC endpoint over ZeroMQ (see :mod:`clipper_bench.protocol.rpc`).

Run it with ``python -m clipper_bench.server.frontend --help``; the container manager does.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
from aiohttp import web

from ..common.processes import PORT_LABELS, listen_tcp, port_taken_message
from ..common.zmq_asyncio import ZmqReader
from ..protocol.binary import Status
from .admin_api import AdminApi
from .container_rpc import ContainerRpc
from .dispatcher import Dispatcher, Query
from .http_guard import GuardedSite
from .inputs import JsonTooDeep, check_input_size, parse_json
from .metrics import MetricsRegistry
from .pipeline import PipelineApp, PipelineTrace
from .query_binary import BinaryQueries
from .query_pipeline import PipelineQueries
from .query_rest import RestQueries
from .registry import AdminError, Application, Registry

log = logging.getLogger("clipper_bench.frontend")

Buffer = bytes | memoryview


@dataclass(frozen=True)
class FrontendSettings:
    """Where the frontend listens and how much it accepts."""

    host: str = "127.0.0.1"
    query_port: int = 1337
    admin_port: int = 1338
    rpc_port: int = 7000
    binary_port: int = 1339
    max_body_bytes: int = 64 * 1024 * 1024  # any message on the ZeroMQ ports, any HTTP body at most
    max_json_bytes: int = 16 * 1024 * 1024  # a predict body for an app whose input size is undeclared
    admin_body_bytes: int = 1024 * 1024  # a management call's body
    body_timeout_s: float = 10.0  # an HTTP request's body must arrive within this long (see http_guard)
    max_inputs_per_request: int = 4096
    batches_in_flight: int = 1
    replica_timeout_s: float = 30.0  # an idle replica silent this long is gone (busy: 10x)
    hang_min_s: float = 3.0  # a replica holding a batch is hung after at least this long (see dispatcher)
    header_timeout_s: float = 10.0  # an HTTP connection must send its request headers (and idle at most) this long
    max_connections: int = 4096  # open HTTP connections per port; more are closed at once
    metrics_port: int = 0  # Prometheus' /metrics (Clipper's exporter uses 1390); 0: not served
    power_dir: str = ""  # where the running power sampler's *.live.json files are (for Prometheus)
    # ports (query, admin, rpc, binary, metrics) that move to a free port when the one asked for is
    # taken; any other taken port stops the start with PortTaken. A port of 0 is one the OS picks.
    fallback_ports: tuple[str, ...] = ()
    ports_file: str = ""  # where the bound ports (or why binding failed) are written, as JSON
    title: str = ""  # the process title; empty: one naming the bound ports
    event_loop: str = "uvloop"  # "uvloop" (libuv) or "asyncio"
    fast_http: bool = True  # answer POST /<app>/predict on the connection (see fast_http); False: aiohttp


class PortTaken(OSError):
    """A port that was asked for, and may not move, is taken; the message names it and the fix."""

    def __init__(self, what: str, port: int, host: str, reason: str) -> None:
        super().__init__(errno.EADDRINUSE, port_taken_message(what, port, host, reason))
        self.what, self.port = what, port

    def __str__(self) -> str:
        return str(self.strerror)


def _in_use(exc: Exception) -> bool:
    return getattr(exc, "errno", None) == errno.EADDRINUSE


class Frontend(RestQueries, BinaryQueries, PipelineQueries, ContainerRpc):
    """All of the engine's frontend state and its handlers."""

    def __init__(self, settings: FrontendSettings) -> None:
        self.settings = settings
        self.registry = Registry()
        self.metrics = MetricsRegistry()
        self._ctx = zmq.Context.instance()
        self._next_query_id = 0
        self._pending: dict[str, deque[Query]] = {}
        self._runners: list[web.AppRunner] = []
        self._readers: list[ZmqReader] = []
        self._sweeper: asyncio.Task | None = None
        self._http_socks: dict[str, socket.socket] = {}
        self._rest_tasks: set[asyncio.Task] = set()  # large predict bodies being parsed
        self._packed_replies: dict[bytes, list[bytes]] = {}  # binary answers gathered per client this turn
        self._draining = False  # inside a read of a socket's waiting messages (see _drain_started)
        self.ports: dict[str, int] = {}  # what -> the port bound (metrics: 0 when not served)
        self.moved: dict[str, tuple[int, int]] = {}  # what -> (port asked for, port bound instead)
        self.faults: list[dict[str, Any]] = []  # replicas this frontend dropped or found lost work
        self.dispatcher = Dispatcher(
            self._send_rpc, self.metrics, batches_in_flight=settings.batches_in_flight,
            hang_min_s=settings.hang_min_s, hang_first_s=10 * settings.replica_timeout_s,
        )
        self.admin = AdminApi(self.registry, self.dispatcher)  # Clipper's management calls, as a table
        self.pipelines: dict[str, PipelineApp] = {}  # applications that chain several models
        self.pipeline_trace = PipelineTrace()

    # -- start and stop -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every port (see :meth:`_bind_ports`), then serve on them."""
        loop = asyncio.get_running_loop()
        s = self.settings
        self._rpc = self._ctx.socket(zmq.ROUTER)
        self._rpc.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self._rpc.setsockopt(zmq.LINGER, 0)
        self._rpc.setsockopt(zmq.MAXMSGSIZE, s.max_body_bytes)
        self._binary = self._ctx.socket(zmq.ROUTER)
        self._binary.setsockopt(zmq.LINGER, 0)
        self._binary.setsockopt(zmq.MAXMSGSIZE, s.max_body_bytes)
        self._binary.setsockopt(zmq.SNDHWM, 0)
        self._binary.setsockopt(zmq.RCVHWM, 0)
        self._bind_ports()
        # Both readers hold dispatches while they drain their socket: the queries of one client
        # message, and a pipeline stage's answers forwarded to the next stage, leave as one batch.
        hooks = (self._drain_started, self._drain_ended)
        self._rpc_reader = ZmqReader(loop, self._rpc, self._on_rpc, drain_hooks=hooks)
        self._binary_reader = ZmqReader(loop, self._binary, self._on_binary, drain_hooks=hooks)
        self._readers = [self._rpc_reader, self._binary_reader]

        query_app = web.Application(client_max_size=s.max_body_bytes)
        query_app.router.add_get("/metrics", self._handle_metrics)
        query_app.router.add_post("/{app}/predict", self._handle_predict)
        admin_app = web.Application(client_max_size=s.max_body_bytes)
        admin_app.router.add_get("/admin/ping", self._handle_ping)
        admin_app.router.add_post("/admin/{call}", self._handle_admin)
        admin_app.router.add_post("/admin/clipper_bench/{call}", self._handle_bench_admin)
        apps = [(query_app, "query"), (admin_app, "admin")]
        if s.metrics_port:
            apps.append((self._prometheus_app(), "metrics"))
        limits = {"query": self._body_limit, "admin": s.admin_body_bytes, "metrics": 64 * 1024}
        for app, what in apps:
            runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=s.header_timeout_s)
            await runner.setup()
            await GuardedSite(runner, s.host, self.ports[what], sock=self._http_socks.pop(what),
                              header_timeout_s=s.header_timeout_s, max_connections=s.max_connections,
                              body_timeout_s=s.body_timeout_s, body_limit=limits[what],
                              fast=self if what == "query" and s.fast_http else None).start()
            self._runners.append(runner)
        self._sweeper = asyncio.create_task(self._sweep_deadlines())
        self._watchdog = asyncio.create_task(self._watch_replicas())

    def _bind_ports(self) -> None:
        """Bind the RPC and binary ZeroMQ sockets and the HTTP listening sockets before anything is
        served, so the ports reported are held: nothing can take them between choosing and binding."""
        s = self.settings

        def zmq_bind(sock: zmq.Socket) -> Callable[[int], int]:
            def bind(port: int) -> int:
                sock.bind(f"tcp://{s.host}:{port or '*'}")
                return int(sock.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
            return bind

        def http_bind(what: str) -> Callable[[int], int]:
            def bind(port: int) -> int:
                self._http_socks[what] = listen_tcp(s.host, port)
                return self._http_socks[what].getsockname()[1]
            return bind

        wanted = [("rpc", s.rpc_port, zmq_bind(self._rpc)), ("binary", s.binary_port, zmq_bind(self._binary)),
                  ("query", s.query_port, http_bind("query")), ("admin", s.admin_port, http_bind("admin"))]
        if s.metrics_port:
            wanted.append(("metrics", s.metrics_port, http_bind("metrics")))
        self.ports["metrics"] = 0
        try:
            for what, port, bind in wanted:
                self.ports[what] = self._take_port(what, port, bind)
        except BaseException:
            for sock in self._http_socks.values():
                sock.close()
            self._http_socks.clear()
            raise

    def _take_port(self, what: str, port: int, bind: Callable[[int], int]) -> int:
        """``bind(port)`` (0: a port the OS picks); when that port is taken, ``bind(0)`` if ``what``
        may move (``fallback_ports``), else raise PortTaken. Returns the port bound."""
        try:
            return bind(port)
        except (OSError, zmq.ZMQError) as exc:
            if port == 0 or not _in_use(exc):
                raise
            if what not in self.settings.fallback_ports:
                raise PortTaken(what, port, self.settings.host, os.strerror(errno.EADDRINUSE).lower()) from None
        bound = bind(0)
        self.moved[what] = (port, bound)
        log.warning("%s port %d on %s is taken: serving on %d instead", PORT_LABELS[what], port,
                    self.settings.host, bound)
        return bound

    def _prometheus_app(self) -> web.Application:
        """``GET /metrics`` in Prometheus' text format (see engine.prometheus)."""
        from pathlib import Path

        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        from .prometheus import ClipperCollector

        registry = CollectorRegistry(auto_describe=False)
        registry.register(ClipperCollector(self.metrics.to_json, Path(self.settings.power_dir) if self.settings.power_dir else None))

        async def scrape(request: web.Request) -> web.Response:
            return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", scrape)
        return app

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._watchdog.cancel()
        for runner in self._runners:
            await runner.cleanup()
        for reader in self._readers:
            reader.close()
        self._rpc.close(0)
        self._binary.close(0)

    # -- queries ------------------------------------------------------------------------------

    def _drain_started(self) -> None:
        """Before a read of every message waiting on a socket: hold dispatches (what arrives together
        leaves as one batch) and gather packed answers (what is answered together leaves as one
        message per client)."""
        self._draining = True
        self.dispatcher.hold()

    def _drain_ended(self) -> None:
        """After the read: send the batches held, then the answers gathered, at once rather than on
        another turn of the loop."""
        self._draining = False
        self.dispatcher.release()
        if self._packed_replies:
            self._send_packed()

    def _submit(
        self, app: Application, payload: Buffer, on_done: Callable[[Query, Status, Buffer], None],
        in_shm: bool = False,
    ) -> Query:
        """Queue one input (or with ``in_shm`` its shared-memory descriptor) for ``app``'s model;
        ``on_done`` gets the output, default or error."""
        if app.name in self.pipelines:
            return self._submit_pipeline(app, payload, on_done)
        self._next_query_id += 1
        now = time.perf_counter()
        query = Query(self._next_query_id, payload, now, now + app.latency_slo_micros / 1e6, on_done, in_shm)
        model = self.registry.model_for_app(app)
        if model is None:
            query.finish(Status.DEFAULT, app.default_output.encode())
            return query
        pending = self._pending.get(app.name)
        if pending is None:
            pending = self._pending[app.name] = deque()
        pending.append(query)
        self.dispatcher.submit(model.key, query)
        return query

    def _record(self, app: Application, query: Query, status: Status) -> None:
        entries = self.metrics.app_metrics(app.name)
        entries.latency.insert((time.perf_counter() - query.arrival) * 1e6)
        entries.throughput.mark()
        entries.predictions.count += 1
        ratio = entries.default_ratio
        ratio.denominator += 1
        if status is Status.DEFAULT:
            ratio.numerator += 1
            self.metrics.counter(f"app:{app.name}:num_defaults").count += 1  # not Clipper's: for the live display
        elif status is Status.ERROR:  # not in Clipper's metrics: the driver's live display reads it
            self.metrics.counter(f"app:{app.name}:num_errors").count += 1

    async def _sweep_deadlines(self) -> None:
        """Answer queries whose app SLO has passed with the app's default output."""
        while True:
            now = time.perf_counter()
            next_deadline = now + 0.05
            for app_name, pending in list(self._pending.items()):
                app = self.registry.apps.get(app_name)
                default = app.default_output.encode() if app else b"application was deleted"
                while pending and (pending[0].done or pending[0].deadline <= now):
                    query = pending.popleft()
                    if not query.done:
                        query.finish(Status.DEFAULT if app else Status.ERROR, default)
                if pending:
                    next_deadline = min(next_deadline, pending[0].deadline)
            await asyncio.sleep(max(next_deadline - time.perf_counter(), 0.0005))

    def _fault(self, identity: bytes, kind: str, what: str) -> None:
        """Remember a fault for the manager (``clipper_bench/faults``) and log it."""
        log.warning("%s", what)
        self.faults.append({"identity": identity.decode("utf-8", "replace"), "kind": kind, "what": what,
                            "at": time.time()})

    async def _watch_replicas(self) -> None:
        """Forget replicas that went silent or hung; their queries are answered with an error.

        An idle container heartbeats every 5 s, so one silent for ``replica_timeout_s`` is gone; a
        replica holding a batch past the dispatcher's hang limit is hung. Both are recorded as faults
        (the manager kills a hung replica's process). The local manager reports dead processes sooner."""
        timeout = self.settings.replica_timeout_s
        while True:
            await asyncio.sleep(min(0.5, timeout / 4))
            now = time.time()
            for replica, age, limit in self.dispatcher.hung_replicas():
                what = (f"replica {replica.key[0]}#{replica.replica_id + 1} ({replica.identity.decode('utf-8', 'replace')}) "
                        f"hung: held a batch for {age:.1f} s, limit {limit:.1f} s")
                self.dispatcher.remove_replica(replica.identity, what)
                self._fault(replica.identity, "hung", what)
            for identity, replica in list(self.dispatcher.replicas.items()):
                silent = now - replica.last_seen
                if not replica.busy and silent > timeout:
                    what = f"replica {identity.decode('utf-8', 'replace')} silent for {silent:.0f} s: dropped"
                    self.dispatcher.remove_replica(identity, what)
                    self._fault(identity, "silent", what)

    def _declared_elements(self, app: Application) -> int | None:
        """How many elements one input of ``app`` holds, as its model (or its pipeline) declared;
        None when undeclared."""
        if app.name in self.pipelines:
            return int(np.prod(self.pipelines[app.name].query_input.shape))
        model = self.registry.model_for_app(app)
        return None if model is None else model.input_elements

    def _check_sizes(self, app: Application, payloads: Sequence[Buffer]) -> None:
        """Raise InputError unless every input has the size its model (or its pipeline) declared."""
        size = self._declared_elements(app)
        for payload in payloads:
            check_input_size(payload, app.input_type, size)

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        return web.json_response(self.metrics.to_json())

    # -- model containers ---------------------------------------------------------------------

    # -- management ---------------------------------------------------------------------------

    async def _handle_ping(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _admin_call(self, call: str, body: Any) -> Any:
        return self.admin.call(call, body)

    @staticmethod
    async def _json_body(request: web.Request, empty: Any = None) -> Any:
        """The request's JSON body (``empty`` when it has none), nesting bounded: ValueError (a
        JsonTooDeep for deep nesting) when it is not JSON the frontend parses."""
        body = await request.read()  # read already, within its time and size limits (http_guard)
        if not body.strip() and empty is not None:
            return empty
        return parse_json(body)

    async def _handle_admin(self, request: web.Request) -> web.Response:
        call = request.match_info["call"]
        try:
            body = await self._json_body(request, empty={})
        except ValueError as exc:
            return web.Response(status=400, text=f"Error parsing JSON: {exc}")
        try:
            result = self._admin_call(call, body)
        except AdminError as exc:
            return web.Response(status=400, text=f"Error: {exc}")
        if isinstance(result, str):
            return web.Response(text=result)
        return web.json_response(result)

    async def _handle_bench_admin(self, request: web.Request) -> web.Response:
        """clipper-bench's own calls, used by LocalContainerManager (not part of Clipper's API)."""
        call = request.match_info["call"]
        if call in ("set_batch_size", "reset_metrics", "set_input_size"):
            return await self._handle_bench_setting(call, request)
        if call == "faults":
            return web.json_response(self.faults)
        if call in ("add_pipeline", "pipeline_trace"):
            try:  # checked here, where nesting is bounded; the pipeline's handler parses it again
                await self._json_body(request, empty={})
            except ValueError as exc:
                return web.Response(status=400, text=f"Error parsing JSON: {exc}")
            return await self._handle_pipeline_admin(call, request)
        try:
            body = await self._json_body(request)
            identity = str(body["identity"]).encode()
            timeout_s = float(body.get("timeout_s", 30.0))
        except JsonTooDeep as exc:
            return web.Response(status=400, text=f"Error parsing JSON: {exc}")
        except (ValueError, KeyError, TypeError) as exc:
            return web.Response(status=400, text=f"Error: body needs 'identity': {exc}")
        if call == "drain_replica":
            replica = self.dispatcher.drain_replica(identity)
            if replica is None:
                return web.json_response({"found": False})
            deadline = time.monotonic() + timeout_s
            while replica.busy and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            drained = not replica.busy
            self.dispatcher.remove_replica(identity, "replica was removed while busy")
            return web.json_response({"found": True, "drained": drained})
        if call == "remove_replica":
            reason = str(body.get("reason", "replica stopped"))
            replica = self.dispatcher.remove_replica(identity, reason)
            return web.json_response({"found": replica is not None})
        return web.Response(status=400, text=f"Error: unknown call '{call}'")

    async def _handle_bench_setting(self, call: str, request: web.Request) -> web.Response:
        """Between configurations of a sweep: a new batch size for a deployed model, fresh metrics."""
        if call == "reset_metrics":
            self.metrics.reset()
            return web.Response(text="Success!")
        field = "input_elements" if call == "set_input_size" else "batch_size"
        try:
            body = await self._json_body(request)
            key = (str(body["model_name"]), str(body["model_version"]))
            value = body[field]
        except JsonTooDeep as exc:
            return web.Response(status=400, text=f"Error parsing JSON: {exc}")
        except (ValueError, KeyError, TypeError) as exc:
            return web.Response(status=400, text=f"Error: body needs model_name, model_version, {field}: {exc}")
        model = self.registry.models.get(key)
        if model is None:
            return web.Response(status=400, text=f"Error: no model {key[0]}:{key[1]}")
        if call == "set_input_size":  # kept by name and version: a version deleted and added again keeps it
            try:
                self.registry.set_input_size(key[0], key[1], value)
            except AdminError as exc:
                return web.Response(status=400, text=f"Error: {exc}")
            return web.Response(text="Success!")
        batch_size = value
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or (batch_size != -1 and batch_size < 1):
            return web.Response(status=400, text="Error: batch_size must be -1 (adaptive) or a positive integer")
        model.batch_size = batch_size
        self.dispatcher.set_batch_size(key, batch_size)
        return web.Response(text="Success!")


def _add_limit_args(parser: argparse.ArgumentParser) -> None:
    """The flags that bound what the frontend takes from its clients (see http_guard and query_rest)."""
    parser.add_argument("--max_body_mb", type=float, default=64.0,
                        help="largest message on the ZeroMQ ports and largest HTTP body (default 64)")
    parser.add_argument("--max_json_mb", type=float, default=16.0,
                        help="largest predict body for an application whose model's input size is not declared "
                             "(declared: that size x the inputs a request may hold, as JSON; default 16)")
    parser.add_argument("--body_timeout_s", type=float, default=10.0,
                        help="an HTTP request's body must arrive within this long, plus 1 s per 4 MiB it "
                             "declares; later: 408 and the connection closed (default 10)")
    parser.add_argument("--header_timeout_s", type=float, default=10.0,
                        help="close an HTTP connection that has not sent its request headers, or sits idle, "
                             "this long (default 10)")
    parser.add_argument("--max_connections", type=int, default=4096,
                        help="open HTTP connections per port; a new one over it evicts the connection stalled "
                             "longest on its body (or idle longest), else is closed at once (default 4096)")


def _add_path_args(parser: argparse.ArgumentParser) -> None:
    """The flags that pick the frontend's own code path (kept so the older path stays measurable)."""
    parser.add_argument("--event_loop", choices=EVENT_LOOPS, default=os.environ.get(EVENT_LOOP_ENV, "uvloop"),
                        help=f"the event loop: uvloop (libuv) or asyncio (the standard library's); default "
                             f"${EVENT_LOOP_ENV} or uvloop")
    parser.add_argument("--no_fast_http", dest="fast_http", action="store_false",
                        help="answer every query-port request through aiohttp, without the predict fast path")


def parse_args(argv: list[str] | None = None) -> FrontendSettings:
    parser = argparse.ArgumentParser(prog="clipper-bench-frontend", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--query_port", type=int, default=1337)
    parser.add_argument("--admin_port", type=int, default=1338)
    parser.add_argument("--rpc_port", type=int, default=7000)
    parser.add_argument("--binary_port", type=int, default=1339)
    _add_limit_args(parser)
    parser.add_argument("--batches_in_flight", type=int, default=1,
                        help="batches a replica may be sent before it answers (Clipper: 1)")
    parser.add_argument("--replica_timeout_s", type=float, default=30.0,
                        help="forget an idle replica silent this long (busy: 10x; default 30)")
    parser.add_argument("--hang_min_s", type=float, default=3.0,
                        help="a replica holding a batch counts as hung after 10x its model's slowest batch "
                             "time per query x the batch's size, and never sooner than this (default 3)")
    parser.add_argument("--metrics_port", type=int, default=0,
                        help="serve Prometheus' /metrics on this port (Clipper's exporter: 1390; default 0: not served)")
    parser.add_argument("--power_dir", default="", help="directory of the power sampler's live files, for Prometheus")
    parser.add_argument("--fallback_ports", default="",
                        help="comma-separated ports (query,admin,rpc,binary,metrics) that move to a free port "
                             "when the one given is taken; any other taken port is an error (a port of 0: "
                             "one the OS picks)")
    parser.add_argument("--ports_file", default="",
                        help="write the ports bound (or why binding failed) here as JSON, once they are held")
    parser.add_argument("--title", default="", help="process title shown by ps and htop (default: one naming the ports)")
    _add_path_args(parser)
    args = parser.parse_args(argv)
    if args.event_loop not in EVENT_LOOPS:
        parser.error(f"${EVENT_LOOP_ENV} must be one of {', '.join(EVENT_LOOPS)}, not {args.event_loop!r}")
    fallback = tuple(w for w in args.fallback_ports.split(",") if w)
    if set(fallback) - set(PORT_LABELS):
        parser.error(f"--fallback_ports takes {','.join(PORT_LABELS)}, got {args.fallback_ports}")
    from ..common.pinning import pin_from_environment
    from ..common.processes import become_child

    pin_from_environment()
    become_child(args.title or "clipper-bench frontend")
    return FrontendSettings(
        host=args.host,
        query_port=args.query_port,
        admin_port=args.admin_port,
        rpc_port=args.rpc_port,
        binary_port=args.binary_port,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_json_bytes=int(args.max_json_mb * 1024 * 1024),
        body_timeout_s=args.body_timeout_s,
        batches_in_flight=args.batches_in_flight,
        replica_timeout_s=args.replica_timeout_s,
        hang_min_s=args.hang_min_s,
        header_timeout_s=args.header_timeout_s,
        max_connections=args.max_connections,
        metrics_port=args.metrics_port,
        power_dir=args.power_dir,
        fallback_ports=fallback,
        ports_file=args.ports_file,
        title=args.title,
        event_loop=args.event_loop,
        fast_http=args.fast_http,
    )


EVENT_LOOPS = ("uvloop", "asyncio")
EVENT_LOOP_ENV = "CLIPPER_BENCH_EVENT_LOOP"  # the frontend's event loop where no flag reaches it (run, serve)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop ``name`` names: ``uvloop`` (a dependency) or the standard library's."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _raise_fd_limit(wanted: int) -> None:
    """Let the process hold ``wanted`` descriptors if the hard limit allows (both HTTP ports full,
    plus the replicas' and clients' sockets), so accept() never fails with EMFILE before the cap."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def write_ports_file(path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` as JSON, atomically: the manager waiting for it reads all or nothing."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


async def serve(settings: FrontendSettings, ready: Callable[[], None] | None = None) -> None:
    """Run a frontend until SIGTERM or SIGINT; once its ports are bound, write them to
    ``settings.ports_file`` (when set) as ``{"ports": {what: port}, "moved": {what: [asked, bound]}}``."""
    from ..common.processes import set_title

    _raise_fd_limit(2 * settings.max_connections + 1024)
    frontend = Frontend(settings)
    await frontend.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    p, host = frontend.ports, settings.host
    if not settings.title:
        set_title(f"clipper-bench frontend query={host}:{p['query']} admin={p['admin']} rpc={p['rpc']} "
                  f"binary={p['binary']}")
    log.info("frontend up: query http://%s:%d, admin http://%s:%d, rpc tcp://%s:%d, binary tcp://%s:%d%s",
             host, p["query"], host, p["admin"], host, p["rpc"], host, p["binary"],
             f", metrics http://{host}:{p['metrics']}" if p["metrics"] else "")
    if settings.ports_file:
        write_ports_file(settings.ports_file, {"ports": frontend.ports, "moved": frontend.moved})
    if ready:
        ready()
    await stop.wait()
    await frontend.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the frontend process; 2 when it cannot start (its reason also goes to ``--ports_file``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = parse_args(argv)
    try:
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings))
    except (OSError, zmq.ZMQError) as exc:
        message = str(exc) if isinstance(exc, PortTaken) else f"frontend could not start: {exc}"
        log.error("%s", message)
        if settings.ports_file:
            write_ports_file(settings.ports_file, {"error": message})
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
