"""The frontend's HTTP query path: Clipper 0.4.1's ``POST /<app>/predict`` (``input`` or
``input_batch``, JSON in and out). A mixin of :class:`~.frontend.Frontend`, which provides the
registry, ``_submit``, ``_record``, ``_check_sizes`` and ``_declared_elements``.

A body is bounded before it is read (see :meth:`RestQueries._body_limit`): an application whose
model declared its input size takes at most ``max_inputs_per_request`` inputs of that size, as
JSON, with room for whitespace; one whose model did not takes ``max_json_bytes``. A body up to
:data:`INLINE_PARSE_BYTES` is parsed at once (depth bounded, see :func:`~.inputs.parse_json`); a
larger one must be ``{"input": X}`` or ``{"input_batch": [X, ...]}`` and is parsed one input at a
time, each refused once it runs past the JSON one input of the declared size can take, and long
lists of numbers a slice of :data:`YIELD_EVERY_BYTES` at a time, with the event loop running in
between: no body holds the loop for more than a few milliseconds."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from ..protocol.binary import Buffer, Status
from ..protocol.types import InputType
from .dispatcher import Query
from .inputs import InputError, JsonTooDeep, encode_json_input, parse_json
from .registry import Application

NO_MODEL_EXPLANATION = "No connected models found for query"
SLO_EXPLANATION = "Failed to retrieve a prediction response within the specified latency SLO"


def output_json(output: Buffer) -> Any:
    """Clipper embeds an output that parses as JSON as JSON, and any other output as a string."""
    try:
        return orjson.loads(output)
    except orjson.JSONDecodeError:
        pass
    text = bytes(output).decode("utf-8", "replace")
    try:  # what orjson refuses and the standard library takes (NaN, integers over 64 bits)
        return json.loads(text)
    except ValueError:
        return text


def _decode_error(app_name: str, exc: Exception) -> bytes:
    """The 400 body for a predict body that could not be taken (as Clipper words it)."""
    if isinstance(exc, JsonTooDeep | RecursionError):
        return _error_body("Error parsing JSON", f"Body is not valid JSON: {exc}")
    if isinstance(exc, InputError):
        return _error_body("Error parsing JSON", f"Invalid input for application {app_name}: {exc}")
    cause = str(exc) if isinstance(exc, _BodyError) else f"Body is not valid JSON: {exc}"
    return _error_body("Error parsing JSON", cause)


class _BodyError(ValueError):
    """A predict body that is JSON but not Clipper's shape; the message is the cause returned."""


INLINE_PARSE_BYTES = 1 << 20  # larger bodies are parsed one input at a time
YIELD_EVERY_BYTES = 128 * 1024  # the loop runs after about this much of a large body is parsed (~5 ms)
OTHER_BODY_BYTES = 64 * 1024  # any other request on the query port
# JSON text per input element at most (a double: "-2.2250738585072014e-308, "; a string's byte: a
# \u escape), doubled below for pretty-printed whitespace
JSON_BYTES_PER_ELEMENT = {InputType.BYTES: 2, InputType.INTS: 13, InputType.FLOATS: 26, InputType.DOUBLES: 26,
                          InputType.STRINGS: 6}
_WS = r"[ \t\n\r]*"  # a large body is searched as bytes, and only its pieces are decoded
_HEAD = re.compile(rf'{_WS}\{{{_WS}"(input|input_batch)"{_WS}:{_WS}'.encode())
_NEXT = re.compile(rf"{_WS}([,\]])".encode())
_TAIL = re.compile(rf"{_WS}\}}{_WS}\Z".encode())
_SPACE = re.compile(_WS.encode())
_DECODER = json.JSONDecoder()


def _json_kind(input_type: InputType) -> str:
    if input_type is InputType.BYTES:
        return "a bytes input must be a base64-encoded string"
    if input_type is InputType.STRINGS:
        return "a strings input must be a JSON string"
    return f"a {input_type.api_name} input must be a non-empty JSON list of numbers"


def _input_end(text: bytes, start: int, input_type: InputType, limit: int) -> int:
    """Where the JSON input at ``start`` ends: a list of numbers at its first ``]``, a string at
    its closing quote; InputError for anything else or one longer than ``limit`` characters."""
    stop = min(len(text), start + limit + 1)
    if text.startswith(b"[", start) and input_type not in (InputType.BYTES, InputType.STRINGS):
        end = text.find(b"]", start, stop)
        if end >= 0 and text.find(b"[", start + 1, end) >= 0:
            raise InputError(f"a {input_type.api_name} input must hold numbers only")
        if end >= 0:
            return end + 1
    elif text.startswith(b'"', start) and input_type in (InputType.BYTES, InputType.STRINGS):
        pos = start + 1
        while (end := text.find(b'"', pos, stop)) >= 0:
            run = text[pos:end]
            if (len(run) - len(run.rstrip(b"\\"))) % 2 == 0:  # not escaped
                return end + 1
            pos = end + 1
    else:
        raise InputError(_json_kind(input_type))
    if stop - start > limit:
        raise InputError(f"input is longer than {limit} bytes of JSON, more than the model's input size can take")
    raise ValueError(f"unterminated input at character {start}")


