"""clipper-bench's binary query path: raw tensors over ZeroMQ instead of JSON over HTTP.

A 224x224x3 float32 image is 602 KB raw but about 2 MB as JSON text, and parsing that JSON costs
the frontend far more than the model's share of the CPU. The binary path carries the same queries as
``POST /<app>/predict`` with the bytes as they are.

Transport: the client is a ZeroMQ DEALER connected to the frontend's ROUTER on the binary query port
(default 1339). Messages carry no delimiter frame. All integers are little-endian.

Request, client -> frontend::

    frame 0  header: u64 request_id (chosen by the client, echoed back)
                     u32 input_type (Clipper's code: 0 bytes, 1 ints, 2 floats, 3 doubles, 4 strings)
                     u32 flags, any of: 1 (FLAG_SHM) each input frame is a shared-memory
                     descriptor (see clipper_bench.protocol.shm); 2 (FLAG_PACKED) answers packed,
                     below; 4 (FLAG_MANY) each input frame is a request of its own, below
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

Packed responses (``FLAG_PACKED``, 2, in a request's flags): the client takes its answers packed,
and the frontend sends each client, once per turn of its loop, ONE message of one frame holding
every response ready for it, back to back; each is::

    header: u64 request_id, u64 query_id, u32 reserved (1: packed), u32 num_outputs
    then one status byte per output, one u32 length per output, and the outputs' bytes in order

A batch of 16 finished queries of one client then costs the frontend two ZeroMQ sends instead of
48, and the client one receive instead of 48. A client that sets the flag must set it on every
request (answers to its requests come only packed).

Many requests in one message (``FLAG_MANY``, 4): the same frames, but each input frame is a
request of its own with one input, their request_ids request_id, request_id + 1, ... in frame
order, each answered on its own. A closed-loop client that gets 16 answers in one message sends its
next 16 queries in one message too: one receive for the frontend instead of 16.

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


FLAG_PACKED = 2  # the client takes its answers packed (see the module docstring)
FLAG_MANY = 4  # each input frame is a request of its own (see the module docstring)
KNOWN_FLAGS = 1 | FLAG_PACKED | FLAG_MANY  # FLAG_SHM (protocol.shm), FLAG_PACKED and FLAG_MANY
PACKED = 1  # the reserved field of a packed response


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
        raise BinaryProtocolError(f"unknown flags {flags:#x}; only 1 (shared-memory descriptors), 2 "
                                  "(packed answers) and 4 (many requests) are defined")
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


def peek_flags(frames: Sequence[Buffer]) -> int:
    """The flags of a possibly malformed request (FLAG_PACKED, FLAG_MANY, ...), 0 when unreadable."""
    if frames and len(frames[0]) >= REQUEST_HEADER.size:
        return REQUEST_HEADER.unpack_from(bytes(frames[0]))[2]
    return 0


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


def encode_packed_response(request_id: int, query_id: int, statuses: bytes, outputs: Sequence[Buffer]) -> bytes:
    """One packed response (see the module docstring); a message holds one or more back to back."""
    n = len(outputs)
    lengths = struct.pack(f"<{n}I", *map(len, outputs))
    return b"".join((RESPONSE_HEADER.pack(request_id, query_id, PACKED, n), statuses, lengths, *outputs))


_PACKED_ONE = struct.Struct("<QQIIBI")  # a packed response of one output: header, status, length


def encode_packed_one(request_id: int, query_id: int, status: int, output: Buffer) -> bytes:
    """encode_packed_response for one output (the usual answer), in one struct call."""
    return _PACKED_ONE.pack(request_id, query_id, PACKED, 1, status, len(output)) + output


def decode_packed_responses(message: Buffer) -> list[BinaryResponse]:
    """Every response in a packed message (what a client that set FLAG_PACKED receives)."""
    data, pos, out = memoryview(message), 0, []
    while pos < len(data):
        if len(data) - pos < RESPONSE_HEADER.size:
            raise BinaryProtocolError(f"packed response cut off at byte {pos}: no whole header")
        request_id, query_id, reserved, n = RESPONSE_HEADER.unpack_from(data, pos)
        if reserved != PACKED:
            raise BinaryProtocolError(f"packed response at byte {pos} is marked {reserved}, not {PACKED}")
        pos += RESPONSE_HEADER.size
        statuses = bytes(data[pos:pos + n])
        lengths = struct.unpack_from(f"<{n}I", data, pos + n) if len(data) >= pos + 5 * n else None
        if lengths is None or len(statuses) != n:
            raise BinaryProtocolError(f"packed response {request_id} announces {n} outputs and is cut off")
        pos += 5 * n
        outputs = []
        for size in lengths:
            outputs.append(data[pos:pos + size])
            pos += size
        if pos > len(data):
            raise BinaryProtocolError(f"packed response {request_id}'s outputs run past the message")
        out.append(BinaryResponse(request_id, query_id, statuses, outputs))
    return out
