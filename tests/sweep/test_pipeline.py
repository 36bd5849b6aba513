"""Pipelines end to end, as a user runs them: sleep stages of known times, chaining measured."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

E2E = REPO / "model_composition" / "image_driver_1" / "e2e_driver.py"


def run_pipeline(tmp_path, pipeline, *args, returncode=0):
    proc = subprocess.run([sys.executable, str(E2E), str(pipeline), *args, "--idle_s", "0", "--oversubscribe",
                           "--results_dir", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == returncode, proc.stdout + proc.stderr
    (exp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    lines = [json.loads(x) for x in (exp / "runs.ndjson").read_text().splitlines()]
    records = [json.loads((exp / "configs" / f"{x['config_id']}.json").read_text()) for x in lines]
    return exp, lines, records, proc


def write(tmp_path, name, stages):
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps({"name": name, "stages": stages}))  # JSON is YAML
    return path


def test_two_sleep_branches_take_the_longer_branch_plus_the_chaining_cost(tmp_path, no_leftover_processes):
    """20 -> 10 ms beside 30 -> 5 ms, one query at a time: end to end is the longer branch (35 ms)
    plus what chaining two stages costs, measured in the same test with two noop stages."""
    noop = write(tmp_path, "noop2", {"n1": {"model": "noop"}, "n2": {"model": "noop", "input": "n1"}})
    _, (chain,), _, _ = run_pipeline(tmp_path / "noop", noop, "-d", "3", "--warmup", "1", "--concurrency", "1")
    chaining_ms = chain["latency_ms"]["p50"]
    branches = write(tmp_path, "branches", {
        "a1": {"model": "sleep", "options": {"sleep_ms": 20}},
        "a2": {"model": "sleep", "input": "a1", "options": {"sleep_ms": 10}},
        "b1": {"model": "sleep", "options": {"sleep_ms": 30}},
        "b2": {"model": "sleep", "input": "b1", "options": {"sleep_ms": 5}},
    })
    _, (line,), (record,), _ = run_pipeline(tmp_path / "sleep", branches, "-d", "4", "--warmup", "1",
                                            "--concurrency", "1")
    stages = record["stages"]["stages"]
    # the longer branch as its stages really took (a sleep overshoots on a busy machine), plus chaining
    served = {s: stages[s]["service_ms"]["p50"] for s in stages}
    expected = max(served["a1"] + served["a2"], served["b1"] + served["b2"]) + chaining_ms
    assert line["status"] == "ok" and line["latency_ms"]["p50"] == pytest.approx(expected, rel=0.10), (line, served)
    assert line["latency_ms"]["p50"] >= 35  # never faster than the longer branch's sleeps
    assert stages["b1"]["service_ms"]["p50"] == pytest.approx(30, rel=0.2)
    assert record["stages"]["bottleneck"] == "b1"  # the slowest stage is the busiest
    assert set(stages) == {"a1", "a2", "b1", "b2"} and all(s["mean_batch_size"] == 1.0 for s in stages.values())


def test_throughput_follows_the_slowest_stage_and_its_replicas(tmp_path, no_leftover_processes):
    """The built-in sleep_branches: the 30 ms stage allows 33 q/s; two replicas of it lift that to
    what the 20 ms stage allows (50 q/s). The records, the original's e2e files and the trace agree."""
    exp, lines, records, _ = run_pipeline(tmp_path, "sleep_branches", "-d", "4", "--warmup", "1")
    one, two = lines
    assert one["status"] == two["status"] == "ok"
    assert one["throughput_qps"] == pytest.approx(1000 / 30, rel=0.10) and one["bottleneck"] == "b1"
    assert two["throughput_qps"] == pytest.approx(1000 / 20, rel=0.10) and two["bottleneck"] == "a1"
    original = json.loads((exp / records[0]["original_results_file"]).read_text())
    assert [n["name"] for n in original["node_configs"]] == ["a1", "a2", "b1", "b2"]
    assert original["client_metrics"]["thrus"] and original["client_metrics"]["all_lats"]  # one client: a dict
    assert original["mean_batch_sizes"][0] == {"a1": 1.0, "a2": 1.0, "b1": 1.0, "b2": 1.0}
    with np.load(exp / "configs" / records[0]["stage_trace_file"], allow_pickle=False) as trace:
        assert set(trace["stage"].tolist()) == {"a1", "a2", "b1", "b2"}
        assert (trace["done_wall_ns"] >= trace["queued_wall_ns"]).all()


def test_a_bad_pipeline_file_is_one_line_before_anything_starts(tmp_path, no_leftover_processes):
    bad = write(tmp_path, "bad", {"a": {"model": "noop", "input": "b"}, "b": {"model": "noop", "input": "a"}})
    proc = subprocess.run([sys.executable, str(E2E), str(bad), "--results_dir", str(tmp_path / "res")],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "form a cycle" in proc.stderr
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


def test_a_stage_replica_dying_makes_the_configuration_degraded_and_names_the_stage(tmp_path, no_leftover_processes):
    import time

    import psutil

    pipe = write(tmp_path, "two", {"first": {"model": "sleep", "options": {"sleep_ms": 5}},
                                   "second": {"model": "sleep", "input": "first", "options": {"sleep_ms": 5}}})
    proc = subprocess.Popen([sys.executable, str(E2E), str(pipe), "-d", "6", "--warmup", "1", "--idle_s", "0",
                             "--oversubscribe", "--results_dir", str(tmp_path / "res")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    victim = None
    deadline = time.monotonic() + 90
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        for p in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "replica second#1" in " ".join(p.cmdline()):
                    victim = p
            except psutil.Error:
                continue
        time.sleep(0.2)
    assert victim is not None, "the second stage's replica never started"
    time.sleep(3)  # into the window
    victim.kill()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    (exp,) = [p for p in (tmp_path / "res").iterdir() if p.is_dir()]
    (line,) = [json.loads(x) for x in (exp / "runs.ndjson").read_text().splitlines()]
    assert line["status"] == "degraded" and "replica second#1" in line["reason"], line


def test_a_stages_batch_reaches_the_next_stage_as_one_batch(tmp_path, no_leftover_processes):
    """Four queries at a time through a -> b, both batching up to 4: a's answers are forwarded to b
    together, so b forms batches of four too (one at a time, each taking b's first free slot, would
    have made b's batches 1, 1 and 2)."""
    chain = write(tmp_path, "chain", {"a": {"model": "sleep", "options": {"sleep_ms": 20}, "batch_sizes": [4]},
                                      "b": {"model": "sleep", "input": "a", "options": {"sleep_ms": 10},
                                            "batch_sizes": [4]}})
    _, (line,), (record,), _ = run_pipeline(tmp_path / "run", chain, "-d", "2", "--warmup", "0.5",
                                            "--concurrency", "4")
    stages = record["stages"]["stages"]
    assert line["status"] == "ok", line
    assert stages["a"]["mean_batch_size"] > 3.5 and stages["b"]["mean_batch_size"] > 3.5, stages
