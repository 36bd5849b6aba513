"""One model container: connects to a Clipper frontend's RPC port and answers batches.

It speaks Clipper 0.4.1's container protocol (see :mod:`clipper_bench.protocol.rpc`): it heartbeats
on each 5 s poll timeout, sends its metadata when the frontend asks for it, answers each batch, and
reconnects when it has heard nothing for 30 s. The same code runs as a local replica and inside a
Docker image under real Clipper.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from ..common.zmq_asyncio import send_frames
from ..protocol import rpc
from ..protocol.shm import ShmError, ShmReader
from ..protocol.types import InputType
from .models.base import Model

log = logging.getLogger("clipper_bench.container")

POLL_TIMEOUT_MS = 5000
STOP_CHECK_MS = 250
SILENCE_RECONNECT_S = 30.0
PIPELINE_DEPTH = 2  # batches submitted and not yet answered, for models that overlap batches


@dataclass(frozen=True)
class ContainerSettings:
    """Clipper's container environment."""

    model_name: str
    model_version: str = "1"
    clipper_ip: str = "127.0.0.1"
    clipper_port: int = 7000
    input_type: InputType = InputType.DOUBLES


def decode_inputs(request: rpc.PredictRequest, regions: ShmReader | None = None) -> list[np.ndarray]:
    """The request's inputs as 1-D arrays of their wire dtype (strings stay UTF-8 bytes). A
    ``PREDICT_SHM`` request's inputs are read in place from the shared-memory regions they name."""
    dtype = request.input_type.dtype
    if request.request_type == rpc.RequestType.PREDICT_SHM:
        if regions is None:
            raise ShmError("this container takes no shared-memory inputs")
        return [np.frombuffer(regions.read(buf), dtype=dtype) for buf in request.inputs]
    return [np.frombuffer(buf, dtype=dtype) for buf in request.inputs]


def recv_message(sock: zmq.Socket) -> list[zmq.Frame]:
    """All frames of the next message (``recv_multipart`` without a getsockopt per frame)."""
    frame = sock.recv(0, copy=False)
    frames = [frame]
    while frame.more:
        frame = sock.recv(0, copy=False)
        frames.append(frame)
    return frames


class Container:
    """The RPC loop around one loaded model."""

    def __init__(self, model: Model, settings: ContainerSettings) -> None:
        self.model = model
        self.settings = settings
        self._ctx = zmq.Context.instance()
        self._stopping = False
        self.batches = 0
        self.regions = ShmReader()  # inputs of --transport shm, mapped read-only
        self.pending: deque[tuple[int, Any, int]] = deque()  # (msg_id, handle, batch size) submitted, unanswered

    def _answer(self, sock: zmq.Socket, msg_id: int, handle: Any, batch_len: int) -> None:
        with _model_errors_stop_the_replica(batch_len):
            outputs = self.model.finish(handle)
        send_frames(sock, rpc.encode_response(msg_id, outputs))
        self.batches += 1

    def _connect(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, STOP_CHECK_MS)
        # A recognisable routing identity lets the local engine's manager name this replica.
        # (In a Docker container every replica is pid 1: the manager then names it by the container's name.)
        identity = os.environ.get("CLIPPER_BENCH_IDENTITY") or f"cb-{os.getpid()}"
        sock.setsockopt(zmq.IDENTITY, identity.encode())
        sock.connect(f"tcp://{self.settings.clipper_ip}:{self.settings.clipper_port}")
        sock.send_multipart(rpc.encode_container_heartbeat())
        return sock

    def stop(self) -> None:
        """Make :meth:`serve_forever` return at its next check (safe in a signal handler)."""
        self._stopping = True

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called (SIGTERM and SIGINT call it)."""
        s = self.settings
        metadata = rpc.encode_metadata(rpc.ContainerMetadata(s.model_name, s.model_version, s.input_type))
        sock = self._connect()
        last_heard = last_beat = time.monotonic()
        log.info("serving %s:%s (%s) to %s:%d", s.model_name, s.model_version,
                 s.input_type.api_name, s.clipper_ip, s.clipper_port)
        try:
            while not self._stopping:
                # A model that overlaps batches gets the next one before the last is answered,
                # when it has already arrived and the last is not done; otherwise the oldest
                # batch is answered first.
                if self.pending and (len(self.pending) >= PIPELINE_DEPTH or self.model.ready(self.pending[0][1])
                                     or not sock.poll(0)):
                    self._answer(sock, *self.pending.popleft())
                    continue
                # Receives time out every 250 ms so that a stop request is seen promptly;
                # heartbeat every 5 s of silence.
                try:
                    frames = recv_message(sock)
                except zmq.Again:
                    now = time.monotonic()
                    if now - last_heard > SILENCE_RECONNECT_S:
                        log.warning("nothing heard for %.0f s: reconnecting", SILENCE_RECONNECT_S)
                        sock.close(0)
                        sock = self._connect()
                        last_heard = last_beat = now
                    elif now - last_beat >= POLL_TIMEOUT_MS / 1000:
                        sock.send_multipart(rpc.encode_container_heartbeat())
                        last_beat = now
                    continue
                last_heard = time.monotonic()
                try:
                    message = rpc.decode_from_frontend(frames)
                except rpc.RpcError as exc:
                    log.warning("dropped a malformed message: %s", exc)
                    continue
                if isinstance(message, rpc.Heartbeat):
                    if message.heartbeat_type == rpc.HeartbeatType.REQUEST_CONTAINER_METADATA:
                        sock.send_multipart(metadata)
                    continue
                if message.request_type == rpc.RequestType.FEEDBACK:
                    sock.send_multipart(rpc.encode_response(message.msg_id, [b"ACK"]))
                    continue
                with _model_errors_stop_the_replica(len(message.inputs)):
                    handle = self.model.submit(decode_inputs(message, self.regions))
                if self.model.overlaps_batches:
                    self.pending.append((message.msg_id, handle, len(message.inputs)))
                else:
                    self._answer(sock, message.msg_id, handle, len(message.inputs))
        finally:
            sock.close(0)
            self.regions.close()


@contextlib.contextmanager
def _model_errors_stop_the_replica(batch_len: int) -> Iterator[None]:
    """As in Clipper, a model that raises takes its container down: the frontend answers the
    batch's queries with an error and serves on with the other replicas."""
    try:
        yield
    except Exception:
        log.exception("the model raised on a batch of %d; this replica stops", batch_len)
        raise


def install_stop_handlers(container: Container) -> None:
    """Let SIGTERM and SIGINT end the loop between batches."""

    def handler(signum: int, frame: object) -> None:
        container.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
