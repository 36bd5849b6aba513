"""Clipper 0.4.1's model-container RPC protocol (RPC version 3), frame by frame.

The container is a ZeroMQ DEALER, the frontend a ROUTER. Every message starts with an empty
delimiter frame; on the ROUTER side the peer's routing identity comes before it. All integers are
little-endian.

Container -> frontend::

    heartbeat:  "" | u32 2
    metadata:   "" | u32 0 | model_name | model_version | input_type code (decimal string) | u32 3
    response:   "" | u32 1 | msg_id (4 bytes, echoed) | u64 header_len | header | out_0 .. out_n-1
                header = u64 num_outputs, then u64 byte length of each output; outputs are UTF-8

Frontend -> container::

    heartbeat:  "" | u32 3 | u32 2 | u32 heartbeat_type (0 keepalive, 1 send your metadata)
    content:    "" | u32 3 | u32 1 | u32 msg_id | u32 request_type (0 predict, 1 feedback,
                   2 predict_shm: clipper-bench's own, each input a shared-memory descriptor, see
                   clipper_bench.protocol.shm)
                   | u64 header_bytes | header | input_0 .. input_n-1
                header = u64[input_type, num_inputs, byte size of each input]

Decoders take the frames after the routing identity (starting at the delimiter) and raise
:class:`RpcError` for anything that does not follow this layout.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from .types import InputType

RPC_VERSION = 3

Buffer = bytes | memoryview


class MessageType(IntEnum):
    NEW_CONTAINER = 0
    CONTAINER_CONTENT = 1
    HEARTBEAT = 2


class HeartbeatType(IntEnum):
    KEEPALIVE = 0
    REQUEST_CONTAINER_METADATA = 1


class RequestType(IntEnum):
    PREDICT = 0
    FEEDBACK = 1
    PREDICT_SHM = 2  # clipper-bench's own: inputs are shared-memory descriptors (protocol.shm)


class RpcError(ValueError):
    """A frame sequence that does not follow Clipper's RPC protocol."""


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# Pre-packed frames used on every message.
_VERSION_FRAME = _U32.pack(RPC_VERSION)
_CONTENT_FRAME = _U32.pack(MessageType.CONTAINER_CONTENT)
_HEARTBEAT_FRAME = _U32.pack(MessageType.HEARTBEAT)
_REQUEST_FRAMES = {t: _U32.pack(t) for t in RequestType}
_CONTENT = int(MessageType.CONTAINER_CONTENT)


@dataclass(frozen=True)
class Heartbeat:
    """A heartbeat; ``heartbeat_type`` is only set on frontend -> container heartbeats."""

    heartbeat_type: HeartbeatType | None = None


@dataclass(frozen=True)
class ContainerMetadata:
    """What a container says about itself when the frontend asks."""

    model_name: str
    model_version: str
    input_type: InputType
    rpc_version: int = RPC_VERSION


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """A batch of inputs sent to a container."""

    msg_id: int
    input_type: InputType
    inputs: Sequence[Buffer]
    request_type: RequestType = RequestType.PREDICT


@dataclass(slots=True)
class PredictResponse:
    """A container's answer: one UTF-8 output per input, in order."""

    msg_id: int
    outputs: Sequence[Buffer]


# ----------------------------------------------------------------------------- helpers


def _u32(frame: Buffer, what: str) -> int:
    if len(frame) != 4:
        raise RpcError(f"{what}: expected a 4-byte u32 frame, got {len(frame)} bytes")
    return _U32.unpack(frame)[0]


def _u64(frame: Buffer, what: str) -> int:
    if len(frame) != 8:
        raise RpcError(f"{what}: expected an 8-byte u64 frame, got {len(frame)} bytes")
    return _U64.unpack(frame)[0]


def _u64_array(frame: Buffer, declared_len: int, what: str) -> tuple[int, ...]:
    if declared_len != len(frame):
        raise RpcError(f"{what}: header length says {declared_len} bytes, frame has {len(frame)}")
    if len(frame) % 8:
        raise RpcError(f"{what}: header of {len(frame)} bytes is not a whole number of u64s")
    return struct.unpack(f"<{len(frame) // 8}Q", frame)


def _text(frame: Buffer, what: str) -> str:
    try:
        return bytes(frame).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RpcError(f"{what}: not valid UTF-8") from exc


def _check_frames(what: str, item: str, count: int, sizes: Sequence[int], frames: Sequence[Buffer]) -> None:
    """The header's count and byte sizes must match the frames that follow it."""
    if count != len(sizes) or count != len(frames):
        raise RpcError(
            f"{what}: header announces {count} {item}s with {len(sizes)} "
            f"{'lengths' if item == 'output' else 'sizes'}, message carries {len(frames)}"
        )
    for i, (size, frame) in enumerate(zip(sizes, frames, strict=True)):
        if size != len(frame):
            raise RpcError(f"{what}: {item} {i} is {len(frame)} bytes, header says {size}")


def _delimited(frames: Sequence[Buffer]) -> Sequence[Buffer]:
    if not frames:
        raise RpcError("empty message")
    if len(frames[0]) != 0:
        raise RpcError("message does not start with the empty delimiter frame")
    return frames[1:]


# ----------------------------------------------------------------------------- container -> frontend


def encode_container_heartbeat() -> list[bytes]:
    """Frames a container sends as a heartbeat (after which the frontend may ask for metadata)."""
    return [b"", _HEARTBEAT_FRAME]


