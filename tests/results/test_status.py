"""Statuses and their reasons: who is blamed when a window falls short."""

from clipper_bench.results.clipper_metrics import model_batch_latency_ms
from clipper_bench.results.status import RunStatus, classify


def summary(sent=100, completed=100, defaults=0, errors=0, unanswered=0, overload=None, slo_ms=500.0):
    return {"duration_s": 5.0, "slo_ms": slo_ms, "num_sent": sent, "num_completed": completed,
            "num_answered_ok": sent - defaults - errors - unanswered, "num_defaults": defaults,
            "num_errors": errors, "num_unanswered": unanswered, "overload": overload}


def overload(offered=20.0, completed=10.0):
    return {"rate_qps": offered, "offered_qps": offered, "completed_qps": completed,
            "shortfall": 1 - completed / offered, "margin": 0.1, "backlog_start": 3, "backlog_end": 53,
            "overloaded": completed < 0.9 * offered}


def test_an_overloaded_open_loop_names_the_offered_and_the_completed_rate():
    status, reason = classify(summary(completed=50, overload=overload()), [])
    assert status is RunStatus.OVERLOADED and not status.clean
    assert "offered 20.0 q/s" in reason and "completed 10.0 q/s" in reason and "lower --rate" in reason


def test_all_defaults_blame_the_model_only_when_the_model_is_slower_than_the_slo():
    all_defaults = summary(completed=0, defaults=100, overload=overload(completed=0.0))
    status, reason = classify(all_defaults, [], model_latency_ms=800.0)
    assert status is RunStatus.NO_ANSWERS and "the model takes 800.0 ms per batch" in reason
    # a fast model whose queries waited in a queue: the load, not the model
    status, reason = classify(all_defaults, [], model_latency_ms=100.0)
    assert status is RunStatus.OVERLOADED and "the model" not in reason
    closed = summary(completed=0, defaults=100)
    status, reason = classify(closed, [], model_latency_ms=100.0)
    assert status is RunStatus.OVERLOADED and "waited longer than that in the queue" in reason
    assert "lower --concurrency" in reason


def test_more_than_one_percent_slo_defaults_is_not_ok_since_the_percentiles_leave_them_out():
    status, reason = classify(summary(completed=98, defaults=2), [])
    assert status is RunStatus.OVERLOADED and "2 of 100 queries" in reason and "leave them out" in reason
    assert classify(summary(completed=99, defaults=1), [])[0] is RunStatus.OK


def test_a_window_whose_answers_all_came_after_it_measured_no_throughput():
    status, reason = classify(summary(sent=1, completed=0), [])
    assert status is RunStatus.NO_ANSWERS and "lengthen -d" in reason


def test_a_served_window_within_its_rate_is_ok():
    assert classify(summary(overload=overload(completed=19.5)), []) == (RunStatus.OK, None)


def test_the_models_batch_latency_is_read_by_name_from_clipper_metrics():
    metrics = {"counters": [], "histograms": [
        {"internal:rpc_request_queueing_delay": {"size": "9", "p50": "1.0"}},
        {"model:sleep:1:prediction_latency": {"size": "12", "p50": "102000.0"}},
    ]}
    assert model_batch_latency_ms(metrics, "sleep") == 102.0
    assert model_batch_latency_ms(metrics, "noop") is None and model_batch_latency_ms(None, "sleep") is None
