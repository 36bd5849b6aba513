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
from .inputs import InputError, check_all_finite, check_binary_input
from .registry import Application

log = logging.getLogger("clipper_bench.frontend")

_ERROR = bytes([Status.ERROR])


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

    def _checked_header(self, body: Sequence[Buffer]) -> tuple[binary.BinaryRequest, Application]:
        """The request and its application; raises BinaryProtocolError or InputError naming the
        problem. Its inputs are not checked yet (see _check_inputs)."""
        req = binary.decode_request(body, self.settings.max_inputs_per_request)
        app = self.registry.apps.get(req.app)
        if app is None:
            raise InputError(f"No registered application with name {req.app}")
        if req.input_type != app.input_type:
            raise InputError(f"application {app.name} takes {app.input_type.api_name}, "
                             f"request carries {req.input_type.api_name}")
        return req, app

    def _check_inputs(self, app: Application, flags: int, inputs: Sequence[Buffer]) -> None:
        """Raise InputError or ShmError unless every input (or descriptor) is one the app takes."""
        if flags & shm.FLAG_SHM:
            self._check_descriptors(app, inputs)
            return
        for item in inputs:
            check_binary_input(item, app.input_type)
        self._check_sizes(app, inputs)
        check_all_finite(inputs, app.input_type)  # as the REST path refuses them

    def _on_binary(self, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        body = frames[1:]  # zmq.Frame objects: sized buffers, passed on without copying
        try:
            req, app = self._checked_header(body)
            if not req.flags & binary.FLAG_MANY:
                self._check_inputs(app, req.flags, req.inputs)
        except (binary.BinaryProtocolError, InputError, shm.ShmError) as exc:
            self._refuse_binary(identity, body, str(exc).encode())
            return
        if req.flags & binary.FLAG_MANY:
            self._submit_many(identity, req, app)
        elif len(req.inputs) == 1:
            self._submit_one(identity, req.request_id, app, req.inputs[0], bool(req.flags & binary.FLAG_PACKED),
                             bool(req.flags & shm.FLAG_SHM))
        else:
            self._submit_input_batch(identity, req, app)

    def _refuse_binary(self, identity: bytes, body: Sequence[Buffer], message: bytes) -> None:
        """Answer a request the frontend cannot take: every output an error saying why (each
        request of a FLAG_MANY message answered on its own)."""
        flags, first_id = binary.peek_flags(body), binary.peek_request_id(body)
        n, packed = max(len(body) - 1, 1), bool(flags & binary.FLAG_PACKED)
        if flags & binary.FLAG_MANY:
            for k in range(n):
                self._reply_binary(identity, first_id + k, 0, _ERROR, [message], packed)
        else:
            self._reply_binary(identity, first_id, 0, _ERROR * n, [message] * n, packed)

    def _submit_many(self, identity: bytes, req: binary.BinaryRequest, app: Application) -> None:
        """A FLAG_MANY message: each input its own request, checked and answered on its own."""
        packed, in_shm = bool(req.flags & binary.FLAG_PACKED), bool(req.flags & shm.FLAG_SHM)
        try:
            self._check_inputs(app, req.flags, req.inputs)  # all at once: the usual case
            all_good = True
        except (InputError, shm.ShmError):
            all_good = False
        for k, item in enumerate(req.inputs):
            if not all_good:  # find the ones to refuse, each alone
                try:
                    self._check_inputs(app, req.flags, (item,))
                except (InputError, shm.ShmError) as exc:
                    self._reply_binary(identity, req.request_id + k, 0, _ERROR, [str(exc).encode()], packed)
                    continue
            self._submit_one(identity, req.request_id + k, app, item, packed, in_shm)

    def _submit_one(self, identity: bytes, request_id: int, app: Application, item: Buffer, packed: bool,
                    in_shm: bool) -> None:
        if packed:
            def on_single(query: Query, status: Status, output: Buffer) -> None:
                self._record(app, query, status)
                self._gather_packed(identity, binary.encode_packed_one(request_id, query.query_id, status, output))
        else:
            def on_single(query: Query, status: Status, output: Buffer) -> None:
                self._record(app, query, status)
                self._reply_binary(identity, request_id, query.query_id, bytes([status]), [output])

        self._submit(app, item, on_single, in_shm)

    def _submit_input_batch(self, identity: bytes, req: binary.BinaryRequest, app: Application) -> None:
        """A request of several inputs (an input batch), answered once every input is."""
        n, request_id, packed = len(req.inputs), req.request_id, bool(req.flags & binary.FLAG_PACKED)
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

        in_shm = bool(req.flags & shm.FLAG_SHM)
        for i, item in enumerate(req.inputs):
            self._submit(app, item, make_callback(i), in_shm)

    def _reply_binary(
        self, identity: bytes, request_id: int, query_id: int, statuses: bytes, outputs: Sequence[Buffer],
        packed: bool = False,
    ) -> None:
        if packed:
            self._gather_packed(identity, binary.encode_packed_response(request_id, query_id, statuses, outputs))
            return
        self._send_to_client(identity, binary.encode_response(request_id, query_id, statuses, outputs))
        self._binary_reader.recheck()

    def _gather_packed(self, identity: bytes, answer: bytes) -> None:
        """Keep a packed answer for its client, to go with the others in one message when the read
        of a socket that answered it ends (the frontend's _drain_ended) or, for one answered
        elsewhere (a deadline passing), once this turn of the loop ends (see _send_packed)."""
        pending = self._packed_replies.get(identity)
        if pending is None:
            pending = self._packed_replies[identity] = []
            if len(self._packed_replies) == 1 and not self._draining:
                asyncio.get_running_loop().call_soon(self._send_packed)
        pending.append(answer)

    def _send_packed(self) -> None:
        """One message per client of every packed answer gathered for it (see protocol.binary)."""
        if not self._packed_replies:
            return
        replies, self._packed_replies = self._packed_replies, {}
        for identity, parts in replies.items():
            self._send_to_client(identity, [b"".join(parts)])
        self._binary_reader.recheck()

    def _send_to_client(self, identity: bytes, frames: list[Buffer]) -> None:
        try:
            send_frames(self._binary, [identity, *frames])
        except zmq.ZMQError as exc:  # the client went away; nothing is waiting
            log.debug("binary reply to %r dropped: %s", identity, exc)

