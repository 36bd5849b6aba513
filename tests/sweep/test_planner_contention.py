"""Replicas that slow each other: the estimator reads a stage's service time at the replica count the
plan gives it, interpolating between the counts profiled and saying when it goes beyond them; and
--slo_p99_ms with several bounds."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clipper_bench.sweep.planner.cli_args import slo_bounds
from clipper_bench.sweep.planner.plan_cmd import per_slo_args
from clipper_bench.sweep.planner.profiles import Profile, ProfilePoint, load_profiles
from tests.conftest import REPO


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipper_bench", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def contended(tmp_path_factory) -> Path:
    """``sleep`` (10 ms) profiled at one replica, and at two replicas whose batches took twice as long.

    Both are real `run` experiments. The sleep model's replicas do not slow each other, so the
    two-replica one is measured with --sleep_ms 20 and its experiment then labelled 10 ms: to the
    planner it reads as a model whose two replicas contend, as two KPCA-SVM replicas did on the H200."""
    out = tmp_path_factory.mktemp("contended") / "prof"
    for replicas, ms in (("1", "10"), ("2", "20")):
        proc = cli("run", "-m", "sleep", "--sleep_ms", ms, "-r", replicas, "-b", "1", "-d", "1.5", "--warmup", "0.3",
                   "--idle_s", "0", "--oversubscribe", "--results_dir", str(out))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for exp in out.glob("*/experiment.json"):
        doc = json.loads(exp.read_text())
        if doc["settings"]["sleep_ms"] == 20:
            doc["settings"]["sleep_ms"] = 10.0
            exp.write_text(json.dumps(doc))
    return out


def test_the_service_time_is_read_at_the_plans_replica_count(contended):
    (profile,) = [p for p in load_profiles([str(contended)]) if p.model == "sleep"]
    assert profile.measured_replicas == [1, 2]
    one, two, three = (profile.service_s(1, r)[0] for r in (1, 2, 3))
    assert two > 1.5 * one  # the two-replica measurement, not one replica's time
    assert three == two and profile.replica_note(3) == "service time at r=3 assumed equal to r=2's"
    assert profile.replica_note(2) is None and profile.replica_note(1) is None


def test_a_plan_that_needs_more_replicas_than_profiled_says_it_extrapolated(contended, tmp_path):
    # 90 q/s: one replica (10 ms) or two (20 ms each) serve at most 100 q/s, above the 85% bound;
    # read as independent, two 10 ms replicas would have been planned
    proc = cli("plan", str(contended), "-m", "sleep", "--sleep_ms", "10", "--rate", "90", "--slo_p99_ms", "300",
               "--oversubscribe", "--results_dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = yaml.safe_load((tmp_path / "plan-sleep.yaml").read_text())
    assert plan["stages"]["sleep"]["replicas"] == [3]
    assert plan["planner"]["plan"]["extrapolated_replicas"] == ["sleep: service time at r=3 assumed equal to r=2's"]
    assert plan["planner"]["plan"]["stages"]["sleep"]["replicas_profiled"] == [1, 2]
    assert "extrapolated: sleep: service time at r=3 assumed equal to r=2's" in proc.stdout


def test_between_profiled_replica_counts_the_service_time_is_interpolated():
    profile = Profile("sleep", {"sleep_ms": 10}, "cpu", 1, points=[
        ProfilePoint(1, 1.0, 0.010, None, "r1", replicas=1), ProfilePoint(1, 1.0, 0.030, None, "r3", replicas=3)])
    assert profile.service_s(1, 2) == (pytest.approx(0.020), False)
    assert profile.replica_note(2) is None and profile.replica_note(4) == "service time at r=4 assumed equal to r=3's"
    assert profile.service_s(1) == (0.010, False)  # no count named: the fewest measured


def test_several_bounds_give_a_plan_file_each():
    assert slo_bounds("150") == (150.0,) and slo_bounds("150,500") == (150.0, 500.0)
    for bad in ("150,-1", "150,150", ",", "150,nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            slo_bounds(bad)
    args = argparse.Namespace(out=None, results_dir=Path("res"), slo_p99_ms=(150.0, 500.0))
    one = per_slo_args(args, "p", 150.0, several=True)
    assert one.out == Path("res/plan-p-slo150.yaml") and one.results_dir == Path("res/slo150") and one.slo_p99_ms == 150
    assert per_slo_args(args, "p", 500.0, several=False).out == Path("res/plan-p.yaml")
    named = argparse.Namespace(out=Path("x/plan.yaml"), results_dir=Path("res"), slo_p99_ms=(150.0, 500.0))
    assert per_slo_args(named, "p", 500.0, several=True).out == Path("x/plan-slo500.yaml")


def test_a_bad_bound_list_gets_one_line(tmp_path):
    proc = cli("plan", str(tmp_path), "-m", "sleep", "--rate", "10", "--slo_p99_ms", "150,abc")
    assert proc.returncode == 2 and "--slo_p99_ms" in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr


def test_service_spread_with_persistence_raises_the_p99_of_a_saturated_batching_stage():
    """A stage near its capacity: the same mean service times, drawn with a spread whose slow spells
    persist, give a higher p99 than the means alone, and a higher one than independent draws."""
    from clipper_bench.load.arrivals import schedule_ns
    from clipper_bench.sweep.planner.simulate import SimStage, simulate

    arrivals = schedule_ns(300, 6.0, "poisson", seed=0) / 1e9

    def p99(cv: float, persistence: float) -> float:
        stage = SimStage("s", (), 1, 16, lambda k: 0.020 + 0.002 * k, cv)
        return simulate([stage], ("s",), arrivals, (1.0, 6.0), persistence=persistence).percentile_ms(99)

    means, independent, persistent = p99(0.0, 0.0), p99(0.2, 0.0), p99(0.2, 0.9)
    assert means < independent < persistent


def test_a_profile_point_keeps_its_service_spread_from_the_batch_latency_histogram():
    """Two services back to back per batch (batches_in_flight 2): cv = (std / mean) x sqrt(2)."""
    from clipper_bench.sweep.planner.profiles import _service_cv

    record = {"clipper_metrics": {"histograms": [{"model:m:1:prediction_latency": {
        "unit": "microseconds", "size": "100", "mean": "60000", "std_dev": "6000"}}]}}
    assert _service_cv(record, "m", 0.030) == pytest.approx(0.1 * 2 ** 0.5)
    assert _service_cv({}, "m", 0.030) is None