def encode_metadata(meta: ContainerMetadata) -> list[bytes]:
    """Frames a container sends to announce its model."""
    return [
        b"",
        _U32.pack(MessageType.NEW_CONTAINER),
        meta.model_name.encode(),
        meta.model_version.encode(),
        str(int(meta.input_type)).encode(),
        _U32.pack(meta.rpc_version),
    ]


def encode_response(msg_id: int, outputs: Sequence[Buffer]) -> list[Buffer]:
    """Frames a container sends with its outputs for request ``msg_id``."""
    header = struct.pack(f"<{len(outputs) + 1}Q", len(outputs), *(len(o) for o in outputs))
    return [b"", _CONTENT_FRAME, _U32.pack(msg_id), _U64.pack(len(header)), header, *outputs]


def decode_from_container(
    frames: Sequence[Buffer],
) -> Heartbeat | ContainerMetadata | PredictResponse:
    """Decode a message a container sent (frames from the delimiter on)."""
    body = _delimited(frames)
    if not body:
        raise RpcError("message has no type frame")
    msg_type = _u32(body[0], "message type")
    if msg_type == _CONTENT:
        if len(body) < 4:
            raise RpcError(f"response: expected at least 4 frames after the delimiter, got {len(body)}")
        msg_id = _u32(body[1], "response msg_id")
        header = _u64_array(body[3], _u64(body[2], "response header length"), "response header")
        if not header:
            raise RpcError("response: empty header")
        outputs = body[4:]
        _check_frames("response", "output", header[0], header[1:], outputs)
        return PredictResponse(msg_id, outputs)
    if msg_type == MessageType.HEARTBEAT:
        if len(body) != 1:
            raise RpcError(f"heartbeat: expected 1 frame after the delimiter, got {len(body)}")
        return Heartbeat()
    if msg_type == MessageType.NEW_CONTAINER:
        if len(body) != 5:
            raise RpcError(f"metadata: expected 5 frames after the delimiter, got {len(body)}")
        name = _text(body[1], "metadata model name")
        version = _text(body[2], "metadata model version")
        code = _text(body[3], "metadata input type")
        try:
            input_type = InputType(int(code))
        except ValueError as exc:
            raise RpcError(f"metadata: unknown input type code {code!r}") from exc
        rpc_version = _u32(body[4], "metadata rpc version")
        if rpc_version != RPC_VERSION:
            raise RpcError(f"metadata: RPC version {rpc_version}, this frontend speaks {RPC_VERSION}")
        return ContainerMetadata(name, version, input_type, rpc_version)
    raise RpcError(f"unknown message type {msg_type}")


# ----------------------------------------------------------------------------- frontend -> container


def encode_frontend_heartbeat(heartbeat_type: HeartbeatType) -> list[bytes]:
    """Frames the frontend sends as a heartbeat (after the routing identity)."""
    return [b"", _VERSION_FRAME, _HEARTBEAT_FRAME, _U32.pack(heartbeat_type)]


def encode_request(msg_id: int, input_type: InputType, inputs: Sequence[Buffer],
                   request_type: RequestType = RequestType.PREDICT) -> list[Buffer]:
    """Frames the frontend sends to ask for predictions on ``inputs`` (after the routing identity)."""
    header = struct.pack(
        f"<{len(inputs) + 2}Q", int(input_type), len(inputs), *(len(x) for x in inputs)
    )
    return [
        b"",
        _VERSION_FRAME,
        _CONTENT_FRAME,
        _U32.pack(msg_id),
        _REQUEST_FRAMES[request_type],
        _U64.pack(len(header)),
        header,
        *inputs,
    ]


def decode_from_frontend(frames: Sequence[Buffer]) -> Heartbeat | PredictRequest:
    """Decode a message the frontend sent to a container (frames from the delimiter on)."""
    body = _delimited(frames)
    if len(body) < 3:
        raise RpcError(f"expected at least 3 frames after the delimiter, got {len(body)}")
    rpc_version = _u32(body[0], "rpc version")
    if rpc_version != RPC_VERSION:
        raise RpcError(f"RPC version {rpc_version}, this container speaks {RPC_VERSION}")
    msg_type = _u32(body[1], "message type")
    if msg_type == MessageType.HEARTBEAT:
        if len(body) != 3:
            raise RpcError(f"heartbeat: expected 3 frames after the delimiter, got {len(body)}")
        try:
            return Heartbeat(HeartbeatType(_u32(body[2], "heartbeat type")))
        except ValueError as exc:
            raise RpcError(f"heartbeat: {exc}") from exc
    if msg_type == MessageType.CONTAINER_CONTENT:
        if len(body) < 6:
            raise RpcError(f"request: expected at least 6 frames after the delimiter, got {len(body)}")
        msg_id = _u32(body[2], "request msg_id")
        try:
            request_type = RequestType(_u32(body[3], "request type"))
        except ValueError as exc:
            raise RpcError(f"request: {exc}") from exc
        header = _u64_array(body[5], _u64(body[4], "request header length"), "request header")
        if len(header) < 2:
            raise RpcError("request: header needs input type and input count")
        try:
            input_type = InputType(header[0])
        except ValueError as exc:
            raise RpcError(f"request: unknown input type code {header[0]}") from exc
        inputs = body[6:]
        _check_frames("request", "input", header[1], header[2:], inputs)
        return PredictRequest(msg_id, input_type, inputs, request_type)
    raise RpcError(f"unknown message type {msg_type}")
