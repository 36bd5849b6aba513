"""The frontend's binary query path over ZeroMQ (see :mod:`clipper_bench.protocol.binary`), with
inputs inline or as shared-memory descriptors. A mixin of :class:`~.frontend.Frontend`, which
provides the registry, the binary socket and its reader, ``_submit``, ``_record`` and ``_check_sizes``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import zmq

from ..common.zmq_asyncio import send_frames
from ..protocol import binary, shm
from ..protocol.binary import Buffer, Status
from .dispatcher import Query
from .inputs import InputError, check_binary_input, check_finite
from .registry import Application

log = logging.getLogger("clipper_bench.frontend")


class BinaryQueries:
    """Requests on the binary port, answered when every input of a request is answered."""

    def _check_descriptors(self, app: Application, descriptors: Sequence[Buffer]) -> None:
        """Raise ShmError unless every descriptor names an existing region, lies inside it and has
        the size the model declared."""
        model = self.registry.model_for_app(app)
        elements = model.input_elements if model is not None else None
        expected = None if elements is None else elements * app.input_type.dtype.itemsize
        for descriptor in descriptors:
            shm.check_descriptor(descriptor, expected)

    def _checked_request(self, body: Sequence[Buffer]) -> tuple[binary.BinaryRequest, Application]:
        """The request and its application, every input checked; raises BinaryProtocolError,
        InputError or ShmError naming the problem."""
        req = binary.decode_request(body, self.settings.max_inputs_per_request)
        app = self.registry.apps.get(req.app)
        if app is None:
            raise InputError(f"No registered application with name {req.app}")
        if req.input_type != app.input_type:
            raise InputError(f"application {app.name} takes {app.input_type.api_name}, "
                             f"request carries {req.input_type.api_name}")
        if req.flags & shm.FLAG_SHM:
            self._check_descriptors(app, req.inputs)
            return req, app
        for item in req.inputs:
            check_binary_input(item, app.input_type)
        self._check_sizes(app, req.inputs)
        for item in req.inputs:  # as the REST path refuses them
            check_finite(item, app.input_type)
        return req, app

    def _on_binary(self, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        body = frames[1:]  # zmq.Frame objects: sized buffers, passed on without copying
        try:
            req, app = self._checked_request(body)
        except (binary.BinaryProtocolError, InputError, shm.ShmError) as exc:
            n = max(len(body) - 1, 1)
            self._reply_binary(identity, binary.peek_request_id(body), 0, bytes([Status.ERROR]) * n,
                               [str(exc).encode()] * n, binary.peek_packed(body))
            return
        in_shm = bool(req.flags & shm.FLAG_SHM)

        request_id = req.request_id
        packed = bool(req.flags & binary.FLAG_PACKED)
        if len(req.inputs) == 1:

            def on_single(query: Query, status: Status, output: Buffer) -> None:
                self._record(app, query, status)
                self._reply_binary(identity, request_id, query.query_id, bytes([status]), [output], packed)

            self._submit(app, req.inputs[0], on_single, in_shm)
            return

        n = len(req.inputs)
        statuses = bytearray(n)
        outputs: list[Buffer] = [b""] * n
        remaining = [n]
        first_id = self._next_query_id + 1

        def make_callback(index: int) -> Callable[[Query, Status, Buffer], None]:
            def on_item(query: Query, status: Status, output: Buffer) -> None:
                self._record(app, query, status)
                statuses[index] = status
                outputs[index] = output
                remaining[0] -= 1
                if remaining[0] == 0:
                    self._reply_binary(identity, request_id, first_id, bytes(statuses), outputs, packed)

            return on_item

        for i, item in enumerate(req.inputs):
            self._submit(app, item, make_callback(i), in_shm)

    def _reply_binary(
        self, identity: bytes, request_id: int, query_id: int, statuses: bytes, outputs: Sequence[Buffer],
        packed: bool = False,
    ) -> None:
        if packed:  # gathered per client and sent once this turn of the loop ends
            pending = self._packed_replies.get(identity)
            if pending is None:
                pending = self._packed_replies[identity] = []
                if len(self._packed_replies) == 1:
                    asyncio.get_running_loop().call_soon(self._send_packed)
            pending.append(binary.encode_packed_response(request_id, query_id, statuses, outputs))
            return
        self._send_to_client(identity, binary.encode_response(request_id, query_id, statuses, outputs))
        self._binary_reader.recheck()

    def _send_packed(self) -> None:
        """One message per client of every packed answer gathered for it (see protocol.binary)."""
        replies, self._packed_replies = self._packed_replies, {}
        for identity, parts in replies.items():
            self._send_to_client(identity, [b"".join(parts)])
        self._binary_reader.recheck()

    def _send_to_client(self, identity: bytes, frames: list[Buffer]) -> None:
        try:
            send_frames(self._binary, [identity, *frames])
        except zmq.ZMQError as exc:  # the client went away; nothing is waiting
            log.debug("binary reply to %r dropped: %s", identity, exc)

