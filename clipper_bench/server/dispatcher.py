"""Per-model queues, replicas and batching: the heart of the local engine's frontend.

One queue per model version, shared by its replicas. A free replica takes up to ``batch_size``
queued queries at once (``-1``, Clipper's "adaptive", takes whatever is queued up to
``ADAPTIVE_BATCH_CAP``) and has at most one batch in flight, as in Clipper. With
``batches_in_flight=2`` a replica is also sent its next batch while it works on the current one; the
container still handles them one after the other, but the next batch's bytes cross the socket while
the model computes (for large GPU inputs that transfer is otherwise dead time). Queries whose answer was already given
(the app's SLO passed and its default output went out) are dropped from the queue rather than sent,
as Clipper's model queues drop tasks whose deadline has passed.

The dispatcher knows nothing of sockets: it is handed a ``send(identity, frames)`` function, and it
answers queries through each query's ``on_done`` callback.

It also knows when a replica has lost its work. A replica that holds a batch far longer than this
model's batches take is *hung* (:meth:`Dispatcher.hung_replicas`: the limit is ``HANG_FACTOR`` times
the slowest time per query any replica of the model has taken, times the held batch's size, and
never under ``hang_min_s``; before the model has answered any batch, ``hang_first_s``). A replica
that heartbeats while it holds a batch sent over ``LOST_AFTER_S`` earlier has lost that batch: a
container heartbeats only when it has waited for work (:meth:`Dispatcher.on_heartbeat`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..protocol import rpc
from ..protocol.binary import Status
from ..protocol.types import InputType
from .metrics import MetricsRegistry

ADAPTIVE_BATCH_CAP = 1024
HANG_FACTOR = 10.0
LOST_AFTER_S = 1.0

ModelKey = tuple[str, str]
Buffer = bytes | memoryview


class Query:
    """One input on its way through the engine."""

    __slots__ = ("query_id", "payload", "arrival", "deadline", "done", "on_done", "shm", "enqueued",
                 "sent_at", "batch_len", "replica")

    def __init__(
        self,
        query_id: int,
        payload: Buffer,
        arrival: float,
        deadline: float,
        on_done: Callable[[Query, Status, Buffer], None],
        shm: bool = False,
    ) -> None:
        self.query_id = query_id
        self.payload = payload  # the input, or with ``shm`` its shared-memory descriptor
        self.arrival = arrival
        self.deadline = deadline
        self.done = False
        self.on_done = on_done
        self.shm = shm
        self.enqueued = arrival  # when the dispatcher queued it (its clock): internal:rpc_request_queueing_delay
        self.sent_at: float | None = None  # when its batch went to a replica (a pipeline's trace reads these)
        self.batch_len = 0  # that batch's size
        self.replica = -1  # that replica's id

    def finish(self, status: Status, output: Buffer) -> bool:
        """Answer the query once; later answers are ignored. Returns whether this one counted."""
        if self.done:
            return False
        self.done = True
        self.on_done(self, status, output)
        return True


class Replica:
    """A connected model container."""

    __slots__ = (
        "identity", "key", "replica_id", "input_type", "inflight", "draining", "connected_at",
        "last_seen", "batches", "queries",
    )

    def __init__(self, identity: bytes, key: ModelKey, replica_id: int, input_type: InputType) -> None:
        self.identity = identity
        self.key = key
        self.replica_id = replica_id
        self.input_type = input_type
        self.inflight: dict[int, tuple[float, list[Query]]] = {}  # msg_id -> (sent at, batch)
        self.draining = False
        self.connected_at = self.last_seen = time.time()
        self.batches = 0
        self.queries = 0

    @property
    def busy(self) -> bool:
        """Whether the replica holds a batch it has not answered."""
        return bool(self.inflight)

    def to_json(self) -> dict:
        """The replica as the management API's container listing reports it."""
        name, version = self.key
        return {
            "model_name": name,
            "model_version": version,
            "model_id": f"{name}:{version}",
            "model_replica_id": self.replica_id,
            "input_type": self.input_type.api_name,
            "identity": self.identity.decode("utf-8", "replace"),
            "busy": self.busy,
            "draining": self.draining,
            "batches": self.batches,
            "queries": self.queries,
        }


@dataclass
class ModelQueue:
    key: ModelKey
    batch_size: int = -1
    queue: deque[Query] = None  # type: ignore[assignment]
    idle: deque[Replica] = None  # type: ignore[assignment]
    next_replica_id: int = 0
    slowest_per_query_s: float = 0.0  # the slowest batch any replica answered, per query in it

    def __post_init__(self) -> None:
        self.queue = deque()
        self.idle = deque()

    @property
    def max_batch(self) -> int:
        """The most queries one batch may take: the batch size, or ``ADAPTIVE_BATCH_CAP`` if -1."""
        return ADAPTIVE_BATCH_CAP if self.batch_size == -1 else self.batch_size


