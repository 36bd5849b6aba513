"""Clipper's input types: codes, names and the numpy dtype each one travels as."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class InputType(IntEnum):
    """Clipper 0.4.1 input type codes (the integer sent on the wire)."""

    BYTES = 0
    INTS = 1
    FLOATS = 2
    DOUBLES = 3
    STRINGS = 4

    @property
    def api_name(self) -> str:
        """The name Clipper's management API uses for this type."""
        return _API_NAMES[self]

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of one element on the wire (little-endian)."""
        return _DTYPES[self]


_API_NAMES = {
    InputType.BYTES: "bytes",
    InputType.INTS: "ints",
    InputType.FLOATS: "floats",
    InputType.DOUBLES: "doubles",
    InputType.STRINGS: "strings",
}

_DTYPES = {
    InputType.BYTES: np.dtype(np.uint8),
    InputType.INTS: np.dtype("<i4"),
    InputType.FLOATS: np.dtype("<f4"),
    InputType.DOUBLES: np.dtype("<f8"),
    InputType.STRINGS: np.dtype(np.uint8),
}

_ALIASES = {
    "b": InputType.BYTES, "byte": InputType.BYTES, "bytes": InputType.BYTES,
    "i": InputType.INTS, "int": InputType.INTS, "ints": InputType.INTS,
    "integer": InputType.INTS, "integers": InputType.INTS,
    "f": InputType.FLOATS, "float": InputType.FLOATS, "floats": InputType.FLOATS,
    "d": InputType.DOUBLES, "double": InputType.DOUBLES, "doubles": InputType.DOUBLES,
    "s": InputType.STRINGS, "str": InputType.STRINGS, "string": InputType.STRINGS,
    "strings": InputType.STRINGS,
}


def parse_input_type(value: str | int) -> InputType:
    """Turn a name (``"doubles"``, ``"integers"``...) or a code (``3``, ``"3"``) into an InputType.

    Raises ValueError naming the accepted values when ``value`` is none of them.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return InputType(value)
        except ValueError:
            pass
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _ALIASES:
            return _ALIASES[text]
        if text.isdigit() and int(text) in InputType._value2member_map_:
            return InputType(int(text))
    raise ValueError(
        f"unknown input type {value!r}: use one of bytes, ints, floats, doubles, strings"
    )