async def _parse_input(text: bytes, start: int, end: int) -> Any:
    """The JSON input ``text[start:end]`` (as :func:`_input_end` found it). A list of numbers over
    YIELD_EVERY_BYTES is parsed a slice at a time, cut at commas (numbers hold none), letting the
    loop run between slices."""
    if end - start <= YIELD_EVERY_BYTES or not text.startswith(b"[", start):
        whole = text[start:end].decode()
        value, used = _DECODER.raw_decode(whole)
        if used != len(whole):
            raise ValueError(f"unexpected text in the input at character {start}")
        return value
    values: list = []
    pos, last = start + 1, end - 1  # inside the brackets
    while pos < last:
        cut = last if last - pos <= YIELD_EVERY_BYTES else text.rfind(b",", pos, pos + YIELD_EVERY_BYTES)
        if cut <= pos:
            cut = last if (comma := text.find(b",", pos, last)) < 0 else comma
        piece = text[pos:cut].decode()
        if not piece.strip(" \t\n\r"):  # "[1,,2]" or "[1,]": each slice must hold a value
            raise ValueError(f"expected a value at character {pos}")
        part, used = _DECODER.raw_decode(f"[{piece}]")
        if used != len(piece) + 2:
            raise ValueError(f"unexpected text in the input at character {pos}")
        values.extend(part)
        pos = cut + 1
        await asyncio.sleep(0)
    if pos == last:  # the last slice ended at a comma just before "]": "[1,]"
        raise ValueError(f"expected a value at character {last}")
    return values


Reply = Callable[[int, bytes], None]  # (HTTP status, JSON body)


def _error_body(message: str, cause: str) -> bytes:
    return orjson.dumps({"error": message, "cause": cause})


