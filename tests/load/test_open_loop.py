"""Open-loop load: the rate is delivered, a slow server's backlog shows, arrivals are right."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from clipper_bench.load.arrivals import schedule_ns
from clipper_bench.load.stats import ClientData
from tests.conftest import REPO

DRIVER = REPO / "model_composition" / "image_driver_1" / "driver.py"


def run(tmp_path, *args, returncode=0):
    proc = subprocess.run([sys.executable, str(DRIVER), *args, "--idle_s", "0", "--results_dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=180)
    assert proc.returncode == returncode, proc.stdout + proc.stderr
    exp = max(p for p in tmp_path.iterdir() if p.is_dir())
    line = json.loads((exp / "runs.ndjson").read_text().splitlines()[-1])
    record = json.loads((exp / "configs" / f"{line['config_id']}.json").read_text())
    clients = [ClientData.from_npz(str(exp / "configs" / f)) for f in record["raw_files"]]
    return line, record, clients


def test_open_loop_delivers_the_rate_it_was_asked_for(tmp_path, no_leftover_processes):
    line, record, _ = run(tmp_path, "-m", "sleep", "--sleep_ms", "5", "-b", "8", "--rate", "200",
                          "-d", "3", "--warmup", "1")
    assert line["throughput_qps"] == pytest.approx(200, rel=0.05)
    load = record["summary"]["load"]
    assert load["mode"] == "open" and load["rate_qps"] == 200 and load["arrival"] == "constant"
    assert load["lateness"]["p50_ms"] < 1.0
    assert line["latency_ms"]["p50"] >= 5.0  # never faster than the model


def test_a_slow_server_backlog_shows_in_open_loop_latency_but_not_closed_loop(tmp_path, no_leftover_processes):
    # capacity 1 / 20 ms = 50 q/s; offered 100 q/s: the queue grows by 50 queries every second
    _, _, (open_client,) = run(tmp_path / "open", "-m", "sleep", "--sleep_ms", "20", "-b", "1", "--rate", "100",
                               "-d", "3", "--warmup", "0", "--slo_ms", "100000", "--drain_timeout_s", "30",
                               returncode=1)  # overloaded
    ok = open_client.status == 0
    t = (open_client.start_wall_ns[ok] - open_client.start_wall_ns[ok][0]) / 1e9
    lat = (open_client.done_wall_ns[ok] - open_client.start_wall_ns[ok]) / 1e6
    assert np.corrcoef(t, lat)[0, 1] > 0.9, "latency must grow with time as the backlog does"
    first, last = lat[t < 0.5], lat[t > 2.5]
    assert np.median(last) > np.median(first) + 1000  # about 50 q/s x 2 s of backlog x 20 ms
    closed, _, _ = run(tmp_path / "closed", "-m", "sleep", "--sleep_ms", "20", "-b", "1", "-d", "3", "--warmup", "0",
                       "--slo_ms", "100000")
    # the closed loop slows down with the server and hides it: a few batch times (3 in flight x 20 ms),
    # with room for a busy machine, never the open loop's seconds of backlog
    assert closed["latency_ms"]["p99"] < 500 < np.median(last)


def test_poisson_gaps_have_the_right_mean_and_spread():
    rate = 2000.0
    gaps = np.diff(schedule_ns(rate, 20.0, "poisson", seed=4)) / 1e9
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    assert gaps.std() == pytest.approx(1 / rate, rel=0.05)  # exponential: sd equals mean
    assert (gaps > 0).all()
    const = np.diff(schedule_ns(rate, 1.0, "constant")) / 1e9
    assert np.allclose(const, 1 / rate, atol=1e-9)
    with pytest.raises(ValueError, match="use constant, poisson, gamma:CV or trace:FILE"):
        schedule_ns(rate, 1.0, "bursty")


def test_stop_when_stable_ends_early_once_three_windows_agree(tmp_path, no_leftover_processes):
    line, record, _ = run(tmp_path, "-m", "sleep", "--sleep_ms", "10", "-b", "4", "-d", "40", "--warmup", "1",
                          "--stable", "--stable_window_s", "1", "--stable_tolerance", "0.2")
    stability = record["summary"]["stability"]
    assert stability["stable"] is True and line["stability"]["stable"] is True
    assert 3 <= stability["measured_s"] < 40
    assert record["summary"]["duration_s"] == pytest.approx(stability["measured_s"])
    assert len(stability["windows"][0]) >= 3


def test_a_growing_backlog_never_becomes_stable_and_runs_to_the_bound(tmp_path, no_leftover_processes):
    line, record, _ = run(tmp_path, "-m", "sleep", "--sleep_ms", "20", "-b", "1", "--rate", "100", "-d", "4",
                          "--warmup", "0", "--slo_ms", "100000", "--stable", "--stable_window_s", "1",
                          returncode=1)
    assert line["status"] == "overloaded"  # 100 q/s offered to a capacity of 50
    stability = record["summary"]["stability"]
    assert stability["stable"] is False and stability["measured_s"] == pytest.approx(4.0)
    assert line["stability"] == {"stable": False, "measured_s": pytest.approx(4.0), "max_duration_s": 4.0}


def test_windows_agree_only_within_tolerance():
    from clipper_bench.load.stability import agree

    assert agree([(100, 10), (105, 10.5), (98, 9.9)], 0.1)
    assert not agree([(100, 10), (130, 10), (100, 10)], 0.1)
    assert not agree([(100, 10), (100, 10)], 0.1)
    assert not agree([(0, 10), (0, 10), (0, 10)], 0.1)


def test_rate_and_concurrency_lists_give_one_record_per_value_on_one_deployment(tmp_path, no_leftover_processes):
    common = ["-m", "noop", "-b", "2", "-d", "1", "--warmup", "0.5", "--idle_s", "0", "--results_dir"]
    for flag, values, key in (("--rate", ["100", "300"], "rate_qps"), ("--concurrency", ["1", "4"], "concurrency")):
        out = tmp_path / flag.strip("-")
        proc = subprocess.run([sys.executable, str(DRIVER), *common, str(out), flag, *values],
                              capture_output=True, text=True, cwd=REPO, timeout=180)
        assert proc.returncode == 0, proc.stderr
        exp = max(p for p in out.iterdir() if p.is_dir())
        lines = [json.loads(x) for x in (exp / "runs.ndjson").read_text().splitlines()]
        suffix = "rate" if key == "rate_qps" else "conc"
        assert [line["config_id"] for line in lines] == [f"noop-r1-c1-b2-{suffix}{v}" for v in values]
        records = [json.loads((exp / "configs" / f"{line['config_id']}.json").read_text()) for line in lines]
        assert [r["settings"][key] for r in records] == [float(v) if key == "rate_qps" else int(v) for v in values]
        assert all(r["status"] == "ok" for r in records)
        assert all(line["goodput"] > 0.99 and line["goodput_qps"] > 0 for line in lines)  # noop: all within SLO
        assert [r["deployment"]["reused"] for r in records] == [False, True]  # one deployment serves both
        if key == "rate_qps":
            assert [line["load"]["mode"] for line in lines] == ["open", "open"]
            # delivered within 10% of what was asked (1 s windows on a shared machine)
            assert all(abs(line["throughput_qps"] - float(v)) < 0.1 * float(v) for line, v in zip(lines, values, strict=True))


def test_the_rate_search_finds_the_sleep_models_capacity_and_records_every_probe(tmp_path, no_leftover_processes):
    # one replica, batch 1, 20 ms a batch: capacity 50 q/s; constant arrivals make the knee sharp
    line, record, _ = run(tmp_path, "-m", "sleep", "--sleep_ms", "20", "-r", "1", "-b", "1", "-d", "3",
                          "--warmup", "1", "--arrival", "constant", "--max_rate_under_p99_ms", "100")
    search = record["rate_search"]
    assert line["max_rate_qps"] == search["max_rate_qps"]
    assert abs(search["max_rate_qps"] - 50) <= 0.15 * 50, search
    assert search["bounds_qps"][1] > 50 and 2 <= len(search["probes"]) <= search["max_steps"]
    passed = [p["rate_qps"] for p in search["probes"] if p["passed"]]
    failed = [p["rate_qps"] for p in search["probes"] if not p["passed"]]
    assert max(passed) == search["max_rate_qps"] and failed and min(failed) > max(passed)
    assert all(p["passed"] == (p["p99_ms"] <= 100 and p["goodput"] >= 0.99 and not p["overloaded"])
               for p in search["probes"])
    assert not any(p["passed"] for p in search["probes"] if p["overloaded"])


@pytest.mark.parametrize("slo_ms", ["60000", "500"])
def test_an_open_loop_above_capacity_is_overloaded_and_reports_the_capacity(tmp_path, slo_ms, no_leftover_processes):
    """Capacity 1 / 50 ms = 20 q/s, offered 40 q/s. With a long SLO every answer comes back within it
    (goodput 1.0), yet only capacity completes in the window; with a short one the queue turns every
    answer into the SLO default. Either way: overloaded, the two rates in the reason, a non-zero
    exit, and never the offered rate as throughput."""
    line, record, _ = run(tmp_path, "-m", "sleep", "--sleep_ms", "50", "-r", "1", "-b", "1", "--rate", "40",
                          "-d", "3", "--warmup", "0.5", "--slo_ms", slo_ms, "--drain_timeout_s", "1",
                          returncode=1)
    assert line["status"] == "overloaded", line["reason"]
    offered = re.search(r"offered ([\d.]+) q/s", line["reason"])
    assert offered and float(offered.group(1)) == pytest.approx(40, rel=0.05), line["reason"]
    assert "q/s inside it" in line["reason"]  # (119 or 120 of a constant 40 q/s fall in a 3 s window)
    assert line["throughput_qps"] <= 20 * 1.1  # at most the capacity, never the 40 offered
    if slo_ms == "60000":
        assert line["throughput_qps"] >= 20 * 0.7 and line["goodput"] == 1.0
    o = record["summary"]["overload"]
    assert o["overloaded"] and o["offered_qps"] > 35
    original = json.loads((tmp_path.joinpath(*record["logs"].split("/")[-3:-2]) / record["original_results_file"])
                          .read_text())
    thrus = [t for cm in _client_metrics(original) for t in cm["thrus"]]
    assert not thrus or max(thrus) < 40 * 0.8  # the original-format file agrees: no window at the offered rate


def _client_metrics(original):
    cm = original["client_metrics"]
    return [cm] if isinstance(cm, dict) else cm


def test_repeats_are_recorded_with_intervals_that_hold_their_mean(tmp_path, no_leftover_processes):
    import clipper_bench

    line, record, _ = run(tmp_path, "-m", "noop", "-b", "2", "-d", "1", "--warmup", "0.5", "--repeats", "3")
    assert len(record["repeats"]) == 3 and record["repeats"][0]["throughput_qps"] == line["throughput_qps"]
    for key, values in (("throughput_qps", [r["throughput_qps"] for r in record["repeats"]]),
                        ("p99_ms", [r["latency_ms"]["p99"] for r in record["repeats"]])):
        stats = record["repeat_stats"][key]
        assert stats["n"] == 3 and stats["mean"] == pytest.approx(np.mean(values))
        assert stats["ci95_low"] <= stats["mean"] <= stats["ci95_high"]
    frame = clipper_bench.load_results(max(p for p in tmp_path.iterdir() if p.is_dir()))
    assert frame["repeat_stats.p99_ms.ci95_high"].iloc[0] == pytest.approx(record["repeat_stats"]["p99_ms"]["ci95_high"])


def test_rest_open_loop_delivers_the_rate_asked_below_capacity(tmp_path, no_leftover_processes):
    # sleep 5 ms at batch 8 takes up to 1,600 q/s: 200 q/s is well below it
    line, record, clients = run(tmp_path, "-m", "sleep", "--sleep_ms", "5", "-b", "8", "--transport", "rest",
                                "--rate", "200", "-d", "3", "--warmup", "1")
    assert line["status"] == "ok" and line["transport"] == "rest" and line["load"]["mode"] == "open"
    assert abs(line["throughput_qps"] - 200) <= 0.05 * 200, line["throughput_qps"]
    (c,) = clients
    assert abs(c.send_wall_ns.size - 200 * 4) <= 2  # every scheduled query of warm-up + window went out
    assert (c.send_wall_ns >= c.start_wall_ns).all()  # latency counts from the schedule, not the send


def test_a_trace_is_replayed_with_its_shape_at_the_offered_mean_rate(tmp_path):
    trace = tmp_path / "arrivals.txt"
    trace.write_text("# a burst of three, a pause, a pair\n100.0\n100.1\n100.15\n100.5\n100.55\n")
    offsets = schedule_ns(40, 2.0, f"trace:{trace}") / 1e9
    assert len(offsets) == 80  # 40 q/s on average over 2 s
    gaps = np.diff(offsets[:5])
    np.testing.assert_allclose(gaps / gaps[0], [1, 0.5, 3.5, 0.5], rtol=1e-4)  # the trace's gaps, scaled
    bad = tmp_path / "bad.txt"
    bad.write_text("1.0\nsoon\n")
    with pytest.raises(ValueError, match="every line must be a timestamp"):
        schedule_ns(10, 1.0, f"trace:{bad}")


@pytest.mark.parametrize("cv", [0.1, 4.0])
def test_gamma_gaps_have_the_mean_of_the_rate_and_the_cv_asked_for(cv):
    t = schedule_ns(100, 300, f"gamma:{cv:g}", seed=3) / 1e9
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(0.01, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)
    with pytest.raises(ValueError, match="gamma:CV"):
        schedule_ns(100, 1, "gamma:-2")
