"""Batching and replica bookkeeping, without sockets."""

from clipper_bench.protocol import rpc
from clipper_bench.protocol.binary import Status
from clipper_bench.protocol.types import InputType
from clipper_bench.server.dispatcher import Dispatcher, Query
from clipper_bench.server.metrics import MetricsRegistry

KEY = ("m", "1")


class Wire:
    def __init__(self):
        self.sent = []

    def __call__(self, identity, frames):
        decoded = rpc.decode_from_frontend(frames)
        self.sent.append((identity, decoded))


def make():
    wire = Wire()
    d = Dispatcher(wire, MetricsRegistry())
    answers = []
    d.set_batch_size(KEY, 3)
    return d, wire, answers


def query(i, answers):
    return Query(i, str(i).encode(), 0.0, 1e9, lambda q, status, out: answers.append((q.query_id, status, bytes(out))))


def join(d, name):
    return d.add_replica(name, rpc.ContainerMetadata("m", "1", InputType.BYTES))


def test_a_free_replica_takes_up_to_batch_size_and_one_batch_at_a_time():
    d, wire, answers = make()
    for i in range(5):
        d.submit(KEY, query(i, answers))
    join(d, b"r1")
    assert len(wire.sent) == 1
    identity, req = wire.sent[0]
    assert identity == b"r1" and [bytes(x) for x in req.inputs] == [b"0", b"1", b"2"]
    d.submit(KEY, query(5, answers))
    assert len(wire.sent) == 1, "a busy replica must not get a second batch"
    d.on_response(b"r1", rpc.PredictResponse(req.msg_id, [b"a", b"b", b"c"]))
    assert answers == [(0, Status.OK, b"a"), (1, Status.OK, b"b"), (2, Status.OK, b"c")]
    assert [bytes(x) for x in wire.sent[1][1].inputs] == [b"3", b"4", b"5"]


def test_replicas_share_one_queue():
    d, wire, answers = make()
    join(d, b"r1")
    join(d, b"r2")
    for i in range(4):
        d.submit(KEY, query(i, answers))
    # one query each to the two idle replicas; the other two wait for whichever frees first
    assert [identity for identity, _ in wire.sent] == [b"r1", b"r2"]
    d.on_response(b"r2", rpc.PredictResponse(wire.sent[1][1].msg_id, [b"x"]))
    assert wire.sent[2][0] == b"r2" and [bytes(x) for x in wire.sent[2][1].inputs] == [b"2", b"3"]


def test_queries_submitted_while_held_leave_together_when_released():
    d, wire, answers = make()
    join(d, b"r1")
    join(d, b"r2")
    d.hold()  # the frontend holds across one read of its socket
    for i in range(4):
        d.submit(KEY, query(i, answers))
    assert wire.sent == [], "nothing may go while held"
    d.release()
    # without the hold these would go as [0], [1] to the two replicas and wait; held, they go as
    # full batches
    assert [(identity, [bytes(x) for x in req.inputs]) for identity, req in wire.sent] == \
        [(b"r1", [b"0", b"1", b"2"]), (b"r2", [b"3"])]
    d.submit(KEY, query(4, answers))  # released: back to sending at once (no replica free here)
    d.on_response(b"r2", rpc.PredictResponse(wire.sent[1][1].msg_id, [b"x"]))
    assert [bytes(x) for x in wire.sent[2][1].inputs] == [b"4"]


def test_answered_queries_are_not_sent_and_late_answers_are_ignored():
    d, wire, answers = make()
    q = query(0, answers)
    d.submit(KEY, q)
    q.finish(Status.DEFAULT, b"TIMEOUT")
    join(d, b"r1")
    assert wire.sent == []
    assert answers == [(0, Status.DEFAULT, b"TIMEOUT")]


def test_a_replica_that_leaves_fails_its_batch():
    d, wire, answers = make()
    join(d, b"r1")
    d.submit(KEY, query(0, answers))
    d.remove_replica(b"r1", "replica died")
    assert answers == [(0, Status.ERROR, b"replica died")]
    d.on_response(b"r1", rpc.PredictResponse(wire.sent[0][1].msg_id, [b"late"]))
    assert len(answers) == 1


def test_two_batches_in_flight_send_the_next_batch_before_the_answer():
    wire = Wire()
    d = Dispatcher(wire, MetricsRegistry(), batches_in_flight=2)
    d.set_batch_size(KEY, 2)
    answers = []
    join(d, b"r1")
    for i in range(6):
        d.submit(KEY, query(i, answers))
    assert len(wire.sent) == 2, "a second batch goes out while the first is being computed"
    assert [bytes(x) for x in wire.sent[1][1].inputs] == [b"2", b"3"] or len(wire.sent[0][1].inputs) == 1
    first = wire.sent[0][1]
    d.on_response(b"r1", rpc.PredictResponse(first.msg_id, [b"a"] * len(first.inputs)))
    assert len(wire.sent) == 3
    d.remove_replica(b"r1", "gone")
    assert sorted(a[1] for a in answers).count(Status.ERROR) == len(answers) - len(first.inputs)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_timed(hang_min_s=3.0, hang_first_s=300.0):
    wire, clock, answers = Wire(), Clock(), []
    d = Dispatcher(wire, MetricsRegistry(), clock=clock, hang_min_s=hang_min_s, hang_first_s=hang_first_s)
    d.set_batch_size(KEY, 4)
    return d, wire, clock, answers


