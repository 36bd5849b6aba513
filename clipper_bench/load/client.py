"""A closed-loop load-generating client process.

Run as ``python -m clipper_bench.load.client SPEC.json``. It waits until the spec's start time,
keeps ``concurrency`` queries outstanding for warm-up plus duration, stops sending, waits for the
answers still out (see :class:`Drain`), and writes every query's raw timings to an ``.npz`` file:
``send_ns`` and ``done_ns`` (``perf_counter_ns``, -1 when unanswered) and ``status``, with
``anchor_wall_ns``/``anchor_perf_ns`` to turn them into wall-clock times. Latency runs from the
moment a query is sent to the moment its answer arrives.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import struct
import sys
import time
from array import array
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol.transports import Transport
from .spec import STATUS_DEFAULT, STATUS_ERROR, STATUS_NO_ANSWER, STATUS_OK, LoadSpec

DRAIN_LATENCY_FACTOR = 2.0


class Drain:
    """When to stop waiting for answers after the last query went out.

    The wait ends when every query is answered, or when no answer has come for the *silence
    limit* (the larger of ``min_silence_s``, ``--drain_timeout_s``, and twice the longest latency
    seen so far in this run, warm-up included, updated as answers arrive) and the last query sent
    is past its SLO by a second (a Clipper frontend answers every query by its SLO, if only with
    the default). So a configuration whose batches take 17 s is waited for as long as it needs;
    ``max_s`` bounds the whole wait. Queries still out then are recorded as unanswered, never as
    errors.
    """

    def __init__(self, rec: Recorder, min_silence_s: float, max_s: float, slo_s: float | None = None) -> None:
        self.rec = rec
        self.began_ns = self.last_answer_ns = time.perf_counter_ns()
        send = np.array(rec.send_ns, dtype=np.int64)
        last_sent = int(send.max()) if send.size else self.began_ns
        self.slo_due_ns = last_sent + int((slo_s + 1.0) * 1e9) if slo_s else 0
        done = np.array(rec.done_ns, dtype=np.int64)[: send.size]
        answered = done >= 0
        self.longest_ns = int((done[answered] - send[answered]).max()) if answered.any() else 0
        self.min_silence_ns = int(min_silence_s * 1e9)
        self.max_ns = int(max_s * 1e9)

    def answered(self, index: int) -> None:
        """Query ``index`` was just answered (its ``done_ns`` is set)."""
        t = self.rec.done_ns[index]
        self.last_answer_ns = max(self.last_answer_ns, t)
        self.longest_ns = max(self.longest_ns, t - self.rec.send_ns[index])

    @property
    def silence_limit_ns(self) -> int:
        return max(self.min_silence_ns, int(DRAIN_LATENCY_FACTOR * self.longest_ns))

    def over(self, now_ns: int) -> bool:
        """Whether to give up on the answers still out."""
        quiet = now_ns - self.last_answer_ns > self.silence_limit_ns and now_ns > self.slo_due_ns
        return quiet or now_ns - self.began_ns > self.max_ns

    def finish(self) -> None:
        """Record how long the wait was and the silence limit that applied."""
        self.rec.drain_ns = time.perf_counter_ns() - self.began_ns
        self.rec.drain_silence_limit_ns = self.silence_limit_ns


class Recorder:
    """Raw per-query data, appended as queries go out and filled in as answers come back."""

    def __init__(self) -> None:
        self.stopped_ns = -1  # when a stop-when-stable client stopped sending early
        self.drain_ns = -1  # how long the drain waited (-1: it never began)
        self.drain_silence_limit_ns = -1
        self.drain: Drain | None = None  # set while draining: answers then extend the wait
        self.stability = None  # the StabilityMonitor, when one ran
        self.scheduled_ns = array("q")  # open loop: when the query was due; closed loop: unused
        self.send_ns = array("q")
        self.done_ns = array("q")
        self.status = array("b")
        self.cpu_window_ns: list[int] = []  # CpuWindow.readings(): the generator's CPU time over the window

    def sent(self, t_ns: int) -> int:
        self.send_ns.append(t_ns)
        self.done_ns.append(-1)
        self.status.append(STATUS_NO_ANSWER)
        return len(self.send_ns) - 1

    def answered(self, index: int, t_ns: int, status: int) -> None:
        self.done_ns[index] = t_ns
        self.status[index] = status
        if self.drain is not None:
            self.drain.answered(index)

    def start_drain(self, spec: LoadSpec) -> Drain:
        """Sending has ended: start timing the wait for the answers still out."""
        self.drain = Drain(self, spec.drain_timeout_s, spec.drain_max_s, spec.slo_s)
        return self.drain

    def save(self, path: str, anchor_wall_ns: int, anchor_perf_ns: int, client_index: int) -> None:
        """Write the raw data (also after an interrupt, when the last query may be half-recorded)."""
        n = min(len(self.send_ns), len(self.done_ns), len(self.status))
        send = np.frombuffer(self.send_ns, dtype=np.int64)[:n]
        scheduled = np.frombuffer(self.scheduled_ns, dtype=np.int64)[:n] if len(self.scheduled_ns) else send
        n = min(n, len(scheduled))
        tmp = f"{path}.tmp.npz"
        try:
            self._savez(tmp, send, scheduled, n, anchor_wall_ns, anchor_perf_ns, client_index)
            os.replace(tmp, path)
        except BaseException:  # a full disk: leave no half-written file behind
            Path(tmp).unlink(missing_ok=True)
            raise

    def _savez(self, tmp: str, send, scheduled, n: int, anchor_wall_ns: int, anchor_perf_ns: int,
               client_index: int) -> None:
        np.savez(
            tmp,
            send_ns=send[:n],
            scheduled_ns=scheduled[:n],
            done_ns=np.frombuffer(self.done_ns, dtype=np.int64)[:n],
            status=np.frombuffer(self.status, dtype=np.int8)[:n],
            anchor_wall_ns=np.int64(anchor_wall_ns),
            anchor_perf_ns=np.int64(anchor_perf_ns),
            client_index=np.int64(client_index),
            stopped_ns=np.int64(self.stopped_ns),
            drain_ns=np.int64(self.drain_ns),
            drain_silence_limit_ns=np.int64(self.drain_silence_limit_ns),
            stable_windows=np.asarray(self.stability.windows if self.stability else [], dtype=float).reshape(-1, 2),
            cpu_window_ns=np.asarray(self.cpu_window_ns, dtype=np.int64),
        )


class CpuWindow:
    """The CPU time this process used over the measurement window, read by a thread that sleeps
    until each end of the window: ``readings()`` is ``[perf_ns, cpu_ns]`` at the window's start and
    at its end (or when the client finished, if sooner), or fewer when the window never began.
    CPU time is the whole process's (every thread: ZeroMQ's I/O thread too; in a Ray actor, the
    worker's), so ``cpu / perf`` over the two readings is the share of one core the generator used."""

    def __init__(self, begin_wall: float, duration_s: float) -> None:
        import threading

        self._readings: list[int] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(begin_wall, duration_s), daemon=True,
                                        name="cpu-window")
        self._thread.start()

    def _run(self, begin_wall: float, duration_s: float) -> None:
        for t in (begin_wall, begin_wall + duration_s):
            if self._done.wait(max(t - time.time(), 0)):
                return
            self._readings += [time.perf_counter_ns(), time.process_time_ns()]

    def readings(self) -> list[int]:
        """Stop the thread; the readings, closed now if the window began but has not ended."""
        self._done.set()
        self._thread.join(timeout=1.0)
        readings = list(self._readings)
        if len(readings) == 2:
            readings += [time.perf_counter_ns(), time.process_time_ns()]
        return readings[:4]


