"""The models as Ray Serve deployments (``--engine ray``).

One deployment per model, built from the same model implementations the local and docker engines
serve. Each replica:

* takes the first free slot of the sweep's placement (a lock file per slot on its host, held for
  the replica's life: on a cluster, ``-c`` cores are per host), pins every one of its threads to
  that slot's cores (``sched_setaffinity`` on one thread pins only that thread, so all of
  ``/proc/self/task``), and reports what it got, with its node and host, to the deployment's
  :class:`ReplicaRegistry` actor so that the run records it from whichever node it runs on;
* batches with ``@serve.batch``; the batch size comes in ``user_config`` and is applied in
  ``reconfigure`` through ``set_max_batch_size``, so a new batch size needs no new replicas;
* answers Clipper's JSON (``{"input": [...]}`` -> ``{"output": ..., "default": false}``) through
  Serve's HTTP proxy, and raw arrays through deployment handles.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import serve

from ...common.pinning import pin_all_threads
from ...common.ray_cluster import where_am_i
from ...containers.models import ModelOptions, get_model_spec
from ...protocol.types import InputType
from ...server.inputs import InputError, encode_json_input


def thread_affinities() -> list[list[int]]:
    """The cores each thread of this process may run on."""
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            out.append(sorted(os.sched_getaffinity(int(tid))))
        except OSError:
            pass
    return out


def _take_slot(lock_dir: Path, slots: int) -> tuple[int, int]:
    """Lock the first free slot's file; return (slot, fd). The lock lives as long as the process."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 30
    while True:
        for slot in range(slots):
            fd = os.open(lock_dir / f"slot{slot}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return slot, fd
            except BlockingIOError:
                os.close(fd)
        if time.monotonic() > deadline:  # more replicas than slots: share the last slot's cores
            return slots - 1, -1
        time.sleep(0.1)


REGISTRY_NAMESPACE = "clipper-bench"


class ReplicaRegistry:
    """What every replica reported at start (its node, slot, cores, GPU, actor), wherever it runs:
    a Ray actor the driver creates for the deployment, named so that replicas on any node find it."""

    def __init__(self) -> None:
        self._reports: dict[str, dict[str, Any]] = {}

    def report(self, info: dict[str, Any]) -> None:
        """A replica says where it runs (a restarted replica's new actor is a new entry)."""
        self._reports[info["actor_id"]] = info

    def reports(self) -> list[dict[str, Any]]:
        """Every report so far, live replicas and gone ones."""
        return list(self._reports.values())


def start_registry(name: str) -> Any:
    """The deployment's replica registry (an actor of the driver's job, gone when the driver is)."""
    return ray.remote(num_cpus=0)(ReplicaRegistry).options(name=name, namespace=REGISTRY_NAMESPACE).remote()


@serve.deployment  # the same code for the whole run: Serve then updates replicas in place
class BenchModel:
    """One replica of a clipper-bench model."""

    def __init__(self, model_name: str, options: dict[str, Any], slot_cpus: list[list[int]],
                 lock_dir: str, registry_name: str) -> None:
        self.slot, self._lock_fd = _take_slot(Path(lock_dir), max(1, len(slot_cpus)))
        cpus = slot_cpus[self.slot] if slot_cpus else []
        if cpus:
            pin_all_threads(cpus)
        self.spec = get_model_spec(model_name)
        self.model = self.spec.build(ModelOptions.from_flat(options))
        if cpus:  # the model may have started threads of its own
            pin_all_threads(cpus)
        self.input_type: InputType = self.spec.input_type
        self.queries = 0
        report = {
            **where_am_i(), "slot": self.slot, "cpus": cpus,
            "thread_cpus": sorted({c for a in thread_affinities() for c in a}),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "replica": str(serve.get_replica_context().replica_id),
            "actor_id": ray.get_runtime_context().get_actor_id(),
        }
        registry = ray.get_actor(registry_name, namespace=REGISTRY_NAMESPACE)
        ray.get(registry.report.remote(report))

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """A new batch size, live: the replica stays."""
        self.predict_batch.set_max_batch_size(int(user_config["batch_size"]))

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def predict_batch(self, inputs: list[np.ndarray]) -> list[bytes]:
        """Answer a batch Serve assembled: one model output per input."""
        self.queries += len(inputs)
        # called in the event loop, as Clipper's replicas run one batch at a time: a model thread
        # here measured 2.5x slower on Ray 2.60, as serve.batch then dispatched one-query batches
        return self.model.predict(inputs)

    async def __call__(self, request: Any) -> Any:
        if isinstance(request, (bytes, np.ndarray)):  # a deployment handle's raw input
            x = request if isinstance(request, np.ndarray) else np.frombuffer(request, dtype=self.input_type.dtype)
            return await self.predict_batch(x)
        from starlette.responses import JSONResponse

        from ...server.query_rest import output_json

        try:
            body = await request.json()
            if not isinstance(body, dict) or "input" not in body:
                raise InputError("body must be an object with 'input'")
            payload = encode_json_input(body["input"], self.input_type)
        except (ValueError, InputError) as exc:
            return JSONResponse({"error": "Error parsing JSON", "cause": str(exc)}, status_code=400)
        output = await self.predict_batch(np.frombuffer(payload, dtype=self.input_type.dtype))
        return JSONResponse({"query_id": self.queries, "output": output_json(output), "default": False})
