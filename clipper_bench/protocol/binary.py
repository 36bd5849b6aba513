"""clipper-bench's binary query path: raw tensors over ZeroMQ instead of JSON over HTTP.

A 224x224x3 float32 image is 602 KB raw but about 2 MB as JSON text, and parsing that JSON costs
the frontend far more than the model's share of the CPU. The binary path carries the same queries as
``POST /<app>/predict`` with the bytes as they are.

Transport: the client is a ZeroMQ DEALER connected to the frontend's ROUTER on the binary query port
(default 1339). Messages carry no delimiter frame. All integers are little-endian.

Request, client -> frontend::

    frame 0  header: u64 request_id (chosen by the client, echoed back)
                     u32 input_type (Clipper's code: 0 bytes, 1 ints, 2 floats, 3 doubles, 4 strings)
                     u32 flags: 0, or 1 (FLAG_SHM) when each input frame is a shared-memory
                     descriptor (see clipper_bench.protocol.shm)
             then the application name, UTF-8, to the end of the frame
    frame 1+ one frame per input: its elements as little-endian int32 / float32 / float64, raw bytes,
             or UTF-8 text. Several input frames make an input batch, like ``input_batch``.

Response, frontend -> client::

    frame 0  header: u64 request_id, u64 query_id of the first input, u32 reserved (0),
                     u32 num_outputs
             then one status byte per output: 0 ok, 1 default (the app's SLO passed and the output
             is the app's default output), 2 error (the output is the error message)
    frame 1+ one UTF-8 output per input, in order

Few frames per message matter: every frame is a separate send and receive on both sides.

A request the frontend cannot take (unknown app, wrong input type, bad size) is answered with every
status 2 and the error message as each output; a request too malformed to read a request_id from is
answered with request_id 0.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import IntEnum
from typing import NamedTuple

from .types import InputType

Buffer = bytes | memoryview

REQUEST_HEADER = struct.Struct("<QII")
RESPONSE_HEADER = struct.Struct("<QQII")


class Status(IntEnum):
    OK = 0
    DEFAULT = 1
    ERROR = 2


class BinaryProtocolError(ValueError):
    """A binary-path message that does not follow the layout above."""


class BinaryRequest(NamedTuple):
    request_id: int
    input_type: InputType
    app: str
    inputs: Sequence[Buffer]
    flags: int = 0


class BinaryResponse(NamedTuple):
    request_id: int
    query_id: int
    statuses: bytes
    outputs: Sequence[Buffer]


_INPUT_TYPES = {int(t): t for t in InputType}


KNOWN_FLAGS = 1  # FLAG_SHM


def encode_request(request_id: int, app: str, input_type: InputType, inputs: Sequence[Buffer],
                   flags: int = 0) -> list[Buffer]:
    """Frames of a request (what the DEALER sends)."""
    return [REQUEST_HEADER.pack(request_id, int(input_type), flags) + app.encode(), *inputs]


def decode_request(frames: Sequence[Buffer], max_inputs: int = 4096) -> BinaryRequest:
    """Decode a request's frames (without the ROUTER's identity frame)."""
    if len(frames) < 2:
        raise BinaryProtocolError(
            f"request needs a header frame and at least one input; got {len(frames)} frames"
        )
    head = bytes(frames[0])
    if len(head) < REQUEST_HEADER.size + 1:
        raise BinaryProtocolError(
            f"request header must be {REQUEST_HEADER.size} bytes followed by the app name, "
            f"got {len(head)} bytes"
        )
    request_id, code, flags = REQUEST_HEADER.unpack_from(head)
    if flags & ~KNOWN_FLAGS:
        raise BinaryProtocolError(f"unknown flags {flags:#x}; only 1 (shared-memory descriptors) is defined")
    input_type = _INPUT_TYPES.get(code)
    if input_type is None:
        raise BinaryProtocolError(f"unknown input type code {code}")
    try:
        app = head[REQUEST_HEADER.size:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BinaryProtocolError("application name is not valid UTF-8") from exc
    inputs = frames[1:]
    if len(inputs) > max_inputs:
        raise BinaryProtocolError(f"{len(inputs)} inputs in one request; the limit is {max_inputs}")
    return BinaryRequest(request_id, input_type, app, inputs, flags)


def peek_request_id(frames: Sequence[Buffer]) -> int:
    """The request_id of a possibly malformed request, or 0 when none can be read."""
    if frames and len(frames[0]) >= 8:
        return struct.unpack_from("<Q", bytes(frames[0]))[0]
    return 0


def encode_response(request_id: int, query_id: int, statuses: bytes, outputs: Sequence[Buffer]) -> list[Buffer]:
    """Frames of a response (what the ROUTER sends after the identity frame)."""
    return [RESPONSE_HEADER.pack(request_id, query_id, 0, len(outputs)) + statuses, *outputs]


def decode_response(frames: Sequence[Buffer]) -> BinaryResponse:
    """Decode a response's frames (what the DEALER receives)."""
    if not frames or len(frames[0]) < RESPONSE_HEADER.size:
        raise BinaryProtocolError(f"response needs a header of at least {RESPONSE_HEADER.size} bytes")
    head = bytes(frames[0])
    request_id, query_id, _reserved, n = RESPONSE_HEADER.unpack_from(head)
    statuses = head[RESPONSE_HEADER.size:]
    outputs = frames[1:]
    if len(statuses) != n or len(outputs) != n:
        raise BinaryProtocolError(
            f"response announces {n} outputs, carries {len(statuses)} statuses and {len(outputs)} outputs"
        )
    return BinaryResponse(request_id, query_id, statuses, outputs)
