"""Clipper's container RPC frames, byte for byte, both directions."""

import struct

import pytest

from clipper_bench.protocol import rpc
from clipper_bench.protocol.types import InputType, parse_input_type


def u32(x: int) -> bytes:
    return struct.pack("<I", x)


def u64(x: int) -> bytes:
    return struct.pack("<Q", x)


def test_container_heartbeat_is_delimiter_then_type_2():
    assert rpc.encode_container_heartbeat() == [b"", u32(2)]
    assert rpc.decode_from_container([b"", u32(2)]) == rpc.Heartbeat()


def test_metadata_frames_match_clipper():
    meta = rpc.ContainerMetadata("vgg", "3", InputType.FLOATS)
    frames = rpc.encode_metadata(meta)
    assert frames == [b"", u32(0), b"vgg", b"3", b"2", u32(3)]
    assert rpc.decode_from_container(frames) == meta


def test_prediction_response_frames_match_clipper():
    frames = rpc.encode_response(7, [b"0.5", b"[1, 2]"])
    header = u64(2) + u64(3) + u64(6)
    assert frames == [b"", u32(1), u32(7), u64(len(header)), header, b"0.5", b"[1, 2]"]
    decoded = rpc.decode_from_container(frames)
    assert decoded.msg_id == 7 and list(decoded.outputs) == [b"0.5", b"[1, 2]"]


def test_frontend_heartbeat_frames():
    frames = rpc.encode_frontend_heartbeat(rpc.HeartbeatType.REQUEST_CONTAINER_METADATA)
    assert frames == [b"", u32(3), u32(2), u32(1)]
    assert rpc.decode_from_frontend(frames) == rpc.Heartbeat(rpc.HeartbeatType.REQUEST_CONTAINER_METADATA)


def test_predict_request_frames_match_clipper():
    inputs = [struct.pack("<2d", 1.0, 2.0), struct.pack("<1d", 3.0)]
    frames = rpc.encode_request(9, InputType.DOUBLES, inputs)
    header = u64(3) + u64(2) + u64(16) + u64(8)
    assert frames == [b"", u32(3), u32(1), u32(9), u32(0), u64(len(header)), header, *inputs]
    decoded = rpc.decode_from_frontend(frames)
    assert decoded.msg_id == 9
    assert decoded.input_type is InputType.DOUBLES
    assert list(decoded.inputs) == inputs
    assert decoded.request_type is rpc.RequestType.PREDICT


@pytest.mark.parametrize(
    "frames, fragment",
    [
        ([], "empty message"),
        ([b"x", u32(2)], "delimiter"),
        ([b"", b"\x01"], "4-byte"),
        ([b"", u32(9)], "unknown message type"),
        ([b"", u32(0), b"m", b"1", b"2"], "5 frames"),
        ([b"", u32(0), b"m", b"1", b"17", u32(3)], "unknown input type"),
        ([b"", u32(0), b"m", b"1", b"2", u32(2)], "RPC version 2"),
        ([b"", u32(1), u32(1), u64(16), u64(1) + u64(5), b"abc"], "header says 5"),
        ([b"", u32(1), u32(1), u64(16), u64(2) + u64(3), b"abc"], "announces 2 outputs"),
        ([b"", u32(1), u32(1), u64(99), u64(1) + u64(3), b"abc"], "header length says 99"),
    ],
)
def test_malformed_container_messages_are_rejected_with_a_reason(frames, fragment):
    with pytest.raises(rpc.RpcError, match=fragment):
        rpc.decode_from_container(frames)


def test_truncated_request_is_rejected():
    frames = rpc.encode_request(1, InputType.FLOATS, [b"\0" * 8])
    with pytest.raises(rpc.RpcError):
        rpc.decode_from_frontend(frames[:-1])
    with pytest.raises(rpc.RpcError, match="header says"):
        rpc.decode_from_frontend([*frames[:-1], b"\0" * 4])


def test_input_type_names_and_codes():
    assert parse_input_type("integers") is InputType.INTS
    assert parse_input_type("doubles") is InputType.DOUBLES
    assert parse_input_type(0) is InputType.BYTES
    assert parse_input_type("4") is InputType.STRINGS
    with pytest.raises(ValueError, match="use one of"):
        parse_input_type("tensors")
