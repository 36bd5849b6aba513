"""Statistics from raw data: exact merges, the original's windows, unknowns as None."""

import numpy as np
import pytest

from clipper_bench.load.spec import STATUS_DEFAULT, STATUS_ERROR, STATUS_NO_ANSWER, STATUS_OK
from clipper_bench.load.stats import ClientData, latency_stats_ms, summarize, window_metrics

MS = 1_000_000


def client(index, sends_ms, lats_ms, statuses=None):
    send = np.array(sends_ms, dtype=np.int64) * MS
    done = send + np.array(lats_ms, dtype=np.int64) * MS
    status = np.array(statuses if statuses is not None else [STATUS_OK] * len(send), dtype=np.int8)
    done = np.where(status == STATUS_NO_ANSWER, -1, done)
    return ClientData(index, send, done, status)


def test_merged_percentiles_equal_percentiles_of_concatenated_samples():
    rng = np.random.default_rng(1)
    a_lat = rng.integers(1, 50, 500)
    b_lat = rng.integers(100, 400, 300)
    a = client(0, np.arange(500), a_lat)
    b = client(1, np.arange(300), b_lat)
    summary = summarize([a, b], (0, 10_000 * MS))
    both = np.concatenate([a_lat, b_lat]).astype(float)
    for key, q in (("p50", 50), ("p99", 99), ("p999", 99.9)):
        assert summary["latency_ms"][key] == pytest.approx(np.percentile(both, q))
    # the average of the two clients' p99s would be far from the truth
    assert summary["latency_ms"]["p99"] != pytest.approx((np.percentile(a_lat, 99) + np.percentile(b_lat, 99)) / 2)


def test_window_excludes_warmup_and_counts_outcomes_apart():
    c = client(
        0,
        [0, 100, 1000, 1100, 1200, 1300, 2500],
        [5, 5, 10, 20, 30, 40, 5],
        [STATUS_OK, STATUS_OK, STATUS_OK, STATUS_DEFAULT, STATUS_ERROR, STATUS_NO_ANSWER, STATUS_OK],
    )
    s = summarize([c], (1000 * MS, 2000 * MS))
    assert s["num_sent"] == 4
    # an error is an error; a query still out when the drain ended is unanswered, never an error
    assert (s["num_completed"], s["num_defaults"], s["num_errors"], s["num_unanswered"]) == (1, 1, 1, 1)
    assert s["latency_ms"]["max"] == 10.0  # only successes count towards latency
    assert s["throughput_qps"] == pytest.approx(1.0)  # one success arrived in a 1 s window


def test_throughput_counts_answers_inside_the_window_and_latency_the_queries_sent_in_it():
    # warm-up queries (sent before 1 s) answered inside the window; window queries answered after it
    c = client(0, [0, 10, 20, 1500, 1900], [1200, 1300, 1400, 700, 900])
    s = summarize([c], (1000 * MS, 2000 * MS))
    assert s["num_completed"] == 3 and s["throughput_qps"] == pytest.approx(3.0)  # what the system completed
    assert s["num_sent"] == s["num_answered_ok"] == 2
    assert s["latency_ms"]["max"] == 900.0  # a late answer still gives its query's latency


def _open_loop(rate_qps, capacity_qps, seconds, latency_ms=5):
    """Queries due every 1/rate s, served one at a time at ``capacity_qps`` (a FIFO that falls behind)."""
    due = np.arange(0, seconds * 1000, 1000 / rate_qps)
    done, free = [], 0.0
    for t in due:
        free = max(free, t) + 1000 / capacity_qps
        done.append(free + latency_ms)
    return client(0, due, np.array(done) - due)


def test_an_open_loop_above_capacity_completes_only_capacity_and_is_overloaded():
    c = _open_loop(rate_qps=20, capacity_qps=10, seconds=12)
    s = summarize([c], (2000 * MS, 10_000 * MS), slo_ms=60_000, rate_qps=20)
    assert s["throughput_qps"] == pytest.approx(10, rel=0.05)  # never the 20 q/s offered
    o = s["overload"]
    assert o["overloaded"] and o["offered_qps"] == pytest.approx(20) and o["shortfall"] == pytest.approx(0.5, abs=0.05)
    assert o["backlog_end"] > o["backlog_start"] + 50  # 10 q/s more than served, for 8 s
    assert s["goodput"] == 1.0  # every answer within a 60 s SLO: goodput alone cannot show overload


def test_an_open_loop_below_capacity_is_not_overloaded_and_a_closed_loop_has_no_verdict():
    c = _open_loop(rate_qps=8, capacity_qps=10, seconds=12)
    s = summarize([c], (2000 * MS, 10_000 * MS), rate_qps=8)
    assert not s["overload"]["overloaded"] and s["throughput_qps"] == pytest.approx(8, rel=0.05)
    assert summarize([c], (2000 * MS, 10_000 * MS))["overload"] is None


def test_too_few_queries_cannot_be_judged_overloaded():
    c = client(0, [1000], [5000])  # one query, answered after the window
    assert not summarize([c], (1000 * MS, 2000 * MS), rate_qps=1)["overload"]["overloaded"]


def test_no_successes_means_unknown_latency_not_zero():
    stats = latency_stats_ms(np.empty(0))
    assert all(v is None for v in stats.values())


def test_original_window_lists_every_50_completions_in_seconds():
    c = client(0, np.arange(200) * 10, np.full(200, 4))
    wm = window_metrics(c, (0, 10_000 * MS))
    assert len(wm["thrus"]) == len(wm["p99_lats"]) == len(wm["mean_lats"]) == len(wm["all_lats"]) == 4
    assert wm["mean_lats"] == pytest.approx([0.004] * 4)  # seconds, as the original driver wrote them
    assert wm["all_lats"][0] == pytest.approx([0.004] * 50)
    assert wm["thrus"][1] == pytest.approx(100.0)  # 50 completions 10 ms apart: queries/s
    assert "all_lats" not in window_metrics(c, (0, 10_000 * MS), all_lats=False)


def test_goodput_is_the_share_of_window_queries_answered_successfully_within_the_slo():
    # five window queries: ok in 5 ms, ok in 50 ms, ok in 500 ms, an SLO default, an error
    c = client(0, [1000, 1100, 1200, 1300, 1400], [5, 50, 500, 100, 10],
               [STATUS_OK, STATUS_OK, STATUS_OK, STATUS_DEFAULT, STATUS_ERROR])
    s = summarize([c], (1000 * MS, 2000 * MS), slo_ms=100)
    assert s["goodput"] == pytest.approx(2 / 5) and s["goodput_qps"] == pytest.approx(2.0)
    assert s["throughput_qps"] == pytest.approx(3.0)  # throughput counts every success, late or not
    assert s["goodput_qps"] == pytest.approx(2.0)  # successes inside the window within the SLO
    assert summarize([c], (1000 * MS, 2000 * MS))["goodput"] is None  # no SLO, no goodput


def test_a_95_percent_interval_is_students_t_around_the_mean():
    from clipper_bench.load.intervals import mean_ci95

    got = mean_ci95([10, 12, 11, 13, 9])
    assert got["mean"] == pytest.approx(11.0) and got["n"] == 5
    half = 2.776 * np.std([10, 12, 11, 13, 9], ddof=1) / np.sqrt(5)  # t(0.975, 4 dof) = 2.776
    assert (got["ci95_low"], got["ci95_high"]) == (pytest.approx(11 - half), pytest.approx(11 + half))
    assert mean_ci95([7.0])["ci95_low"] is None and mean_ci95([None, None])["mean"] is None
