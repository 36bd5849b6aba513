"""Property tests: the wire decoders take any bounded input and either decode it or refuse it with
their own error, never crash; and what the encoders write, the decoders read back unchanged."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from clipper_bench.protocol import binary, rpc
from clipper_bench.protocol.types import InputType

frame = st.binary(max_size=64)
frames = st.lists(frame, max_size=12)
# frames that look like the real thing often enough to reach the deep branches
u32 = st.integers(0, 2**32 - 1).map(lambda x: struct.pack("<I", x))
small_u32 = st.integers(0, 8).map(lambda x: struct.pack("<I", x))
u64 = st.integers(0, 64).map(lambda x: struct.pack("<Q", x))
plausible = st.lists(st.one_of(frame, u32, small_u32, u64, st.just(b"")), max_size=12)
payloads = st.lists(st.binary(max_size=256), min_size=1, max_size=16)
input_types = st.sampled_from(list(InputType))


@settings(max_examples=400, deadline=None)
@given(st.one_of(frames, plausible))
def test_container_messages_decode_or_raise_rpc_error(fs):
    try:
        rpc.decode_from_container(fs)
    except rpc.RpcError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.one_of(frames, plausible))
def test_frontend_messages_decode_or_raise_rpc_error(fs):
    try:
        rpc.decode_from_frontend(fs)
    except rpc.RpcError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.one_of(frames, plausible))
def test_binary_requests_decode_or_raise_protocol_error(fs):
    try:
        binary.decode_request(fs)
    except binary.BinaryProtocolError:
        pass
    try:
        binary.decode_response(fs)
    except binary.BinaryProtocolError:
        pass


@given(st.integers(0, 2**32 - 1), input_types, payloads)
def test_predict_requests_round_trip(msg_id, input_type, inputs):
    decoded = rpc.decode_from_frontend(rpc.encode_request(msg_id, input_type, inputs))
    assert (decoded.msg_id, decoded.input_type) == (msg_id, input_type)
    assert [bytes(x) for x in decoded.inputs] == inputs


@given(st.integers(0, 2**32 - 1), payloads)
def test_predict_responses_round_trip(msg_id, outputs):
    decoded = rpc.decode_from_container(rpc.encode_response(msg_id, outputs))
    assert decoded.msg_id == msg_id and [bytes(x) for x in decoded.outputs] == outputs


@given(st.integers(0, 2**64 - 1), st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s), input_types,
       payloads)
def test_binary_requests_round_trip(request_id, app, input_type, inputs):
    decoded = binary.decode_request(binary.encode_request(request_id, app, input_type, inputs))
    assert (decoded.request_id, decoded.app, decoded.input_type) == (request_id, app, input_type)
    assert [bytes(x) for x in decoded.inputs] == inputs
