"""The frontend's pipeline applications (see :mod:`clipper_bench.server.pipeline`): registering one,
submitting its queries, and handing the driver the trace of every stage pass. A mixin of
:class:`~.frontend.Frontend`, which provides the registry, the dispatcher, ``_pending``,
``_next_query_id``, ``pipelines``, ``pipeline_trace`` and ``_admin_call``."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..protocol.binary import Buffer, Status
from .dispatcher import Query
from .pipeline import PipelineApp, PipelineQuery
from .registry import AdminError, Application


class PipelineQueries:
    """Pipeline applications of the frontend."""

    pipelines: dict[str, PipelineApp]

    def _submit_pipeline(self, app: Application, payload: Buffer,
                         on_done: Callable[[Query, Status, Buffer], None]) -> Query:
        """Start one pipeline query; ``on_done`` gets the sinks' answers, or the first default or error.
        The query waits in the app's pending list, so its SLO default goes out on time whatever the
        stages are doing."""
        self._next_query_id += 1
        now = time.perf_counter()
        deadline = now + app.latency_slo_micros / 1e6
        run: list[PipelineQuery] = []

        def answered(query: Query, status: Status, output: Buffer) -> None:
            if run and not run[0].done:
                run[0].expire()  # the sweeper gave the default: drop the stages' queued work
            on_done(query, status, output)

        query = Query(self._next_query_id, payload, now, deadline, answered)
        self._pending.setdefault(app.name, deque()).append(query)
        run.append(PipelineQuery(self.pipelines[app.name], query.query_id, payload, deadline, self._submit_stage,
                                 query.finish, time.perf_counter, self.pipeline_trace))
        run[0].start()
        return query

    def _submit_stage(self, stage: str, payload: bytes, deadline: float,
                      on_done: Callable[[Query, Status, Buffer], None]) -> Query:
        """Queue one stage's input for that stage's model (current version)."""
        self._next_query_id += 1
        query = Query(self._next_query_id, payload, time.perf_counter(), deadline, on_done)
        model = self.registry.current_version(stage)
        if model is None:
            query.finish(Status.ERROR, f"stage {stage} has no model deployed".encode())
        else:
            self.dispatcher.submit(model.key, query)
        return query

    def add_pipeline(self, body: Any) -> PipelineApp:
        """Register a pipeline application (its stages must be deployed models); AdminError if not."""
        try:
            pipe = PipelineApp.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise AdminError(f"add_pipeline: {exc}") from None
        missing = [s for s in pipe.inputs if self.registry.current_version(s) is None]
        if missing:
            raise AdminError(f"add_pipeline: stages {missing} have no deployed model")
        self._admin_call("add_app", {"name": pipe.name, "input_type": pipe.query_input.input_type.api_name,
                                     "default_output": body.get("default_output", "TIMEOUT"),
                                     "latency_slo_micros": int(body.get("latency_slo_micros", 500_000))})
        self.pipelines[pipe.name] = pipe
        return pipe

    async def _handle_pipeline_admin(self, call: str, request: web.Request) -> web.Response:
        """``add_pipeline`` (body: PipelineApp.to_json plus default_output, latency_slo_micros) and
        ``pipeline_trace`` (every stage pass since the last such call, with the clock anchor; taking it
        clears it)."""
        if call == "pipeline_trace":  # taken: the next call has only what came after this one
            taken = {**self.pipeline_trace.to_json(), "anchor_wall": time.time(), "anchor_perf": time.perf_counter()}
            self.pipeline_trace.clear()
            return web.json_response(taken)
        try:
            self.add_pipeline(await request.json())
        except (ValueError, AdminError) as exc:
            return web.Response(status=400, text=f"Error: {exc}")
        return web.Response(text="Success!")
