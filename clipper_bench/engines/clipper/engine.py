"""``--engine clipper``: benchmark a Clipper that is already running (Clipper's images, a Clipper built
from source, a fork of its frontend, or ``clipper-bench serve``) with the same models, load and records.

The run starts no frontend. For each configuration it registers the model's application and a model
version on the running Clipper, starts that many clipper-bench replicas here (pinned as on the local
engine) which connect to Clipper's RPC port, measures, then removes exactly what it added (see
``manager.py`` beside it). A real Clipper cannot change a deployed model's batch size nor clear
its metrics, so every configuration gets a fresh deployment, and the frontend's ``/metrics`` in a
record count from whenever that Clipper started (the record's deployment block says so). Faults are
those of the replicas this run started, plus the frontend's own where it is clipper-bench's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipper_admin.exceptions import ClipperException

from ...protocol.transports import Transport
from ...server.manager import Placement
from ..base import Engine, StartContext, check_framework
from ..local.engine import MODEL_VERSION, ClipperDeployment
from ..point import ConfigPoint, PlanError
from .manager import (
    AttachedContainerManager,
    ClipperAddresses,
    check_running_clipper,
)

if TYPE_CHECKING:  # the settings are the sweep's: engines read them, never import them
    from ...sweep.settings import RunSettings


def addresses_of(settings: RunSettings) -> ClipperAddresses:
    """The running Clipper's addresses from the ``--clipper_*address`` flags; PlanError when missing or malformed."""
    if not settings.clipper_address:
        raise PlanError("--engine clipper attaches to a running Clipper: pass --clipper_address HOST[:PORT] "
                        "of its query frontend")
    try:
        return ClipperAddresses.parse(settings.clipper_address, settings.clipper_admin_address,
                                      settings.clipper_rpc_address, settings.clipper_binary_address)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


class AttachedDeployment(ClipperDeployment):
    """One configuration's app, model version and replicas on the running Clipper."""

    def describe(self, point: ConfigPoint) -> dict:
        """The record's ``deployment`` block, with the running Clipper's addresses, whether its frontend
        is clipper-bench's, and that its metrics were not reset for this configuration."""
        block = super().describe(point)
        block.pop("ports", None)  # the local frontend's ports: this run bound none
        block.pop("ports_moved", None)
        block["attached"] = {
            **self.manager.addresses.to_json(),
            "frontend": "clipper-bench" if self.manager.bench_frontend else "clipper",
            "clipper_metrics_reset": False,
            "clipper_metrics_note": "this run cannot clear the frontend's /metrics: they may count from before this window",
        }
        return block


class AttachedEngine(Engine):
    """A Clipper that is already running; clipper-bench's replicas as pinned processes on this host."""

    name = "clipper"
    transports = (Transport.REST, Transport.BINARY)

    @classmethod
    def resolve_transport(cls, settings: RunSettings, large_inputs: bool) -> str:
        """``auto``: rest, Clipper's own query API, which every Clipper has."""
        return Transport.REST if settings.transport == Transport.AUTO else settings.transport

    @classmethod
    def validate(cls, settings: RunSettings) -> None:
        """The addresses are given and answer, and binary has an address; one line naming the fix if not."""
        cls.check_transport(settings)
        check_framework(settings)
        addrs = addresses_of(settings)
        if settings.transport == Transport.BINARY and addrs.binary is None:
            raise PlanError("--engine clipper --transport binary needs --clipper_binary_address HOST:PORT "
                            "(clipper-bench serve prints it; Clipper's own frontend has no binary path: use rest)")
        try:
            check_running_clipper(addrs)
        except ClipperException as exc:
            raise PlanError(f"--engine clipper: {exc.msg if hasattr(exc, 'msg') else exc}") from None

    def start(self, point: ConfigPoint, places: list[Placement], ctx: StartContext) -> AttachedDeployment:
        """Register ``point``'s app and model on the running Clipper and start its replicas here; refuse
        (ClipperException) when the running Clipper already has an app or model version of that name."""
        s = self.settings
        manager = AttachedContainerManager(
            addresses=addresses_of(s), log_dir=ctx.log_dir, placements=places,
            container_args=[*s.container_args(), "--warm_batch_size", str(point.batch_size)],
            batches_in_flight=s.batches_in_flight, start_timeout_s=s.replica_start_timeout_s,
            replica_timeout_s=s.replica_timeout_s, hang_min_s=s.replica_hang_min_s,
        )
        manager.start_clipper()
        name = point.model_name
        taken = manager.name_taken(name, name, MODEL_VERSION)
        if taken:
            manager.stop_all()
            raise ClipperException(f"the running Clipper at {manager.addresses.admin} already has {taken}, which "
                                   "this run would register and remove: delete it there, or attach to another Clipper")
        manager.registered_app, manager.registered_model = name, (name, MODEL_VERSION)
        return AttachedDeployment.start(point, manager, s, input_type=ctx.input_type,
                                        input_elements=ctx.input_elements, log_dir=ctx.log_dir)
