"""The driver end to end, as a user runs it: records written, numbers right, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clipper_bench.load.stats import ClientData
from tests.conftest import REPO, our_processes, wait_until_gone

DRIVER = REPO / "model_composition" / "image_driver_1" / "driver.py"


def run_driver(*args: str, results: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DRIVER), *args, "--results_dir", str(results)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )


def only_experiment(results: Path) -> Path:
    (exp,) = [p for p in results.iterdir() if p.is_dir()]
    return exp


def wait_until_measuring(results: Path, config_id: str, settle_s: float = 1.0,
                         driver: subprocess.Popen | None = None) -> None:
    """Wait until the load clients of ``config_id`` have started, then ``settle_s`` more. With
    ``driver``, as long as it runs (however slow a busy machine makes its start), and fail if it
    ends first; without, 60 s at most."""
    deadline = time.monotonic() + 60
    while (driver.poll() is None) if driver is not None else (time.monotonic() < deadline):
        exps = [p for p in results.iterdir() if p.is_dir()]
        if exps and list((exps[0] / "logs" / config_id).glob("client*.log")):
            break
        time.sleep(0.1)
    else:
        if driver is not None:
            raise AssertionError(f"the driver ended (exit {driver.returncode}) before {config_id} was measured")
    time.sleep(settle_s)


def descendants_titled(driver: subprocess.Popen, title: str, wait: bool = True) -> list:
    """The driver's descendants whose title starts with ``title`` (psutil.Process objects): with
    ``wait``, the first moment there is one, as long as the driver runs (it starts them when its
    own pace allows, not the test's); only this driver's processes count, never other runs'."""
    import psutil

    while True:
        found = []
        for child in psutil.Process(driver.pid).children(recursive=True):
            try:
                if " ".join(child.cmdline()).startswith(title):
                    found.append(child)
            except psutil.Error:
                continue
        if found or not wait or driver.poll() is not None:
            return found
        time.sleep(0.05)


def test_noop_sweep_writes_four_ok_records(tmp_path, no_leftover_processes):
    proc = run_driver("-m", "noop", "-r", "1", "2", "-b", "1", "4", "-d", "1", "--warmup", "0.5", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    exp = only_experiment(tmp_path)
    assert f"results in {exp}" in proc.stdout

    runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    assert [(r["num_replicas"], r["batch_size"]) for r in runs] == [(1, 1), (1, 4), (2, 1), (2, 4)]
    for r in runs:
        assert r["status"] == "ok", r["error"]
        assert r["engine"] == "local" and r["model_name"] == "noop"
        assert r["num_completed"] > 0 and r["num_errors"] == 0 and r["num_defaults"] == 0
        assert r["throughput_qps"] > 0
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["p999"] <= lat["max"]
        for key in ("config_id", "cpus_per_replica", "gpus", "duration_s", "error"):
            assert key in r

    experiment = json.loads((exp / "experiment.json").read_text())
    assert experiment["settings"]["model_name"] == "noop"
    assert experiment["host"]["cpu_count"] == os.cpu_count()
    assert "clipper_admin" in experiment["host"]["packages"]
    assert experiment["command_line"][-2:] == ["--results_dir", str(tmp_path)]

    record = json.loads((exp / "configs" / "noop-r2-c1-b4.json").read_text())
    node = record["node_configs"][0]
    assert node["num_replicas"] == 2 and node["batch_size"] == 4 and node["name"] == "noop"
    assert node["slo"] == 500_000 and node["cpus_per_replica"] == 1
    assert set(record["client_metrics"]) == {"thrus", "p99_lats", "mean_lats"}  # one client: its dict, as the original
    assert len(record["client_metrics"]["thrus"]) > 0
    assert any(h for h in record["clipper_metrics"]["histograms"])
    assert record["summary"]["num_completed"] == runs[-1]["num_completed"]
    raw = ClientData.from_npz(str(exp / "configs" / record["raw_files"][0]))
    assert raw.send_wall_ns.size >= record["summary"]["num_sent"]


def test_sleep_model_runs_at_its_ideal_rate(tmp_path, no_leftover_processes):
    sleep_ms, replicas, batch = 20.0, 2, 4
    proc = run_driver("-m", "sleep", "--sleep_ms", str(sleep_ms), "-r", str(replicas), "-b", str(batch),
                      "-d", "4", "--warmup", "1", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    exp = only_experiment(tmp_path)
    (run,) = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    ideal = replicas * batch / (sleep_ms / 1000)
    assert run["throughput_qps"] == pytest.approx(ideal, rel=0.15)
    # No query can be answered faster than the model's batch time.
    record = json.loads((exp / "configs" / f"{run['config_id']}.json").read_text())
    raw = ClientData.from_npz(str(exp / "configs" / record["raw_files"][0]))
    ok = raw.status == 0
    latencies_ms = (raw.done_wall_ns[ok] - raw.send_wall_ns[ok]) / 1e6
    assert latencies_ms.min() >= sleep_ms
    assert run["latency_ms"]["p50"] >= sleep_ms


def test_two_clients_merge_into_one_summary(tmp_path, no_leftover_processes):
    proc = run_driver("-m", "noop", "-n", "2", "-b", "2", "-d", "1", "--warmup", "0.3", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    exp = only_experiment(tmp_path)
    record = json.loads((exp / "configs" / "noop-r1-c1-b2.json").read_text())
    assert len(record["client_metrics"]) == 2 and len(record["raw_files"]) == 2
    clients = [ClientData.from_npz(str(exp / "configs" / f)) for f in record["raw_files"]]
    window = record["window_wall_ns"]
    lat = np.concatenate([
        (c.done_wall_ns[m] - c.send_wall_ns[m]) / 1e6
        for c in clients
        for m in [c.measured(window) & (c.status == 0)]
    ])
    # latency is over the queries due in the window and answered ok (num_answered_ok); num_completed
    # counts answers arriving in it, whenever sent, and may differ by a few at the window's edges
    assert record["summary"]["num_answered_ok"] == lat.size
    assert record["summary"]["latency_ms"]["p99"] == pytest.approx(np.percentile(lat, 99))


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["-m", "nosuch"], "unknown model 'nosuch': choose one of"),
        (["-m", "noop", "-b", "0"], "--batch_sizes must be positive"),
        (["-m", "noop", "-r", "-1"], "--num_replicas must be positive"),
        (["-m", "noop", "-d", "0"], "--duration must be positive"),
        (["-m", "noop", "-g", "0"], "--model_gpus asks for GPU [0]"),
        (["-m", "noop", "--cuda_graphs", "on"], "--cuda_graphs on captures torch image models"),
        (["-m", "noop", "-c", "4096"], "--model_cpus asks for cores [4096]"),
        (["-m", "noop", "-r", str(len(os.sched_getaffinity(0)) + 1)], "pass --oversubscribe"),
    ],
)
def test_bad_flags_get_one_clear_line_and_no_processes(tmp_path, args, fragment, no_leftover_processes):
    proc = run_driver(*args, results=tmp_path, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("clipper-bench: error: ")
    assert fragment in lines[0]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--rate", "nan"], "argument --rate: must be a finite number, got 'nan'"),
        (["-d", "inf"], "argument -d/--duration/--duration_seconds: must be a finite number"),
        (["--warmup", "nan"], "argument --warmup: must be a finite number"),
        (["--slo_ms", "nan"], "argument --slo_ms: must be a finite number"),
        (["--sleep_ms", "1e999"], "argument --sleep_ms: must be a finite number"),
        (["--drain_timeout_s", "-1"], "--drain_timeout_s must be 0 or more seconds"),
        (["-b", "1000000000"], "--batch_sizes must be at most 4096"),
    ],
)
def test_numbers_that_are_not_numbers_are_refused_before_anything_is_written(tmp_path, args, fragment):
    proc = run_driver("-m", "noop", *args, results=tmp_path / "res", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert fragment in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


def test_unwritable_results_dir_is_refused_before_anything_runs(tmp_path, no_leftover_processes):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_driver("-m", "noop", results=blocker / "sub", timeout=60)
    assert proc.returncode == 2
    assert "is not writable" in proc.stderr and "--results_dir" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_reaps_everything_and_keeps_finished_results(tmp_path, sig):
    before = our_processes()
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "2", "-d", "3", "--warmup", "0",
         "--results_dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    # Wait until the second configuration is being measured, then interrupt.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        exps = [p for p in tmp_path.iterdir() if p.is_dir()] if tmp_path.exists() else []
        if exps and (exps[0] / "runs.ndjson").exists() and list((exps[0] / "logs" / "noop-r1-c1-b2").glob("client*.log")):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    assert our_processes() - before, "the run should have processes while it measures"
    start = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 15, "exit after an interrupt must be prompt"
    assert proc.returncode == 130, err
    assert not wait_until_gone(our_processes() - before, timeout_s=5)
    exp = only_experiment(tmp_path)
    runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    assert [r["status"] for r in runs] == ["ok", "interrupted"], [(r["status"], r.get("reason")) for r in runs]
    # what the interrupted configuration measured before the signal is kept
    assert runs[1]["partial"].startswith("interrupted after") and runs[1]["num_completed"] > 0
    record = json.loads((exp / "configs" / "noop-r1-c1-b2.json").read_text())
    assert record["summary"]["throughput_qps"] > 0 and record["raw_files"]


def test_baseline_gives_each_record_its_serving_efficiency(tmp_path, no_leftover_processes):
    from clipper_bench.containers.models.classical import ClassicalBuildSettings, build_models

    models = tmp_path / "models"
    build_models(models, ClassicalBuildSettings(lgbm_train_rows=300, lgbm_trees=10), ["lgbm"])
    proc = run_driver("-m", "lgbm", "-b", "1", "4", "-d", "1.5", "--warmup", "0.5", "--baseline",
                      "--baseline_s", "1", "--models_dir", str(models), results=tmp_path / "results")
    assert proc.returncode == 0, proc.stderr
    exp = only_experiment(tmp_path / "results")
    baselines = {b["batch_size"]: b for b in map(json.loads, (exp / "baselines.ndjson").read_text().splitlines())}
    assert set(baselines) == {1, 4}
    assert baselines[4]["device"] == "cpu" and baselines[4]["framework"] == "torch"
    for run in map(json.loads, (exp / "runs.ndjson").read_text().splitlines()):
        raw = baselines[run["batch_size"]]["throughput_qps"]
        assert run["baseline_units"] == 1  # one replica on the CPU
        assert run["serving_efficiency"] == pytest.approx(run["throughput_qps"] / raw)
        assert run["precision"] == "fp32"
    report = subprocess.run([sys.executable, "-m", "clipper_bench", "report", str(exp), "--out", str(tmp_path / "rep")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert report.returncode == 0, report.stderr
    header = next(line for line in (tmp_path / "rep" / "report.md").read_text().splitlines() if "| status |" in line)
    assert header.rstrip(" |").endswith("serving efficiency")


def test_resume_runs_only_what_is_missing(tmp_path, no_leftover_processes):
    args = [sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "2", "4", "-d", "3", "--warmup", "0",
            "--idle_s", "0", "--results_dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    wait_until_measuring(tmp_path, "noop-r1-c1-b2")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "noop-r1-c1-b1: already measured, skipped" in resumed.stdout
    exp = only_experiment(tmp_path)
    runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    assert [(r["config_id"], r["status"]) for r in runs] == [
        ("noop-r1-c1-b1", "ok"), ("noop-r1-c1-b2", "interrupted"), ("noop-r1-c1-b2", "ok"), ("noop-r1-c1-b4", "ok"),
    ]
    assert len(json.loads((exp / "experiment.json").read_text())["resumed_at"]) == 1


def test_resume_without_a_matching_experiment_says_so(tmp_path, no_leftover_processes):
    proc = run_driver("-m", "noop", "--resume", results=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "--resume found no experiment" in proc.stderr


def _records(exp: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (exp / "configs").glob("*.json")
            if not p.name.endswith(".power_samples.json")}


def _histogram(record: dict, name: str) -> dict:
    return next(h[name] for h in record["clipper_metrics"]["histograms"] if name in h)


def test_batch_size_changes_keep_the_replicas_running(tmp_path, no_leftover_processes):
    proc = run_driver("-m", "sleep", "--sleep_ms", "5", "-r", "1", "2", "-b", "1", "4", "-d", "1.5",
                      "--warmup", "0.5", "--idle_s", "0", "--oversubscribe", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rec = _records(only_experiment(tmp_path))
    r1b1, r1b4 = rec["sleep-r1-c1-b1"]["deployment"], rec["sleep-r1-c1-b4"]["deployment"]
    r2b1, r2b4 = rec["sleep-r2-c1-b1"]["deployment"], rec["sleep-r2-c1-b4"]["deployment"]
    assert not r1b1["reused"] and r1b4["reused"] and r1b4["started_for"] == "sleep-r1-c1-b1"
    assert r1b4["replicas"] == r1b1["replicas"] and len(r1b1["replicas"]) == 1
    assert not r2b1["reused"] and r2b4["replicas"] == r2b1["replicas"] and len(r2b1["replicas"]) == 2
    assert set(r2b1["replicas"]).isdisjoint(r1b1["replicas"])
    # the reused frontend really batches at the new size, and its metrics cover only this configuration
    assert float(_histogram(rec["sleep-r1-c1-b1"], "model:sleep:1:batch_size")["max"]) == 1
    assert float(_histogram(rec["sleep-r1-c1-b4"], "model:sleep:1:batch_size")["max"]) == 4
    counted = next(c["app:sleep:num_predictions"]["count"] for c in rec["sleep-r1-c1-b4"]["clipper_metrics"]["counters"]
                   if "app:sleep:num_predictions" in c)
    assert int(counted) < rec["sleep-r1-c1-b4"]["summary"]["num_completed"] * 3


def test_fresh_deployments_restart_every_configuration(tmp_path, no_leftover_processes):
    proc = run_driver("-m", "noop", "-b", "1", "2", "-d", "0.5", "--warmup", "0", "--idle_s", "0",
                      "--fresh_deployments", results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rec = _records(only_experiment(tmp_path))
    assert not rec["noop-r1-c1-b2"]["deployment"]["reused"]
    assert rec["noop-r1-c1-b2"]["deployment"]["replicas"] != rec["noop-r1-c1-b1"]["deployment"]["replicas"]


def test_a_failing_configuration_is_recorded_and_the_sweep_goes_on(tmp_path, no_leftover_processes):
    """The frontend is killed while the second configuration is measured: that one is recorded
    failed with its error and logs, the third runs on a fresh engine, and the exit status says so."""
    args = [sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "2", "4", "-d", "3", "--warmup", "0",
            "--idle_s", "0", "--drain_timeout_s", "1", "--results_dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    wait_until_measuring(tmp_path, "noop-r1-c1-b2", driver=proc)
    frontends = descendants_titled(proc, "clipper-bench frontend")
    assert len(frontends) == 1
    frontends[0].kill()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, err
    assert "1 of 3 configurations are not clean measurements" in out
    assert "  noop-r1-c1-b2: failed: ClipperException: the frontend was killed by signal 9" in out
    exp = only_experiment(tmp_path)
    runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    assert [(r["config_id"], r["status"]) for r in runs] == [
        ("noop-r1-c1-b1", "ok"), ("noop-r1-c1-b2", "failed"), ("noop-r1-c1-b4", "ok"),
    ]
    failed = json.loads((exp / "configs" / "noop-r1-c1-b2.json").read_text())
    assert "frontend was killed by signal 9" in failed["error"]
    assert Path(failed["logs"]).is_dir()
    fresh = json.loads((exp / "configs" / "noop-r1-c1-b4.json").read_text())
    assert not fresh["deployment"]["reused"] and fresh["summary"]["num_completed"] > 0


def _two_replica_sweep_and_its_replica(tmp_path: Path, number: int):
    """A running `sleep` sweep of two replicas, batch 1 then 2, measuring its first configuration,
    and its replica ``number`` (a psutil.Process)."""
    args = [sys.executable, str(DRIVER), "-m", "sleep", "--sleep_ms", "20", "-r", "2", "-b", "1", "2", "-d", "3",
            "--warmup", "0", "--idle_s", "0", "--oversubscribe", "--results_dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    wait_until_measuring(tmp_path, "sleep-r2-c1-b1", driver=proc)
    (victim,) = descendants_titled(proc, f"clipper-bench replica sleep#{number}")
    return proc, victim


def test_a_replica_dying_mid_run_is_recorded_and_the_sweep_goes_on(tmp_path, no_leftover_processes):

    proc, victim = _two_replica_sweep_and_its_replica(tmp_path, 2)
    victim.kill()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, err  # a fault touched a configuration: not every record is ok
    assert "sleep-r2-c1-b1: DEGRADED: faults during the configuration: replica sleep#2" in out
    assert "killed by signal 9" in out
    rec = _records(only_experiment(tmp_path))
    hit, next_one = rec["sleep-r2-c1-b1"], rec["sleep-r2-c1-b2"]
    assert hit["status"] == "degraded" and len(hit["faults"]) == 1 and hit["faults"][0]["pid"] == victim.pid
    assert hit["summary"]["num_unanswered"] == 0  # the dead replica's query was answered with an error
    # the dead replica held at most its batches in flight (2 by default) of batch size 1
    assert hit["summary"]["num_errors"] <= 2 and hit["summary"]["num_completed"] > 0
    # the next configuration needs two replicas again: a fresh deployment, no faults
    assert not next_one["deployment"]["reused"] and len(next_one["deployment"]["replicas"]) == 2
    assert next_one["faults"] == [] and next_one["summary"]["num_errors"] == 0
    assert next_one["status"] == "ok"


def test_a_stopped_replica_is_noticed_killed_and_not_reused(tmp_path, no_leftover_processes):
    """SIGSTOP (a hung machine, a debugger): the replica is found stopped, killed and recorded as a
    fault; its configuration is degraded and the next one runs on a fresh deployment."""
    import psutil

    proc, victim = _two_replica_sweep_and_its_replica(tmp_path, 1)
    victim.suspend()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, err
    rec = _records(only_experiment(tmp_path))
    hit, next_one = rec["sleep-r2-c1-b1"], rec["sleep-r2-c1-b2"]
    assert hit["status"] == "degraded", hit["reason"]
    assert any("was stopped (SIGSTOP): killed" in f["what"] for f in hit["faults"])
    assert not psutil.pid_exists(victim.pid) or victim.status() == psutil.STATUS_ZOMBIE
    assert not next_one["deployment"]["reused"] and next_one["status"] == "ok"


def test_a_window_of_slo_defaults_is_no_answers_and_fails_the_exit_status(tmp_path, no_leftover_processes):
    proc = run_driver("-m", "sleep", "--sleep_ms", "300", "-b", "1", "-d", "1", "--warmup", "0.3",
                      "--idle_s", "0", "--slo_ms", "50", results=tmp_path)
    assert proc.returncode == 1, proc.stderr
    # the frontend saw the model take 300 ms per batch: the model, not the queue, is blamed
    assert "sleep-r1-c1-b1: NO_ANSWERS: all" in proc.stdout and "the model takes" in proc.stdout
    assert "more than --slo_ms 50; raise --slo_ms" in proc.stdout
    assert "1 of 1 configurations are not clean measurements" in proc.stdout
    (line,) = [json.loads(x) for x in (only_experiment(tmp_path) / "runs.ndjson").read_text().splitlines()]
    assert line["status"] == "no_answers" and line["num_completed"] == 0 and line["throughput_qps"] == 0
    assert line["num_defaults"] > 0 and line["latency_ms"]["p99"] is None


def test_answers_to_warmup_queries_are_not_throughput_and_the_drain_waits_for_slow_batches(
        tmp_path, no_leftover_processes):
    """Batches of 2.5 s, warm-up 0.5 s and a 1 s window: the two queries were sent during warm-up
    and answered after the window, so nothing was measured (the original driver, and we until now,
    counted answers to warm-up queries as throughput). The drain outlasts --drain_timeout_s because
    the SLO (60 s) has not passed: nothing is recorded as an error."""
    proc = run_driver("-m", "sleep", "--sleep_ms", "2500", "-b", "1", "--concurrency", "2", "-d", "1",
                      "--warmup", "0.5", "--idle_s", "0", "--slo_ms", "60000", "--drain_timeout_s", "0.5",
                      results=tmp_path)
    assert proc.returncode == 1, proc.stderr
    exp = only_experiment(tmp_path)
    rec = _records(exp)["sleep-r1-c1-b1-conc2"]  # --concurrency is in the id
    assert rec["status"] == "no_answers" and "no query was sent inside the measurement window" in rec["reason"]
    s = rec["summary"]
    assert s["num_sent"] == 0 and s["throughput_qps"] == 0 and s["num_errors"] == 0
    # both warm-up queries were waited for (the second one's batch ended ~5 s after it was sent)
    clients = [ClientData.from_npz(str(exp / "configs" / f)) for f in rec["raw_files"]]
    assert (np.concatenate([c.status for c in clients]) == 0).all()
    assert s["drain"]["unanswered_total"] == 0 and s["drain"]["waited_s"] > 2


def test_a_late_answer_to_a_window_query_gives_its_latency_but_no_throughput(tmp_path, no_leftover_processes):
    """A 1.5 s batch in a 1 s window: the query sent in the window is waited for and its latency
    counts, but its answer arrived after the window, so the window completed nothing and measured
    no throughput; the status says so rather than reporting 0 q/s as a measurement."""
    proc = run_driver("-m", "sleep", "--sleep_ms", "1500", "-b", "1", "--concurrency", "1", "-d", "1",
                      "--warmup", "0", "--idle_s", "0", "--slo_ms", "60000", "--drain_timeout_s", "0.2",
                      results=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = _records(only_experiment(tmp_path))["sleep-r1-c1-b1-conc1"]
    s = rec["summary"]
    assert s["num_sent"] == s["num_answered_ok"] == 1 and s["num_unanswered"] == 0
    assert s["num_completed"] == 0 and s["throughput_qps"] == 0 and s["latency_ms"]["p50"] > 1400
    assert rec["status"] == "no_answers" and "lengthen -d" in rec["reason"]


def _wait_for(predicate, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert predicate(), "the run never reached the moment to interrupt"


@pytest.mark.parametrize("moment", ["starting", "deploying", "warming_up", "measuring_idle_power"])
def test_interrupt_at_any_moment_is_prompt_and_leaves_nothing(tmp_path, moment):
    before = our_processes()
    idle = ["--idle_s", "3", "--powercap_root", str(tmp_path / "powercap")] if moment == "measuring_idle_power" else \
        ["--idle_s", "0"]
    if moment == "measuring_idle_power":  # a live RAPL tree, so that idle power is measured
        from tests.power.fake_powercap import FakePowercap

        fake = FakePowercap(tmp_path / "powercap").__enter__()
    proc = subprocess.Popen(
        [sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "2", "-d", "3", "--warmup", "3", *idle,
         "--results_dir", str(tmp_path / "results")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    logs = tmp_path / "results"

    def first_config_logs(name: str) -> bool:
        return any(logs.glob(f"*/logs/noop-r1-c1-b1/{name}"))

    try:
        if moment == "starting":
            time.sleep(0.3)  # importing and validating
        elif moment == "deploying":
            _wait_for(lambda: first_config_logs("frontend.log"))
        elif moment == "warming_up":
            _wait_for(lambda: first_config_logs("client0.log"))
            time.sleep(1.0)
        else:
            _wait_for(lambda: any(logs.glob("*/experiment.json")))
            time.sleep(1.0)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if moment == "measuring_idle_power":
            fake.__exit__(None, None, None)
    assert time.monotonic() - start < 15, "exit after an interrupt must be prompt"
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not wait_until_gone(our_processes() - before, timeout_s=5)
    if moment in ("deploying", "warming_up"):
        exp = only_experiment(logs)
        runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
        assert [(r["config_id"], r["status"]) for r in runs] == [("noop-r1-c1-b1", "interrupted")]


NODE_CONFIG_KEYS = {"name", "input_type", "model_image", "allocated_cpus", "cpus_per_replica", "slo",
                    "num_replicas", "gpus", "batch_size", "model"}  # the original's nine, and the registered model


def _load_like_the_original(directory: Path) -> list[dict]:
    """What the original driver's analysis code did: list the directory, json.load every file whose
    name contains 'results'."""
    out = []
    for name in sorted(os.listdir(directory)):
        if "results" in name:
            with open(os.path.join(directory, name)) as f:
                out.append(json.load(f))
    return out


def test_original_results_files_hold_the_original_keys_in_seconds(tmp_path, no_leftover_processes):
    proc = run_driver("-m", "noop", "-b", "1", "4", "-n", "2", "-d", "1.5", "--warmup", "0.5", "--idle_s", "0",
                      results=tmp_path)
    assert proc.returncode == 0, proc.stderr
    exp = only_experiment(tmp_path)
    files = _load_like_the_original(exp)
    assert len(files) == 2  # one per configuration, nothing else matches
    assert all(re.fullmatch(r"results-\d{6}_\d{6}\.json", n) for n in os.listdir(exp) if "results" in n)
    records = _records(exp)
    for data in files:
        (node,) = data["node_configs"]
        assert set(node) == NODE_CONFIG_KEYS and node["slo"] == 500_000  # microseconds, as the original
        record = records[data["clipper_bench"]["config_id"]]
        assert data["clipper_bench"]["status"] == "ok"
        assert node["batch_size"] == int(record["config_id"].rsplit("-b", 1)[1])
        assert len(data["client_metrics"]) == 2  # one dict per client, as with the original's -n
        assert data["clipper_metrics"]["histograms"]
        summary = record["summary"]
        every = []
        for client in data["client_metrics"]:
            assert len(client["thrus"]) == len(client["p99_lats"]) == len(client["mean_lats"]) == len(client["all_lats"])
            for lats, mean, p99 in zip(client["all_lats"], client["mean_lats"], client["p99_lats"], strict=True):
                assert len(lats) == 50 and mean == pytest.approx(np.mean(lats)) and p99 == pytest.approx(
                    np.percentile(lats, 99))
                every.extend(lats)
        every_ms = np.array(every) * 1000  # the original's plots printed value * 1000 as ms
        # the original's lists hold the answers that arrived in the window (a query sent before it may
        # be among them), the summary's latencies the queries sent in it: bound by the raw answers
        window = tuple(record["window_wall_ns"])
        raw = [ClientData.from_npz(str(exp / "configs" / f)) for f in record["raw_files"]]
        in_window = np.concatenate([(c.done_wall_ns[m] - c.start_wall_ns[m]) / 1e6 for c in raw for m in
                                    [(c.status == 0) & (c.done_wall_ns >= window[0]) & (c.done_wall_ns < window[1])]])
        assert 0 < every_ms.min() and every_ms.max() <= in_window.max() + 1e-6  # s -> ms rounding
        assert len(every) <= summary["num_completed"] < len(every) + 2 * 50
        assert np.percentile(every_ms, 50) == pytest.approx(summary["latency_ms"]["p50"], rel=0.1)
        # the record keeps the same keys in the same units, without the raw lists
        assert [set(c) for c in record["client_metrics"]] == [{"thrus", "p99_lats", "mean_lats"}] * 2
        assert record["client_metrics"][0]["mean_lats"] == data["client_metrics"][0]["mean_lats"]
        assert record["original_results_file"] in os.listdir(exp)


def test_kill_9_of_the_driver_leaves_no_process_and_no_live_file(tmp_path, no_leftover_processes):
    """The driver killed outright: its frontend, replicas, load clients and power sampler follow it
    within 2 s, and the sampler's live file goes with it."""
    import psutil

    args = [sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "-d", "30", "--warmup", "0", "--idle_s", "0",
            "--results_dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_until_measuring(tmp_path, "noop-r1-c1-b1", settle_s=0, driver=proc)
        # the sampler starts once the load clients are up, which on a busy machine takes a while
        assert descendants_titled(proc, "clipper-bench sampler"), "no sampler among the driver's descendants"
        configs = only_experiment(tmp_path) / "configs"
        while proc.poll() is None and not list(configs.glob("*.live.json")):
            time.sleep(0.05)  # the sampler's live file, written once it has a second of samples
        assert list(configs.glob("*.live.json")), "the sampler wrote no live file while the driver ran"
        family = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.kill()  # also when the test failed above: the driver's processes follow it
        proc.communicate(timeout=10)
    gone, alive = psutil.wait_procs(family, timeout=2.5)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline()[0] for p in alive]
    time.sleep(0.5)
    assert not list((only_experiment(tmp_path) / "configs").glob("*.live.json"))


def test_baseline_takes_its_own_flags_and_measures_baseline_s_per_batch_size(tmp_path, no_leftover_processes):
    cmd = [sys.executable, "-m", "clipper_bench", "baseline", "-m", "noop", "-b", "1", "8",
           "--baseline_s", "0.5", "--results_dir", str(tmp_path)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60  # 2 x 0.5 s measured, not -d's 120 s per batch size
    lines = [json.loads(x) for x in (only_experiment(tmp_path) / "baselines.ndjson").read_text().splitlines()]
    assert [line["batch_size"] for line in lines] == [1, 8] and all(line["throughput_qps"] > 0 for line in lines)
    refused = subprocess.run(cmd[:6] + ["-d", "5"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode == 2 and "unrecognized arguments: -d 5" in refused.stderr


def test_every_process_of_a_run_carries_the_experiment_id_in_its_title(tmp_path, no_leftover_processes):
    import psutil

    proc = subprocess.Popen([sys.executable, str(DRIVER), "-m", "sleep", "--sleep_ms", "5", "-b", "1", "-d", "4",
                             "--warmup", "1", "--idle_s", "0", "--results_dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        first = proc.stdout.readline()  # "experiment <dir>/<id>: ..."
        experiment_id = first.split(":")[0].rsplit("/", 1)[-1]
        titles: set[str] = set()
        # as long as the run goes on (its load clients start when a busy machine lets them)
        while proc.poll() is None and not {"frontend", "replica", "loadgen"} <= {t.split()[1] for t in titles}:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    title = " ".join(child.cmdline()).strip()
                except psutil.Error:
                    continue
                if title.startswith("clipper-bench "):
                    titles.add(title)
            time.sleep(0.2)
        assert {"frontend", "replica", "loadgen"} <= {t.split()[1] for t in titles}, titles
        assert all(t.endswith(f"[{experiment_id}]") for t in titles), titles
    finally:
        proc.communicate(timeout=60)


# -- issue 28, items 7 and 8: windows with nothing in them end the line, never the sweep


def test_an_empty_window_is_described_in_words_not_a_traceback():
    """Item 7: a window too short to have a length has no throughput (None); item 8: an open-loop
    window no query was due in has lateness with kept_up None. Neither may stop the sweep."""
    from clipper_bench.sweep.runner import describe_line

    empty = dict.fromkeys(("mean", "p50", "p90", "p95", "p99", "p999", "max"))
    line = {"throughput_qps": None, "latency_ms": empty, "num_errors": 0, "num_defaults": 0, "num_unanswered": 0,
            "serving_efficiency": None, "status": "no_answers", "reason": "no query was sent",
            "load": {"mode": "open", "rate_qps": 0.2, "arrival": "constant",
                     "lateness": {"p50_ms": None, "p99_ms": None, "max_ms": None, "share_over_1ms": None,
                                  "kept_up": None}},
            "power": {"joules": None, "avg_w": None, "joules_per_query": None}}
    text = describe_line(line)
    assert "no throughput (empty window)" in text and "no successful answers" in text
    assert "offered 0.2 q/s constant" in text and "NOT keep up" not in text


def _both_recorded(proc: subprocess.CompletedProcess, results: Path, ids: list[str]) -> list[dict]:
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    lines = [json.loads(x) for x in (only_experiment(results) / "runs.ndjson").read_text().splitlines()]
    assert [line["config_id"] for line in lines] == ids
    for k, cid in enumerate(ids, 1):
        assert f"[{k}/{len(ids)}] {cid} ..." in proc.stdout and f"[{k}/{len(ids)}] {cid}: " in proc.stdout
    return lines


def test_a_tiny_window_records_both_configurations_and_the_sweep_goes_on(tmp_path, no_leftover_processes):
    """Item 7: -d 1e-9 is refused in one line; the shortest window allowed (0.1 s), here one that no
    query is sent in (the closed loop waits on a warm-up query of a 1 s model), is recorded for both
    batch sizes and described in a line."""
    refused = run_driver("-m", "noop", "-d", "1e-9", results=tmp_path / "refused", timeout=60)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--duration must be at least 0.1 seconds, got 1e-09" in refused.stderr
    assert not (tmp_path / "refused").exists()
    proc = run_driver("-m", "sleep", "--sleep_ms", "1000", "--concurrency", "1", "-b", "1", "2", "-d", "0.1",
                      "--warmup", "0.3", "--idle_s", "0", results=tmp_path / "results")
    lines = _both_recorded(proc, tmp_path / "results", ["sleep-r1-c1-b1-conc1", "sleep-r1-c1-b2-conc1"])
    assert lines[0]["status"] == "no_answers" and lines[0]["latency_ms"]["p50"] is None


def test_a_low_open_loop_rate_records_every_configuration(tmp_path, no_leftover_processes):
    """Item 8: at 0.2 q/s the 3 s windows hold no scheduled query (lateness kept_up None); the run
    used to crash after the first configuration, reading None as 'could not keep up'."""
    proc = run_driver("-m", "noop", "--rate", "0.2", "-d", "3", "-b", "1", "2", "--warmup", "1", "--idle_s", "0",
                      results=tmp_path)
    lines = _both_recorded(proc, tmp_path, ["noop-r1-c1-b1-rate0.2", "noop-r1-c1-b2-rate0.2"])
    assert all(line["load"]["lateness"]["kept_up"] is None for line in lines)
    assert "NOT keep up" not in proc.stdout