class Dispatcher:
    """Routes queries to replicas in batches and answers them when replicas reply."""

    def __init__(
        self,
        send: Callable[[bytes, Sequence[Buffer]], None],
        metrics: MetricsRegistry,
        clock: Callable[[], float] = time.perf_counter,
        batches_in_flight: int = 1,
        hang_min_s: float = 3.0,
        hang_first_s: float = 300.0,
    ) -> None:
        if batches_in_flight < 1:
            raise ValueError("batches_in_flight must be at least 1")
        self.batches_in_flight = batches_in_flight
        self.hang_min_s = hang_min_s
        self.hang_first_s = hang_first_s
        self._send = send
        self._metrics = metrics
        self._clock = clock
        self._next_msg_id = 0
        self.queues: dict[ModelKey, ModelQueue] = {}
        self.replicas: dict[bytes, Replica] = {}
        self._holding = False  # between hold() and release(): submit queues, release dispatches
        self._held: dict[ModelKey, ModelQueue] = {}

    @property
    def metrics(self) -> MetricsRegistry:
        """The frontend's metrics, which this dispatcher records its models' entries in."""
        return self._metrics

    # -- models -------------------------------------------------------------------------------

    def _queue(self, key: ModelKey) -> ModelQueue:
        mq = self.queues.get(key)
        if mq is None:
            mq = self.queues[key] = ModelQueue(key)
        return mq

    def set_batch_size(self, key: ModelKey, batch_size: int) -> None:
        """Set a model's batch size (creating its queue if new) and dispatch with it at once."""
        mq = self._queue(key)
        mq.batch_size = batch_size
        self._dispatch(mq)

    def remove_model(self, key: ModelKey, reason: str) -> None:
        """Forget a model: queued queries are answered with an error."""
        mq = self.queues.pop(key, None)
        if mq is None:
            return
        message = reason.encode()
        while mq.queue:
            mq.queue.popleft().finish(Status.ERROR, message)

    # -- queries ------------------------------------------------------------------------------

    def submit(self, key: ModelKey, query: Query) -> None:
        """Queue a query for model ``key``; it is sent at once if a replica is free (or, between
        :meth:`hold` and :meth:`release`, when released)."""
        mq = self._queue(key)
        query.enqueued = self._clock()
        mq.queue.append(query)
        if mq.idle:
            if self._holding:
                self._held[key] = mq
            else:
                self._dispatch(mq)

    def hold(self) -> None:
        """Keep the queries submitted from now on queued until :meth:`release`: the frontend reads
        every message waiting on a socket first, so that what arrived together leaves together
        (one batch, one RPC, rather than one per query while the replica still has room)."""
        self._holding = True

    def release(self) -> None:
        """Dispatch what was submitted since :meth:`hold`."""
        self._holding = False
        held, self._held = self._held, {}
        for mq in held.values():
            if self.queues.get(mq.key) is mq:  # not removed meanwhile
                self._dispatch(mq)

    def _dispatch(self, mq: ModelQueue) -> None:
        queue, idle = mq.queue, mq.idle
        queueing_us = self._metrics.histogram("internal:rpc_request_queueing_delay", "microseconds")
        while queue and idle:
            batch: list[Query] = []
            limit = mq.max_batch
            while queue and len(batch) < limit:
                if batch and queue[0].shm != batch[0].shm:
                    break  # a batch carries inputs or shared-memory descriptors, never both
                query = queue.popleft()
                if not query.done:
                    batch.append(query)
            if not batch:
                return
            replica = idle.popleft()
            self._next_msg_id = (self._next_msg_id + 1) & 0xFFFFFFFF
            msg_id = self._next_msg_id
            sent_at = self._clock()
            replica.inflight[msg_id] = (sent_at, batch)
            for query in batch:
                queueing_us.insert((sent_at - query.enqueued) * 1e6)
                query.sent_at, query.batch_len, query.replica = sent_at, len(batch), replica.replica_id
            if len(replica.inflight) < self.batches_in_flight:
                idle.append(replica)  # room for another batch: stays available
            kind = rpc.RequestType.PREDICT_SHM if batch[0].shm else rpc.RequestType.PREDICT
            self._send(
                replica.identity,
                rpc.encode_request(msg_id, replica.input_type, [q.payload for q in batch], kind),
            )
            name, version = mq.key
            self._metrics.histogram(f"{name}:{version}:queue_size", "queries").insert(len(queue))

    def on_response(self, identity: bytes, response: rpc.PredictResponse) -> None:
        """A replica answered its batch."""
        replica = self.replicas.get(identity)
        entry = replica.inflight.pop(response.msg_id, None) if replica is not None else None
        if entry is None:
            return  # a stale or unknown answer (replica already removed): nothing waits for it
        sent_at, batch = entry
        name, version = replica.key
        mq = self._queue(replica.key)
        # Send the replica its next batch before answering this one's queries: answering takes
        # the frontend a while (one reply per query), and the replica's GPU should not wait for it.
        if not replica.draining:
            if len(replica.inflight) == self.batches_in_flight - 1:  # it was full: free again
                mq.idle.append(replica)
            self._dispatch(mq)
        if len(response.outputs) != len(batch):
            message = (
                f"replica {replica.replica_id} of {name} answered {len(response.outputs)} "
                f"outputs for {len(batch)} inputs"
            ).encode()
            for query in batch:
                query.finish(Status.ERROR, message)
        else:
            for query, output in zip(batch, response.outputs, strict=True):
                query.finish(Status.OK, output)
        replica.batches += 1
        replica.queries += len(batch)
        replica.last_seen = time.time()
        prefix = f"model:{name}:{version}"
        latency_s = self._clock() - sent_at
        mq.slowest_per_query_s = max(mq.slowest_per_query_s, latency_s / len(batch))
        latency_us = latency_s * 1e6
        self._metrics.histogram(f"{prefix}:prediction_latency", "microseconds").insert(latency_us)
        self._metrics.histogram(f"{prefix}:batch_size", "queries").insert(len(batch))
        self._metrics.meter(f"{prefix}:prediction_throughput").mark(len(batch))
        self._metrics.counter(f"{prefix}:num_predictions").count += len(batch)
        self._metrics.counter("internal:aggregate_num_predictions").count += len(batch)
        self._metrics.meter("internal:aggregate_model_throughput").mark(len(batch))

    # -- lost work ----------------------------------------------------------------------------

    def hang_limit_s(self, key: ModelKey, batch_len: int) -> float:
        """How long a replica of ``key`` may hold a batch of ``batch_len`` before it counts as hung."""
        slowest = self._queue(key).slowest_per_query_s
        if slowest <= 0:
            return self.hang_first_s
        return max(self.hang_min_s, HANG_FACTOR * slowest * batch_len)

    def hung_replicas(self) -> list[tuple[Replica, float, float]]:
        """Replicas holding a batch past its hang limit, with the batch's age and the limit (s)."""
        now = self._clock()
        out = []
        for replica in self.replicas.values():
            for sent_at, batch in replica.inflight.values():
                age, limit = now - sent_at, self.hang_limit_s(replica.key, len(batch))
                if age > limit:
                    out.append((replica, age, limit))
                    break
        return out

    def on_heartbeat(self, identity: bytes) -> int:
        """A replica heartbeated: batches it was sent over ``LOST_AFTER_S`` ago are lost. They are
        answered with an error and the replica takes work again. Returns how many batches were lost."""
        replica = self.replicas.get(identity)
        if replica is None or not replica.inflight:
            return 0
        now = self._clock()
        lost = [msg_id for msg_id, (sent_at, _) in replica.inflight.items() if now - sent_at > LOST_AFTER_S]
        if not lost:
            return 0
        message = (f"replica {replica.replica_id} of {replica.key[0]} lost its batch: it asked for work "
                   "while holding it").encode()
        for msg_id in lost:
            for query in replica.inflight.pop(msg_id)[1]:
                query.finish(Status.ERROR, message)
        if not replica.draining:
            mq = self._queue(replica.key)
            if replica not in mq.idle:
                mq.idle.append(replica)
            self._dispatch(mq)
        return len(lost)

    # -- replicas -----------------------------------------------------------------------------

    def add_replica(self, identity: bytes, meta: rpc.ContainerMetadata) -> Replica:
        """A container announced itself: it becomes the next replica of its model version."""
        old = self.replicas.get(identity)
        if old is not None:  # the same container reconnected: its old batch is lost
            self.remove_replica(identity, "replica reconnected before answering")
        key = (meta.model_name, meta.model_version)
        mq = self._queue(key)
        replica = Replica(identity, key, mq.next_replica_id, meta.input_type)
        mq.next_replica_id += 1
        self.replicas[identity] = replica
        mq.idle.append(replica)
        self._dispatch(mq)
        return replica

    def _fail_inflight(self, replica: Replica, reason: str) -> None:
        message = reason.encode()
        for _sent_at, batch in replica.inflight.values():
            for query in batch:
                query.finish(Status.ERROR, message)
        replica.inflight = {}

    def remove_replica(self, identity: bytes, reason: str) -> Replica | None:
        """Forget a replica; queries it was working on are answered with an error."""
        replica = self.replicas.pop(identity, None)
        if replica is None:
            return None
        self._fail_inflight(replica, reason)
        mq = self.queues.get(replica.key)
        if mq is not None:
            while replica in mq.idle:
                mq.idle.remove(replica)
        return replica

    def drain_replica(self, identity: bytes) -> Replica | None:
        """Stop giving the replica work; it finishes the batch it has."""
        replica = self.replicas.get(identity)
        if replica is None:
            return None
        replica.draining = True
        mq = self.queues.get(replica.key)
        if mq is not None:
            while replica in mq.idle:
                mq.idle.remove(replica)
        return replica

    def replicas_of(self, key: ModelKey) -> list[Replica]:
        """The connected replicas of model ``key``, by replica id."""
        return sorted((r for r in self.replicas.values() if r.key == key), key=lambda r: r.replica_id)