def wait_for_go(spec_path: Path) -> float:
    """Say we are ready (a ``.ready`` file beside the spec), then read the start time from stdin."""
    Path(f"{spec_path}.ready").touch()
    line = sys.stdin.readline()
    if not line.strip():
        raise SystemExit("no start time on stdin: the driver went away")
    return float(line)


def _wait_until(wall_time: float) -> None:
    delay = wall_time - time.time()
    if delay > 0:
        time.sleep(delay)


def _monitor(spec: LoadSpec, rec: Recorder, begin_ns: int, start_array: array):
    if spec.stable_window_s is None:
        return None
    from .stability import StabilityMonitor

    rec.stability = StabilityMonitor(begin_ns + int(spec.warmup_s * 1e9), spec.stable_window_s,
                                     spec.stable_tolerance, start_array, rec.done_ns, rec.status)
    return rec.stability


def binary_client_socket(address: str, recv_timeout_ms: int = -1):
    """A DEALER connected to a binary query port, with unbounded queues and no linger."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.RCVTIMEO, recv_timeout_ms)
    sock.connect(f"tcp://{address}")
    return sock


MAX_REQUESTS_PER_MESSAGE = 1024  # a message of requests stays well inside the frontend's 4,096 inputs


def run_binary(spec: LoadSpec, pool: list[bytes], input_code: int, rec: Recorder, flags: int = 0) -> None:
    import zmq

    from ..common.zmq_asyncio import COPY_BELOW_BYTES
    from ..protocol.binary import FLAG_MANY, FLAG_PACKED, REQUEST_HEADER

    sock = binary_client_socket(spec.address, recv_timeout_ms=100)
    app = spec.app.encode()
    pack = REQUEST_HEADER.pack
    n_pool = len(pool)
    copy = [len(item) < COPY_BELOW_BYTES for item in pool]  # as the frontend sends: small frames copied
    clock = time.perf_counter_ns
    zsend = sock.send
    zrecv = sock.recv
    sndmore = int(zmq.SNDMORE)
    send_ns, done_ns, status = rec.send_ns, rec.done_ns, rec.status
    Again = zmq.Again
    flags |= FLAG_PACKED | FLAG_MANY

    def send(k: int) -> None:
        while k > MAX_REQUESTS_PER_MESSAGE:
            send_message(MAX_REQUESTS_PER_MESSAGE)
            k -= MAX_REQUESTS_PER_MESSAGE
        send_message(k)

    def send_message(k: int) -> None:
        # The hot loop: request ids are indices; one message of k requests (FLAG_MANY), a header
        # and one input frame each, timed when its last frame goes (ZeroMQ sends nothing before).
        first = len(send_ns)
        zsend(pack(first, input_code, flags) + app, sndmore)
        last = first + k - 1
        for i in range(first, last):
            j = i % n_pool
            zsend(pool[j], sndmore, copy=copy[j])
        t = clock()
        send_ns.extend([t] * k)
        done_ns.extend([-1] * k)
        status.extend([STATUS_NO_ANSWER] * k)
        j = last % n_pool
        zsend(pool[j], 0, copy=copy[j])

    record = packed_recorder(rec)

    def receive() -> int:  # one message: every answer the frontend had for us (FLAG_PACKED)
        return record(zrecv(0, copy=False).buffer, clock())

    outstanding = _binary_closed_loop(spec, rec, send, receive, zmq.Again)
    drain = rec.start_drain(spec)
    while outstanding > 0 and not drain.over(clock()):
        try:
            outstanding -= receive()  # the drain hears of each answer through the recorder
        except Again:
            continue
    drain.finish()
    sock.close(0)


def _binary_closed_loop(spec: LoadSpec, rec: Recorder, send: Callable[[int], None], receive: Callable[[], int],
                        again: type[Exception]) -> int:
    """Keep ``spec.concurrency`` queries outstanding until the window (or --stable) ends; return how
    many are still out. ``receive`` records the answers of one message and returns how many;
    ``send(k)`` sends k new queries."""
    clock = time.perf_counter_ns
    _wait_until(spec.start_at_wall)
    begin = clock()
    end_ns = begin + int((spec.warmup_s + spec.duration_s) * 1e9)
    monitor = _monitor(spec, rec, begin, rec.send_ns)
    send(spec.concurrency)
    outstanding = spec.concurrency
    while True:
        try:
            got = receive()
        except again:
            if clock() >= end_ns:
                break
            continue
        outstanding -= got
        now = clock()
        if monitor is not None and now < end_ns and monitor.stable(now):
            end_ns = rec.stopped_ns = now
        if now < end_ns and got:
            send(got)
            outstanding += got
        elif outstanding == 0:
            break
    return outstanding


def run_binary_open(spec: LoadSpec, pool: list[bytes], input_code: int, rec: Recorder, flags: int = 0) -> None:
    """Open loop: send each query at its scheduled time whatever the answers do.

    Latency is later taken from the scheduled time, so a stalled server cannot hide its stall by
    slowing the sender (coordinated omission). The sender blocks in ``poll`` until 2 ms before the
    next query is due and waits the rest actively, so that it sends on time: above about 500 q/s
    per client it keeps one core busy, as MLPerf LoadGen's issuer does.
    """
    import zmq

    from ..protocol.binary import FLAG_PACKED, REQUEST_HEADER
    from .arrivals import schedule_ns

    assert spec.rate_qps
    offsets = schedule_ns(spec.rate_qps, spec.warmup_s + spec.duration_s, spec.arrival,
                          seed=spec.seed * 1000 + spec.client_index).tolist()
    sock = binary_client_socket(spec.address)
    app = spec.app.encode()
    pack = REQUEST_HEADER.pack
    n_pool = len(pool)
    clock = time.perf_counter_ns
    zsend, zpoll, sndmore = sock.send, sock.poll, int(zmq.SNDMORE)
    sched, send_ns, done_ns, status = rec.scheduled_ns, rec.send_ns, rec.done_ns, rec.status
    flags |= FLAG_PACKED
    receive_ready = _ready_receiver(sock, rec)

    _wait_until(spec.start_at_wall)
    start = clock()
    total = len(offsets)
    monitor = _monitor(spec, rec, start, sched)
    i = answered = 0
    while i < total:
        now = clock()
        if monitor is not None and monitor.stable(now):
            rec.stopped_ns = now
            total = i
            break
        due = start + offsets[i]
        if due <= now:
            zsend(pack(i, input_code, flags) + app, sndmore)
            sched.append(due)
            send_ns.append(clock())
            done_ns.append(-1)
            status.append(STATUS_NO_ANSWER)
            zsend(pool[i % n_pool], 0, copy=False)
            i += 1
            continue
        answered += receive_ready()
        wait_ns = due - clock()
        if wait_ns > 3_000_000:  # far off: block in poll, waking 2 ms early
            if zpoll(int(wait_ns / 1e6) - 2):
                answered += receive_ready()
        # else: wait actively (receive_ready above). Sleeps and poll timeouts overshoot by up to
        # several ms at p99 on VMs, so the last 2 ms before a send are waited out on the CPU.
    drain = rec.start_drain(spec)
    while answered < total and not drain.over(clock()):
        if zpoll(50):
            answered += receive_ready()
    drain.finish()
    sock.close(0)


async def _closed_loop(spec: LoadSpec, rec: Recorder, query: Callable[[int], Awaitable[tuple[int, int]]]) -> None:
    """``spec.concurrency`` workers, each sending query ``i`` as soon as its last one was answered,
    from the start time until warm-up plus duration have passed. ``query(i)`` returns
    (answer time in perf_counter ns, status)."""
    clock = time.perf_counter_ns
    await asyncio.sleep(max(spec.start_at_wall - time.time(), 0))
    end_ns = clock() + int((spec.warmup_s + spec.duration_s) * 1e9)

    async def worker() -> None:
        while clock() < end_ns:
            i = rec.sent(clock())
            rec.answered(i, *await query(i))

    tasks = [asyncio.create_task(worker()) for _ in range(spec.concurrency)]
    await asyncio.wait(tasks, timeout=max(end_ns - clock(), 0) / 1e9)
    drain = rec.start_drain(spec)
    pending = [t for t in tasks if not t.done()]
    while pending and not drain.over(clock()):
        _, still = await asyncio.wait(pending, timeout=0.05)
        pending = list(still)
    for task in pending:  # their queries stay unanswered
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    drain.finish()


async def _open_loop(spec: LoadSpec, rec: Recorder, query: Callable[[int], Awaitable[tuple[int, int]]]) -> None:
    """Open loop over an asyncio transport: query ``i`` goes out at its scheduled time, whatever the
    answers do (each in its own task; latency counts from the schedule, as over the binary path)."""
    from .arrivals import schedule_ns

    clock = time.perf_counter_ns
    offsets = schedule_ns(spec.rate_qps, spec.warmup_s + spec.duration_s, spec.arrival,
                          seed=spec.seed * 1000 + spec.client_index).tolist()
    await asyncio.sleep(max(spec.start_at_wall - time.time(), 0))
    start = clock()
    tasks: set[asyncio.Task] = set()

    async def one(i: int) -> None:
        rec.answered(i, *await query(i))

    for offset in offsets:
        due = start + offset
        if due > clock():
            await asyncio.sleep((due - clock()) / 1e9)
        rec.scheduled_ns.append(due)
        task = asyncio.create_task(one(rec.sent(clock())))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    drain = rec.start_drain(spec)
    while tasks and not drain.over(clock()):
        await asyncio.wait(set(tasks), timeout=0.05)
    for task in list(tasks):  # their queries stay unanswered
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    drain.finish()


async def _run_rest(spec: LoadSpec, bodies: list[bytes], rec: Recorder) -> None:
    """Clipper's REST API over keep-alive connections (see load.http_client): one per outstanding
    query in closed loop, as many as the offered rate needs in open loop."""
    from .http_client import HttpError, HttpPool, post_request

    host, _, port = spec.address.rpartition(":")
    requests = [post_request(host, int(port), f"/{spec.app}/predict", body) for body in bodies]
    clock = time.perf_counter_ns
    n_pool = len(requests)
    pool = HttpPool(host, int(port), limit=0 if spec.rate_qps else spec.concurrency)

    async def query(i: int) -> tuple[int, int]:
        try:
            status, body = await pool.request(requests[i % n_pool])
        except (HttpError, OSError):
            return clock(), STATUS_ERROR
        t = clock()
        if status != 200:
            return t, STATUS_ERROR
        if b"true" not in body:  # "default": false (or absent): skip parsing the JSON
            return t, STATUS_OK
        try:
            return t, STATUS_DEFAULT if json.loads(body).get("default", False) else STATUS_OK
        except (ValueError, AttributeError):
            return t, STATUS_ERROR

    try:
        await (_open_loop if spec.rate_qps else _closed_loop)(spec, rec, query)
    finally:
        pool.close()


def _serve_handle(spec: LoadSpec, first_input: Any, cleanup: contextlib.ExitStack) -> Any:
    """The deployment's handle, its router warmed by one call, before the start: a client process
    joins the cluster as a driver here (and leaves it on cleanup); a client that is a Ray actor is
    in it already. Left to the start, this took seconds that the window then lacked."""
    from ..common.ray_env import use_loopback_ray_env

    use_loopback_ray_env()
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=spec.address, logging_level="WARNING", log_to_driver=False)
        cleanup.callback(ray.shutdown)
    handle = serve.get_app_handle(spec.app)
    handle.remote(first_input).result()
    return handle


async def _run_ray_handle(spec: LoadSpec, handle: Any, arrays: list, rec: Recorder) -> None:
    """Closed or open loop through a Ray Serve deployment handle."""
    clock = time.perf_counter_ns
    n_pool = len(arrays)

    async def query(i: int) -> tuple[int, int]:
        try:
            await handle.remote(arrays[i % n_pool])
            return clock(), STATUS_OK
        except Exception:  # noqa: BLE001 - any failure of the call is this query's error
            return clock(), STATUS_ERROR

    await (_open_loop if spec.rate_qps else _closed_loop)(spec, rec, query)


def _ready_receiver(sock: Any, rec: Recorder) -> Callable[[], int]:
    """A function that records every answer already waiting on ``sock`` and returns how many."""
    import zmq

    zrecv, noblock, again = sock.recv, int(zmq.NOBLOCK), zmq.Again
    clock = time.perf_counter_ns
    record = packed_recorder(rec)

    def receive_ready() -> int:
        got = 0
        while True:
            try:
                message = zrecv(noblock, copy=False)
            except again:
                return got
            got += record(message.buffer, clock())

    return receive_ready


def packed_recorder(rec: Recorder) -> Callable[[memoryview, int], int]:
    """A function that records, as answered at ``t_ns``, every packed response in one message from
    the frontend and returns how many it held: the client's lean reading of
    :func:`~clipper_bench.protocol.binary.decode_packed_responses`'s layout, which takes only each
    request id and first status and builds nothing per answer (it runs once per answer received)."""
    from ..protocol.binary import RESPONSE_HEADER

    unpack, size = RESPONSE_HEADER.unpack_from, RESPONSE_HEADER.size
    lengths = struct.Struct("<I").unpack_from
    done_ns, status = rec.done_ns, rec.status

    def record(message: memoryview, t_ns: int) -> int:
        pos, got, end = 0, 0, len(message)
        while pos < end:
            i, _query_id, _packed, n = unpack(message, pos)
            done_ns[i] = t_ns
            status[i] = message[pos + size]  # the first output's status stands for the request
            pos += size + n  # past the statuses, at the outputs' lengths
            outputs = 0
            for k in range(n):
                outputs += lengths(message, pos + 4 * k)[0]
            pos += 4 * n + outputs
            if rec.drain is not None:
                rec.drain.answered(i)
            got += 1
        return got

    return record


def run(spec: LoadSpec, wait_for_start: Callable[[], float] | None = None) -> None:
    """Generate the load a spec asks for and write the raw data file.

    With ``wait_for_start``, call it once everything that takes time (the input pool, its
    shared-memory region) is ready: it signals readiness and returns the start time (wall clock;
    see ``wait_for_go`` for a client process, ``ray_clients`` for a Ray actor).
    """
    import dataclasses

    from ..containers.models import get_model_spec

    model = get_model_spec(spec.model_name)
    arrays = model.make_inputs(spec.pool_size, seed=spec.seed + spec.client_index)
    with contextlib.ExitStack() as cleanup:
        generate = _prepare(spec, model, arrays, cleanup)
        if wait_for_start is not None:
            spec = dataclasses.replace(spec, start_at_wall=wait_for_start())
        rec = Recorder()
        anchor_wall_ns, anchor_perf_ns = time.time_ns(), time.perf_counter_ns()
        cpu = CpuWindow(spec.start_at_wall + spec.warmup_s, spec.duration_s)
        try:
            generate(spec, rec)
        finally:  # also when stopped (SIGTERM): what was measured is kept
            rec.cpu_window_ns = cpu.readings()
            rec.save(spec.out_path, anchor_wall_ns, anchor_perf_ns, spec.client_index)


def _prepare(spec: LoadSpec, model, arrays, cleanup: contextlib.ExitStack) -> Callable[[LoadSpec, Recorder], None]:
    """The payloads of ``spec.transport`` made from the input pool, and the loop that sends them.

    ``shm`` writes the whole pool once into a shared-memory region (removed by ``cleanup``) and
    sends descriptors of it over the binary path."""
    if Transport(spec.transport).uses_binary_port:
        pool, flags = [a.tobytes() for a in arrays], 0
        if spec.transport == Transport.SHM:
            from ..protocol.shm import FLAG_SHM, ShmPool, region_name

            region = ShmPool(region_name(os.getpid(), spec.client_index), pool)
            cleanup.callback(region.close)
            pool, flags = region.descriptors, FLAG_SHM
        send = run_binary_open if spec.rate_qps else run_binary
        code = int(model.input_type)
        return lambda s, rec: send(s, pool, code, rec, flags)
    if spec.transport == Transport.REST:
        from ..protocol.types import InputType

        if model.input_type is InputType.BYTES:
            bodies = [json.dumps({"input": base64.b64encode(a.tobytes()).decode()}).encode() for a in arrays]
        elif model.input_type is InputType.STRINGS:
            bodies = [json.dumps({"input": a.tobytes().decode()}).encode() for a in arrays]
        else:
            bodies = [json.dumps({"input": a.tolist()}).encode() for a in arrays]
        return lambda s, rec: asyncio.run(_run_rest(s, bodies, rec))
    if spec.transport == Transport.RAY_HANDLE:
        handle = _serve_handle(spec, arrays[0], cleanup)
        return lambda s, rec: asyncio.run(_run_ray_handle(s, handle, arrays, rec))
    raise ValueError(f"unknown transport {spec.transport!r}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = LoadSpec.load(Path(argv[0]))
    if spec.cpus:
        from ..common.pinning import pin_current_process

        pin_current_process(spec.cpus)
    from ..common.processes import become_child

    become_child(f"clipper-bench loadgen client#{spec.client_index} {spec.transport} -> {spec.app}")
    signal.signal(signal.SIGTERM, _stop)
    try:
        run(spec, lambda: wait_for_go(Path(argv[0])))
    except KeyboardInterrupt:
        return 130
    return 0


def _stop(signum: int, frame: object) -> None:
    """SIGTERM (the driver was interrupted): stop sending; ``run`` still saves what was measured."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
