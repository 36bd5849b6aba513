"""Turning query inputs (JSON values or raw binary frames) into the bytes a container receives."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from ..protocol.types import InputType

Buffer = bytes | memoryview


class InputError(ValueError):
    """An input that does not match the application's input type."""


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
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        raise InputError(f"a {input_type.api_name} input must hold numbers only")
    if input_type is InputType.INTS and not all(isinstance(x, int) for x in value):
        raise InputError("an ints input must hold integers only")
    try:
        with np.errstate(over="raise", invalid="raise"):
            array = np.asarray(value, dtype=np.float64 if input_type is not InputType.INTS else np.int64)
            if input_type is InputType.INTS:
                if array.min() < -(2**31) or array.max() >= 2**31:
                    raise InputError("an ints input must fit in 32 bits")
            if input_type is not InputType.INTS and not np.isfinite(array).all():
                raise InputError(f"a {input_type.api_name} input must hold finite numbers (no NaN or Infinity)")
            return array.astype(input_type.dtype).tobytes()
    except (OverflowError, FloatingPointError) as exc:
        raise InputError(f"input does not fit the {input_type.api_name} type: {exc}") from exc


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
