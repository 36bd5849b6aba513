"""The frontend's HTTP query path: Clipper 0.4.1's ``POST /<app>/predict`` (``input`` or
``input_batch``, JSON in and out). A mixin of :class:`~.frontend.Frontend`, which provides the
registry, ``_submit``, ``_record`` and ``_check_sizes``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ..protocol.binary import Buffer, Status
from .dispatcher import Query
from .inputs import InputError, encode_json_input

NO_MODEL_EXPLANATION = "No connected models found for query"
SLO_EXPLANATION = "Failed to retrieve a prediction response within the specified latency SLO"


def _output_json(output: Buffer) -> Any:
    """Clipper embeds an output that parses as JSON as JSON, and any other output as a string."""
    text = bytes(output).decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _error(message: str, cause: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message, "cause": cause}, status=status)


class _BodyError(ValueError):
    """A predict body that is JSON but not Clipper's shape; the message is the cause returned."""


class RestQueries:
    """``POST /<app>/predict``."""

    async def _handle_predict(self, request: web.Request) -> web.Response:
        app_name = request.match_info["app"]
        app = self.registry.apps.get(app_name)
        if app is None:
            return _error("Error parsing JSON", f"No registered application with name {app_name}")
        try:
            single, raw_inputs = self._json_inputs(await request.json())
            payloads = [encode_json_input(x, app.input_type) for x in raw_inputs]
            self._check_sizes(app, payloads)
        except RecursionError:
            return _error("Error parsing JSON", "Body is not valid JSON: nested too deep")
        except InputError as exc:
            return _error("Error parsing JSON", f"Invalid input for application {app_name}: {exc}")
        except ValueError as exc:
            cause = str(exc) if isinstance(exc, _BodyError) else f"Body is not valid JSON: {exc}"
            return _error("Error parsing JSON", cause)

        loop = asyncio.get_running_loop()
        futures = []
        for payload in payloads:
            future = loop.create_future()

            def on_done(query: Query, status: Status, output: Buffer, future=future) -> None:
                self._record(app, query, status)
                if not future.done():
                    future.set_result((query.query_id, status, bytes(output)))

            self._submit(app, payload, on_done)
            futures.append(future)
        predictions = []
        for query_id, status, output in [await f for f in futures]:
            if status is Status.ERROR:
                return _error("Prediction failed", output.decode("utf-8", "replace"), status=500)
            item: dict[str, Any] = {"query_id": query_id, "output": _output_json(output),
                                    "default": status is Status.DEFAULT}
            if status is Status.DEFAULT:
                item["default_explanation"] = (
                    NO_MODEL_EXPLANATION if self.registry.model_for_app(app) is None else SLO_EXPLANATION
                )
            predictions.append(item)
        return web.json_response(predictions[0] if single else {"batch_predictions": predictions})

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

