"""The binary query path's wire format."""

import struct

import pytest

from clipper_bench.protocol import binary
from clipper_bench.protocol.types import InputType


def test_request_round_trip_and_layout():
    frames = binary.encode_request(42, "vgg", InputType.FLOATS, [b"\0" * 12, b"\1" * 12])
    assert frames[0] == struct.pack("<QII", 42, 2, 0) + b"vgg"
    req = binary.decode_request(frames)
    assert (req.request_id, req.input_type, req.app) == (42, InputType.FLOATS, "vgg")
    assert list(req.inputs) == [b"\0" * 12, b"\1" * 12]


def test_response_round_trip_and_layout():
    frames = binary.encode_response(42, 1000, bytes([0, 1]), [b"4", b"TIMEOUT"])
    assert frames[0] == struct.pack("<QQII", 42, 1000, 0, 2) + b"\x00\x01"
    resp = binary.decode_response(frames)
    assert resp == binary.BinaryResponse(42, 1000, b"\x00\x01", [b"4", b"TIMEOUT"])


@pytest.mark.parametrize(
    "frames, fragment",
    [
        ([b"short"], "at least one input"),
        ([b"tiny", b"x"], "header must be"),
        ([struct.pack("<QII", 1, 9, 0) + b"app", b"x"], "unknown input type"),
        ([struct.pack("<QII", 1, 3, 0) + b"\xff\xfe", b"x"], "UTF-8"),
    ],
)
def test_bad_requests_are_rejected(frames, fragment):
    with pytest.raises(binary.BinaryProtocolError, match=fragment):
        binary.decode_request(frames)


def test_too_many_inputs_are_rejected():
    frames = binary.encode_request(1, "a", InputType.BYTES, [b"x"] * 5)
    with pytest.raises(binary.BinaryProtocolError, match="limit is 4"):
        binary.decode_request(frames, max_inputs=4)


def test_packed_responses_round_trip_back_to_back_and_refuse_a_cut_message():
    parts = [binary.encode_packed_response(1, 10, b"\x00", [b"7"]),
             binary.encode_packed_response(2, 11, b"\x00\x01", [b"", b"default"]),
             binary.encode_packed_response(3, 13, b"\x02", [b"an error"])]
    message = b"".join(parts)
    got = binary.decode_packed_responses(message)
    assert [(r.request_id, r.query_id, r.statuses, [bytes(o) for o in r.outputs]) for r in got] == [
        (1, 10, b"\x00", [b"7"]), (2, 11, b"\x00\x01", [b"", b"default"]), (3, 13, b"\x02", [b"an error"])]
    for cut in (5, len(parts[0]) + 30, len(message) - 1):
        with pytest.raises(binary.BinaryProtocolError):
            binary.decode_packed_responses(message[:cut])
    request = binary.encode_request(4, "app", InputType.DOUBLES, [b"\0" * 8], binary.FLAG_PACKED)
    assert binary.decode_request(request).flags == binary.FLAG_PACKED
