"""A pipeline deployed on the local engine: one frontend, every stage's replicas, the pipeline application.

Each stage is deployed through Clipper's management API under its own name (``deploy_model``, one
batch size and replica count per stage), each replica pinned and given its GPU as ``run`` does.
The pipeline itself is registered with clipper-bench's management extension
(``/admin/clipper_bench/add_pipeline``): Clipper 0.4.1 links one model to an application and has
no call for a graph of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from clipper_admin import ClipperConnection
from clipper_admin.exceptions import ClipperException

from ...containers.models import get_model_spec
from ...engines.base import Deployment
from ...engines.local.engine import DEFAULT_OUTPUT, MODEL_VERSION
from ...server.images import model_image
from ...server.manager import LocalContainerManager, Placement
from ...server.pipeline import PipelineApp, StageInput
from ..settings import RunSettings
from .spec import PipelineSpec, StageConfig, query_model


def pipeline_app(spec: PipelineSpec) -> PipelineApp:
    """The frontend's routing table for ``spec``."""
    def stage_input(model: str) -> StageInput:
        m = get_model_spec(model)
        return StageInput(m.input_type, m.input_shape)

    return PipelineApp(
        spec.name, tuple(s.name for s in spec.entries),
        {s.name: tuple(spec.children(s.name)) for s in spec.stages},
        {s.name: stage_input(s.model) for s in spec.stages}, stage_input(query_model(spec)),
    )


def stage_args(settings: RunSettings, options: dict[str, Any], warm_batch: int) -> list[str]:
    """A stage's container flags: the run's model flags, the stage's own options over them."""
    args = [*settings.container_args(), "--warm_batch_size", str(warm_batch)]
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    return args


@dataclass
class PipelineDeployment(Deployment):
    """A running frontend with every stage deployed and the pipeline application registered."""

    spec: PipelineSpec
    manager: LocalContainerManager
    connection: ClipperConnection
    config: dict[str, StageConfig]
    started_for: str
    log_dir: Path
    startup_s: float
    configs: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, spec: PipelineSpec, config: dict[str, StageConfig], config_id: str,
              places: dict[str, list[Placement]], settings: RunSettings, frontend_cpus: tuple[int, ...],
              log_dir: Path) -> PipelineDeployment:
        """Start the frontend, deploy every stage on its placements and register the pipeline."""
        t0 = time.monotonic()
        warm = {s.name: max(s.batch_sizes) for s in spec.stages}
        manager = LocalContainerManager(
            host=settings.host, query_port=0, admin_port=0, rpc_port=0, binary_port=0, log_dir=log_dir,
            model_placements=places, frontend_cpus=frontend_cpus, batches_in_flight=settings.batches_in_flight,
            model_args={s.name: stage_args(settings, s.options, warm[s.name]) for s in spec.stages},
            start_timeout_s=settings.replica_start_timeout_s, replica_timeout_s=settings.replica_timeout_s,
            hang_min_s=settings.replica_hang_min_s,
        )
        conn = ClipperConnection(manager)
        try:
            conn.start_clipper()
            for stage in spec.stages:
                model = get_model_spec(stage.model)
                conn.deploy_model(stage.name, MODEL_VERSION, model.input_type.api_name, model_image(stage.model),
                                  num_replicas=config[stage.name].replicas, batch_size=config[stage.name].batch_size)
                manager.set_input_size(stage.name, MODEL_VERSION, model.input_size)
            _post(manager, "add_pipeline", {**pipeline_app(spec).to_json(), "default_output": DEFAULT_OUTPUT,
                                            "latency_slo_micros": int(settings.slo_ms * 1000)})
        except BaseException:
            manager.stop_all()
            raise
        return cls(spec, manager, conn, dict(config), config_id, log_dir, time.monotonic() - t0, [config_id])

    def serves_config(self, config: dict[str, StageConfig]) -> bool:
        """Whether ``config`` differs from the running one in batch sizes at most."""
        return all((c.replicas, c.cpus_per_replica) == (self.config[n].replicas, self.config[n].cpus_per_replica)
                   for n, c in config.items())

    def reuse_for_config(self, config: dict[str, StageConfig], config_id: str) -> None:
        """Switch every stage to ``config``'s batch size and clear the metrics."""
        for name, c in config.items():
            if c.batch_size != self.config[name].batch_size:
                self.manager.set_batch_size(name, MODEL_VERSION, c.batch_size)
        self.config = dict(config)
        self.manager.reset_metrics()
        self.configs.append(config_id)

    def stage_problem(self) -> str | None:
        """Why a stage cannot serve as it stands (a replica died, hung or stopped), or None."""
        for name, c in self.config.items():
            problem = self.manager.unhealthy(name, MODEL_VERSION, c.replicas)
            if problem:
                return f"stage {name}: {problem}"
        return None

    def trace(self) -> dict[str, Any]:
        """Every stage pass since the last call (or the start), with the clock anchor; the frontend
        forgets them once taken."""
        return _post(self.manager, "pipeline_trace", {}, timeout=60).json()

    # Deployment's interface, for the shared load and power machinery
    def serves(self, point: Any) -> bool:
        """Pipelines are matched by :meth:`serves_config`."""
        return False

    def unhealthy(self, point: Any) -> str | None:
        """See :meth:`stage_problem`."""
        return self.stage_problem()

    def reuse_for(self, point: Any) -> None:
        """See :meth:`reuse_for_config`."""
        raise NotImplementedError("pipelines are reused through reuse_for_config")

    def check_frontend(self) -> None:
        """Raise ClipperException if the frontend is gone."""
        if not self.manager.frontend_alive():
            raise ClipperException(f"the frontend {self.manager.frontend_exit()} during the measurement; "
                                   f"see {self.log_dir}")

    def faults_since(self, wall_time: float) -> list[dict]:
        """Faults the manager and the frontend recorded since ``wall_time`` (each names its stage)."""
        self.manager.collect_frontend_faults()
        return [f for f in self.manager.faults if f["at"] >= wall_time]

    def replica_ids(self) -> list[str]:
        """The live replicas of every stage."""
        return self.manager.replica_ids()

    def clipper_metrics(self) -> dict:
        """The frontend's ``GET /metrics``."""
        return requests.get(f"http://{self.manager.get_query_addr()}/metrics", timeout=10).json()

    def stop(self) -> None:
        """Stop the frontend and every replica."""
        self.manager.stop_all()


def _post(manager: LocalContainerManager, call: str, body: dict, timeout: float = 10.0) -> requests.Response:
    r = requests.post(f"http://{manager.get_admin_addr()}/admin/clipper_bench/{call}", json=body, timeout=timeout)
    if r.status_code != 200:
        raise ClipperException(f"the frontend refused {call}: {r.text}")
    return r
