"""The frontend's model-container endpoint: Clipper's RPC over ZeroMQ (see
:mod:`clipper_bench.protocol.rpc`): heartbeats, container metadata and batch answers. A mixin of
:class:`~.frontend.Frontend`, which provides the RPC socket, its reader and the dispatcher."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import zmq

from ..common.zmq_asyncio import send_frames
from ..protocol import rpc
from ..protocol.binary import Buffer

log = logging.getLogger("clipper_bench.frontend")


class ContainerRpc:
    """Messages from replicas on the RPC port."""

    def _send_rpc(self, identity: bytes, frames: Sequence[Buffer]) -> None:
        send_frames(self._rpc, [identity, *frames])
        self._rpc_reader.recheck()

    def _on_rpc(self, frames: list[zmq.Frame]) -> None:
        identity = frames[0].bytes
        try:
            message = rpc.decode_from_container(frames[1:])
        except rpc.RpcError as exc:
            log.warning("dropped a malformed RPC message from %r: %s", identity, exc)
            return
        replica = self.dispatcher.replicas.get(identity)
        if replica is not None:
            replica.last_seen = time.time()
        if isinstance(message, rpc.PredictResponse):
            self.dispatcher.on_response(identity, message)
        elif isinstance(message, rpc.Heartbeat):
            if replica is not None and self.dispatcher.on_heartbeat(identity):
                self._fault(identity, "lost_batch",
                            f"replica {replica.key[0]}#{replica.replica_id + 1} ({identity.decode('utf-8', 'replace')}) "
                            "asked for work while holding a batch: the batch was lost and failed")
            kind = (
                rpc.HeartbeatType.KEEPALIVE
                if replica is not None
                else rpc.HeartbeatType.REQUEST_CONTAINER_METADATA
            )
            self._send_rpc(identity, rpc.encode_frontend_heartbeat(kind))
        elif isinstance(message, rpc.ContainerMetadata):
            new = self.dispatcher.add_replica(identity, message)
            log.info(
                "replica %d of %s:%s joined (%r)",
                new.replica_id, message.model_name, message.model_version, identity,
            )

