"""What the runner needs of a serving engine, and of one deployment on it.

An :class:`Engine` checks the settings it needs before anything starts, picks the transport for
``--transport auto`` and starts a :class:`Deployment` for a configuration. A deployment says whether
it can serve the next configuration as it stands, serves it, reports its health, faults and
metrics, and stops. The runner knows nothing else of an engine; the registry in ``__init__`` maps
``--engine`` names to engines, and :func:`make_engine` makes the one ``--engine`` names.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..load.orchestrate import run_clients
from ..load.spec import LoadSpec
from ..load.stats import ClientData
from ..power.sampler import PowerMonitor, SamplerConfig
from ..protocol.transports import Transport
from ..server.manager import Placement
from . import engine_class
from .point import ConfigPoint, CorePlan, PlanError

if TYPE_CHECKING:  # the settings are the sweep's: engines read them, never import them
    from ..sweep.settings import RunSettings


@dataclass(frozen=True)
class StartContext:
    """What an engine may need to start a deployment, beyond the configuration."""

    plan: CorePlan
    input_type: str  # Clipper's name of the model's input type
    input_elements: int  # elements of one input
    log_dir: Path  # this configuration's logs
    experiment_dir: Path


class Deployment(ABC):
    """A model deployed on an engine, kept while the sweep's configurations allow it."""

    started_for: str
    startup_s: float
    log_dir: Path
    manager: Any  # the addresses per transport: get_query_addr, get_binary_addr, get_handle_addr

    @abstractmethod
    def serves(self, point: ConfigPoint) -> bool:
        """Whether ``point`` can run on this deployment after :meth:`reuse_for`."""

    @abstractmethod
    def unhealthy(self, point: ConfigPoint) -> str | None:
        """Why this deployment cannot serve ``point`` as it stands, or None when it is healthy."""

    @abstractmethod
    def reuse_for(self, point: ConfigPoint) -> None:
        """Adapt the running deployment to ``point`` (its batch size, on some engines its replicas)."""

    @abstractmethod
    def check_frontend(self) -> None:
        """Raise ClipperException if the engine's frontend went away while measuring."""

    @abstractmethod
    def faults_since(self, wall_time: float) -> list[dict]:
        """Faults (replicas lost, hung, stopped) recorded since ``wall_time``."""

    @abstractmethod
    def replica_ids(self) -> list[str]:
        """The live replicas' identities, by slot."""

    @abstractmethod
    def clipper_metrics(self) -> dict | None:
        """The frontend's metrics in Clipper's format, or None where the engine keeps none."""

    @abstractmethod
    def stop(self) -> None:
        """Stop everything this deployment started."""

    def run_clients(self, specs: list[LoadSpec], work_dir: Path,
                    on_start: Callable[[float], None] | None = None) -> tuple[float, list[ClientData]]:
        """Run the load clients (here: one process each on this host; see ``orchestrate.run_clients``)."""
        return run_clients(specs, work_dir, on_start)

    def power_monitor(self, cfg: SamplerConfig) -> PowerMonitor:
        """The power sampler of a configuration's window (here: one process on this host)."""
        return PowerMonitor(cfg)

    def describe(self, point: ConfigPoint) -> dict:
        """The record's ``deployment`` block."""
        return {
            "started_for": self.started_for,
            "reused": self.started_for != point.config_id,
            "startup_s": round(self.startup_s, 3),
            "replicas": self.replica_ids(),
            "logs": str(self.log_dir),
        }


class Engine(ABC):
    """A serving engine: one per experiment, made by :func:`make_engine`."""

    name: ClassVar[str]
    transports: ClassVar[tuple[str, ...]]  # query paths its deployments serve
    serves_pipelines: ClassVar[bool] = False  # whether `clipper-bench pipeline` can chain stages on it

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings

    @classmethod
    def resolve_transport(cls, settings: RunSettings, large_inputs: bool) -> str:
        """The transport a run uses: what ``--transport`` says, or for ``auto`` the fastest this engine
        offers for the model's inputs (``large_inputs``: 64 KiB or more)."""
        return Transport.BINARY if settings.transport == Transport.AUTO else settings.transport

    @classmethod
    def validate(cls, settings: RunSettings) -> None:
        """Raise PlanError naming the fix when this engine cannot run ``settings`` here."""
        cls.check_transport(settings)
        check_framework(settings)

    @classmethod
    def check_transport(cls, settings: RunSettings) -> None:
        """PlanError when this engine does not serve ``settings.transport``."""
        if settings.transport not in cls.transports:
            if settings.transport == Transport.SHM:
                raise PlanError("--transport shm needs the load clients and replicas on one host: use it with "
                                "--engine local, or pass --transport binary")
            raise PlanError(f"--engine {cls.name} serves --transport {' or '.join(cls.transports)}, "
                            f"not {settings.transport}")

    @abstractmethod
    def start(self, point: ConfigPoint, places: list[Placement], ctx: StartContext) -> Deployment:
        """Deploy ``point``'s model on ``places``; raise ClipperException when it cannot."""

    def idle_monitor(self, cfg: SamplerConfig) -> PowerMonitor:
        """The power sampler of the idle measurement, before anything is deployed (here: this host)."""
        return PowerMonitor(cfg)

    def close(self) -> None:
        """Release what the engine holds for the whole experiment (a Ray session, say)."""
        return None


def make_engine(settings: RunSettings) -> Engine:
    """The engine ``settings.engine`` names, for one experiment."""
    return engine_class(settings.engine)(settings)


def check_framework(settings: RunSettings) -> None:
    """Image models need their framework installed here; say how to get it before anything starts."""
    from ..containers.models import get_model_spec
    from ..containers.models.image import ARCHS

    if settings.model_name not in ARCHS:
        return
    get_model_spec(settings.model_name)
    needed = ["torch", "torchvision"] if settings.framework == "torch" else ["keras"]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        extra = "torch" if settings.framework == "torch" else "keras"
        raise PlanError(
            f"--framework {settings.framework} needs {', '.join(missing)}, not installed: "
            f"run .venv/bin/pip install -e '.[{extra}]'"
        )