class RestQueries:
    """``POST /<app>/predict``: :meth:`start_predict` answers a body through a callback, so both
    aiohttp's handler and the query port's fast path (:mod:`.fast_http`) serve it."""

    async def _handle_predict(self, request: web.Request) -> web.Response:
        body = await request.read()
        future = asyncio.get_running_loop().create_future()

        def reply(status: int, data: bytes) -> None:
            if not future.done():
                future.set_result((status, data))

        self.start_predict(request.match_info["app"], body, reply)
        status, data = await future
        return web.Response(body=data, status=status, content_type="application/json", charset="utf-8")

    def start_predict(self, app_name: str, body: bytes, reply: Reply) -> None:
        """Decode a predict ``body`` for ``app_name``, submit its inputs, and call ``reply`` once:
        at once with a 400 for a body it cannot take, else when every input is answered."""
        app = self.registry.apps.get(app_name)
        if app is None:
            reply(400, _error_body("Error parsing JSON", f"No registered application with name {app_name}"))
            return
        if len(body) > INLINE_PARSE_BYTES:  # parsed a slice at a time, with the loop running between
            task = asyncio.get_running_loop().create_task(self._predict_large(app, body, reply))
            self._rest_tasks.add(task)
            task.add_done_callback(self._rest_tasks.discard)
            return
        try:
            single, payloads = self._decode_body(app, body)
        except (ValueError, RecursionError) as exc:
            reply(400, _decode_error(app_name, exc))
            return
        self._submit_inputs(app, single, payloads, reply)

    async def _predict_large(self, app: Application, body: bytes, reply: Reply) -> None:
        try:
            single, payloads = await self._decode_large(app, body)
        except ValueError as exc:
            reply(400, _decode_error(app.name, exc))
            return
        self._submit_inputs(app, single, payloads, reply)

    def _submit_inputs(self, app: Application, single: bool, payloads: list[bytes], reply: Reply) -> None:
        """Queue every input; when the last is answered, reply with the predictions (or the error)."""
        n = len(payloads)
        answers: list[tuple[int, Status, bytes] | None] = [None] * n
        remaining = [n]

        def on_item(index: int, query: Query, status: Status, output: Buffer) -> None:
            self._record(app, query, status)
            if answers[index] is None:
                answers[index] = (query.query_id, status, bytes(output))
                remaining[0] -= 1
                if remaining[0] == 0:
                    reply(*self._predictions(app, single, answers))

        for i, payload in enumerate(payloads):
            self._submit(app, payload, functools.partial(on_item, i))

    def _predictions(self, app: Application, single: bool, answers: list) -> tuple[int, bytes]:
        """Clipper's response to a predict call: the one prediction, or ``batch_predictions``."""
        predictions = []
        for query_id, status, output in answers:
            if status is Status.ERROR:
                return 500, _error_body("Prediction failed", output.decode("utf-8", "replace"))
            item: dict[str, Any] = {"query_id": query_id, "output": output_json(output),
                                    "default": status is Status.DEFAULT}
            if status is Status.DEFAULT:
                item["default_explanation"] = (
                    NO_MODEL_EXPLANATION if self.registry.model_for_app(app) is None else SLO_EXPLANATION
                )
            predictions.append(item)
        return 200, orjson.dumps(predictions[0] if single else {"batch_predictions": predictions})

    def _json_inputs(self, body: Any) -> tuple[bool, list]:
        """Whether a predict body is a single ``input``, and its inputs; raises _BodyError."""
        if not isinstance(body, dict) or ("input" in body) == ("input_batch" in body):
            raise _BodyError("Body must be an object with exactly one of 'input' or 'input_batch'")
        if "input" in body:
            return True, [body["input"]]
        raw_inputs = body["input_batch"]
        if not isinstance(raw_inputs, list) or not raw_inputs:
            raise _BodyError("'input_batch' must be a non-empty list of inputs")
        if len(raw_inputs) > self.settings.max_inputs_per_request:
            raise _BodyError(f"{len(raw_inputs)} inputs in one request; the limit is "
                             f"{self.settings.max_inputs_per_request}")
        return False, raw_inputs


    def _input_limit(self, app: Application) -> int | None:
        """The most JSON text one input of ``app`` can take (None: its size was not declared)."""
        elements = self._declared_elements(app)
        if elements is None:
            return None
        return 2 * elements * JSON_BYTES_PER_ELEMENT[app.input_type] + 256

    def _body_limit(self, request: web.BaseRequest) -> int:
        """The largest body a request on the query port may have (see the module docstring)."""
        parts = request.path.split("/")
        return self.predict_body_limit(parts[1]) if len(parts) == 3 and parts[2] == "predict" else OTHER_BODY_BYTES

    def predict_body_limit(self, app_name: str) -> int:
        """The largest ``POST /<app_name>/predict`` body the query port takes."""
        app = self.registry.apps.get(app_name)
        if app is None:
            return OTHER_BODY_BYTES
        one = self._input_limit(app)
        if one is None:
            return self.settings.max_json_bytes
        return min(self.settings.max_body_bytes, one * self.settings.max_inputs_per_request + 4096)

    def _decode_body(self, app: Application, body: bytes) -> tuple[bool, list[bytes]]:
        """Whether a predict body (of at most INLINE_PARSE_BYTES) holds a single ``input``, and its
        inputs encoded for the wire and checked; raises InputError, _BodyError, JsonTooDeep or ValueError."""
        single, raw_inputs = self._json_inputs(parse_json(body))
        payloads = [encode_json_input(x, app.input_type) for x in raw_inputs]
        self._check_sizes(app, payloads)
        return single, payloads

    async def _decode_large(self, app: Application, text: bytes) -> tuple[bool, list[bytes]]:
        """:meth:`_decode_body` for a large body, one input at a time (see the module docstring)."""
        head = _HEAD.match(text)
        if head is None:
            raise _BodyError(f"A body over {INLINE_PARSE_BYTES} bytes must be {{\"input\": ...}} or "
                             "{\"input_batch\": [...]} with no other fields")
        single, pos = head.group(1) == b"input", head.end()
        if not single and not (text.startswith(b"[", pos) and not _NEXT.match(text, pos + 1)):
            raise _BodyError("'input_batch' must be a non-empty list of inputs")
        limit = self._input_limit(app) or len(text)
        payloads: list[bytes] = []
        yielded = pos = pos if single else pos + 1
        while True:
            start = _SPACE.match(text, pos).end()
            end = _input_end(text, start, app.input_type, limit)
            value = await _parse_input(text, start, end)
            payloads.append(encode_json_input(value, app.input_type))
            self._check_sizes(app, payloads[-1:])
            if single:
                pos = end
                break
            sep = _NEXT.match(text, end)
            if sep is None:
                raise ValueError(f"expected ',' or ']' at character {end}")
            pos = sep.end()
            if len(payloads) > self.settings.max_inputs_per_request:
                raise _BodyError(f"more than {self.settings.max_inputs_per_request} inputs in one request; "
                                 f"the limit is {self.settings.max_inputs_per_request}")
            if sep.group(1) == b"]":
                break
            if pos - yielded > YIELD_EVERY_BYTES:
                await asyncio.sleep(0)
                yielded = pos
        if not _TAIL.match(text, pos):
            raise _BodyError("A large body must hold nothing after its 'input' or 'input_batch'")
        return single, payloads