def test_a_replica_holding_a_batch_ten_times_longer_than_batches_take_is_hung():
    d, wire, clock, answers = make_timed(hang_min_s=0.5)
    for i in range(4):
        d.submit(KEY, query(i, answers))
    join(d, b"r1")
    clock.now = 0.2  # a batch of 4 in 0.2 s: 0.05 s per query
    d.on_response(b"r1", rpc.PredictResponse(wire.sent[0][1].msg_id, [b"a"] * 4))
    assert d.hang_limit_s(KEY, 4) == 2.0 and d.hang_limit_s(KEY, 1) == 0.5  # 10 x 0.05 x 4; floor 0.5
    d.submit(KEY, query(4, answers))  # a batch of one, held from 0.2 s
    clock.now = 0.2 + 0.4
    assert d.hung_replicas() == []
    clock.now = 0.2 + 0.6
    ((replica, age, limit),) = d.hung_replicas()
    assert replica.identity == b"r1" and age > limit == 0.5


def test_before_any_batch_is_answered_the_first_batch_limit_applies():
    d, wire, clock, answers = make_timed(hang_first_s=60.0)
    join(d, b"r1")
    d.submit(KEY, query(0, answers))
    clock.now = 59.0
    assert d.hung_replicas() == []
    clock.now = 61.0
    assert len(d.hung_replicas()) == 1


def test_a_heartbeat_while_busy_fails_the_lost_batch_and_frees_the_replica():
    d, wire, clock, answers = make_timed()
    join(d, b"r1")
    d.submit(KEY, query(0, answers))
    clock.now = 0.5
    assert d.on_heartbeat(b"r1") == 0, "a batch sent just now may still be on its way"
    assert answers == []
    clock.now = 5.0
    assert d.on_heartbeat(b"r1") == 1
    assert answers == [(0, Status.ERROR, b"replica 0 of m lost its batch: it asked for work while holding it")]
    d.submit(KEY, query(1, answers))  # the replica takes work again
    assert [bytes(x) for x in wire.sent[-1][1].inputs] == [b"1"]
    assert d.on_heartbeat(b"unknown") == 0


def test_a_replica_gets_its_next_batch_before_the_last_batch_is_answered():
    wire = Wire()
    d = Dispatcher(wire, MetricsRegistry(), batches_in_flight=1)
    d.set_batch_size(KEY, 2)
    sent_when_answered = []

    def on_done(query, status, output):
        sent_when_answered.append(len(wire.sent))

    join(d, b"r1")
    for i in range(4):
        d.submit(KEY, Query(i, str(i).encode(), 0.0, 1e9, on_done))
    first = wire.sent[0][1]
    d.on_response(b"r1", rpc.PredictResponse(first.msg_id, [b"a"] * len(first.inputs)))
    # the replica's GPU need not wait while the frontend answers the queries of the last batch
    assert sent_when_answered == [2] * len(first.inputs)


def _entry(metrics, group, name):
    return next(e[name] for e in metrics.to_json()[group] if name in e)


def test_the_internal_metrics_count_model_predictions_and_the_time_queries_waited_to_be_sent():
    d, wire, clock, answers = make_timed()
    for i in range(3):
        clock.now = 0.1 * i  # queued at 0.0, 0.1 and 0.2 s
        d.submit(KEY, query(i, answers))
    clock.now = 0.5
    join(d, b"r1")  # the batch of three goes at 0.5 s: they waited 0.5, 0.4 and 0.3 s
    delay = _entry(d.metrics, "histograms", "internal:rpc_request_queueing_delay")
    assert delay["unit"] == "microseconds" and delay["size"] == "3"
    assert float(delay["min"]) == 300_000 and float(delay["max"]) == 500_000
    d.on_response(b"r1", rpc.PredictResponse(wire.sent[0][1].msg_id, [b"a"] * 3))
    assert _entry(d.metrics, "counters", "internal:aggregate_num_predictions") == {"count": "3"}
    assert _entry(d.metrics, "counters", "model:m:1:num_predictions") == {"count": "3"}
    assert _entry(d.metrics, "counters", "internal:prediction_cache_lookups") == {"count": "0"}
    assert float(_entry(d.metrics, "meters", "internal:aggregate_model_throughput")["rate"]) > 0
