"""Turning query inputs (JSON values or raw binary frames) into the bytes a container receives, the
checks every input passes on either path (size, finite numbers), and parsing a JSON request body
with its nesting bounded."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..protocol.types import InputType

Buffer = bytes | memoryview


MAX_JSON_DEPTH = 256  # the bodies the frontend takes nest 5 levels at most; far below the interpreter's recursion limit
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEP = np.zeros(256, np.int32)  # what each bracket does to the depth
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


class InputError(ValueError):
    """An input that does not match the application's input type."""


class JsonTooDeep(ValueError):
    """A JSON body nested deeper than the frontend parses."""


def json_depth(body: bytes, at_most: int = MAX_JSON_DEPTH) -> int:
    """How deep the arrays and objects of JSON text ``body`` nest (brackets inside strings do not
    count); any result above ``at_most`` may stop at ``at_most + 1``. Works on invalid JSON too,
    without recursion, in C-speed passes: the caller may parse ``body`` safely when it is small."""
    if body.count(b"[") + body.count(b"{") <= at_most:
        return min(at_most, body.count(b"[") + body.count(b"{"))
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    if b'"' in body:
        body = _STRING.sub(b"", body)
    brackets = body.translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), 1 << 20):
        chunk = np.frombuffer(brackets, np.uint8, count=min(1 << 20, len(brackets) - start), offset=start)
        steps = _STEP[chunk].cumsum() + depth
        deepest = max(deepest, int(steps.max()))
        if deepest > at_most:
            return at_most + 1
        depth = int(steps[-1])
    return deepest


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON request body; JsonTooDeep when it nests deeper than ``max_depth``, ValueError
    when it is not JSON."""
    if json_depth(body, max_depth) > max_depth:
        raise JsonTooDeep(f"nested too deep (more than {max_depth} levels of arrays and objects)")
    try:
        return json.loads(body)
    except RecursionError:  # a bound above the interpreter's: still a clear answer
        raise JsonTooDeep("nested too deep") from None


def encode_json_input(value: Any, input_type: InputType) -> bytes:
    """Encode one JSON input (a list of numbers, a base64 string or a string) for the wire."""
    if input_type is InputType.BYTES:
        if not isinstance(value, str):
            raise InputError("a bytes input must be a base64-encoded string")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"a bytes input must be valid base64: {exc}") from exc
        if not data:
            raise InputError("input is empty")
        return data
    if input_type is InputType.STRINGS:
        if not isinstance(value, str):
            raise InputError("a strings input must be a JSON string")
        if not value:
            raise InputError("input is empty")
        return value.encode("utf-8")
    if not isinstance(value, list) or not value:
        raise InputError(f"a {input_type.api_name} input must be a non-empty JSON list of numbers")
    kinds = set(map(type, value))  # bool is its own type: not a number here
    if not kinds <= {int, float}:
        raise InputError(f"a {input_type.api_name} input must hold numbers only")
    if input_type is InputType.INTS and float in kinds:
        raise InputError("an ints input must hold integers only")
    try:
        with np.errstate(over="raise", invalid="raise"):
            array = np.asarray(value, dtype=np.float64 if input_type is not InputType.INTS else np.int64)
            if input_type is InputType.INTS:
                if array.min() < -(2**31) or array.max() >= 2**31:
                    raise InputError("an ints input must fit in 32 bits")
            if input_type is not InputType.INTS and not np.isfinite(array).all():
                raise InputError(_NOT_FINITE.format(input_type.api_name))
            return array.astype(input_type.dtype).tobytes()
    except (OverflowError, FloatingPointError) as exc:
        raise InputError(f"input does not fit the {input_type.api_name} type: {exc}") from exc


_NOT_FINITE = "a {} input must hold finite numbers (no NaN or Infinity)"


# Inputs up to this size are checked element by element in Python (about 1 us for 8 doubles,
# against 5 us for numpy's call overhead); larger ones with numpy.
_SMALL_INPUT_BYTES = 512
_NATIVE_FORMAT = {InputType.FLOATS: "f", InputType.DOUBLES: "d"} if sys.byteorder == "little" else {}


def check_finite(data: Buffer, input_type: InputType) -> None:
    """Check that a raw floats or doubles input holds no NaN or infinity (as JSON inputs must not);
    other types pass. ``data`` must be a whole number of elements (see check_binary_input)."""
    if input_type not in (InputType.FLOATS, InputType.DOUBLES):
        return
    fmt = _NATIVE_FORMAT.get(input_type)
    if fmt is not None and len(data) <= _SMALL_INPUT_BYTES:
        finite = all(map(math.isfinite, memoryview(data).cast("B").cast(fmt)))
    else:
        finite = bool(np.isfinite(np.frombuffer(data, dtype=input_type.dtype)).all())
    if not finite:
        raise InputError(_NOT_FINITE.format(input_type.api_name))


def check_all_finite(items: Sequence[Buffer], input_type: InputType) -> None:
    """check_finite on every item, the items read together (one numpy call for a message of many
    small inputs); the error does not say which item: check them one by one to find it."""
    if len(items) == 1:
        check_finite(items[0], input_type)
    elif input_type in (InputType.FLOATS, InputType.DOUBLES):
        check_finite(b"".join(items), input_type)


def check_binary_input(data: Buffer, input_type: InputType) -> None:
    """Check that a raw input frame can be a whole number of ``input_type`` elements."""
    size = len(data)
    if size == 0:
        raise InputError("input is empty")
    itemsize = input_type.dtype.itemsize
    if size % itemsize:
        raise InputError(
            f"input of {size} bytes is not a whole number of {input_type.api_name} "
            f"({itemsize} bytes each)"
        )


def check_input_size(data: Buffer, input_type: InputType, expected_elements: int | None) -> None:
    """Check that an encoded input holds the ``expected_elements`` its model declared (None: any)."""
    if expected_elements is None:
        return
    itemsize = input_type.dtype.itemsize
    got = len(data) // itemsize
    if got != expected_elements:
        unit = "bytes" if input_type is InputType.BYTES else input_type.api_name
        raise InputError(f"input has {got} {unit}; the model takes {expected_elements} {unit} per input")
