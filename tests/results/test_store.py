"""The experiment directory's files: the original driver's results files beside our records."""

from __future__ import annotations

import os

from clipper_bench.results.status import RunStatus, classify, classify_windows
from clipper_bench.results.store import ExperimentStore


def _record(config_id: str, ended_at: float) -> dict:
    return {"config_id": config_id, "ended_at": ended_at, "node_configs": [{"name": "noop"}],
            "clipper_metrics": None, "status": RunStatus.OK, "reason": None}


def test_one_results_file_per_configuration_and_a_rerun_replaces_its_own(tmp_path):
    store = ExperimentStore(tmp_path)
    store.create({"experiment_id": store.experiment_id})
    t = 1_700_000_000.0
    for cid in ("a", "b"):  # two configurations ending in the same second get different names
        rec = _record(cid, t)
        rec["original_results_file"] = store.write_original_results(rec, [{"thrus": []}])
        store.write_config(cid, rec)
    first = sorted(n for n in os.listdir(store.path) if "results" in n)
    assert len(first) == 2 and first[0] != first[1]
    rerun = _record("a", t + 100)
    name = store.write_original_results(rerun, [{"thrus": [1.0]}])
    now = sorted(n for n in os.listdir(store.path) if "results" in n)
    assert len(now) == 2 and name in now  # a's earlier file is gone, b's stays


def _summary(sent, completed, defaults=0, errors=0, unanswered=0):
    return {"num_sent": sent, "num_completed": completed, "num_defaults": defaults, "num_errors": errors,
            "num_unanswered": unanswered}


def test_statuses_say_what_was_measured():
    assert classify(_summary(100, 100), []) == (RunStatus.OK, None)
    assert classify(_summary(100, 99, errors=1), [])[0] is RunStatus.OK  # 1% is the limit
    status, reason = classify(_summary(100, 98, errors=1, unanswered=1), [])
    assert status is RunStatus.DEGRADED and "2 of 100" in reason
    status, reason = classify(_summary(100, 90), [{"what": "replica noop#1 (pid 7) killed by signal 9"}])
    assert status is RunStatus.DEGRADED and "killed by signal 9" in reason
    assert classify(_summary(0, 0), [])[0] is RunStatus.NO_ANSWERS
    status, reason = classify(_summary(5, 0, defaults=5), [])  # the queue, not a slow model: overloaded
    assert status is RunStatus.OVERLOADED and "--slo_ms" in reason
    status, reason = classify(_summary(5, 0, defaults=3, errors=2), [])
    assert status is RunStatus.NO_ANSWERS and "3 SLO defaults, 2 errors, 0 unanswered" in reason
    assert [s for s in RunStatus if s.clean] == [RunStatus.OK]  # only ok, whatever statuses are added


def test_a_repeated_configuration_is_ok_only_when_every_repeat_is():
    assert classify_windows([_summary(100, 100), _summary(100, 100)], []) == (RunStatus.OK, None)
    status, reason = classify_windows([_summary(100, 100), _summary(100, 90, errors=10), _summary(0, 0)], [])
    assert status is RunStatus.DEGRADED and reason.startswith("repeat 2 of 3: 10 of 100")
    assert classify_windows([_summary(100, 90, errors=10)], []) == classify(_summary(100, 90, errors=10), [])


def test_bad_runs_lines_are_skipped_with_a_warning_naming_file_and_line(tmp_path):
    import json
    import warnings

    import hypothesis.strategies as st
    from hypothesis import given, settings

    from clipper_bench.results.store import read_run_lines

    good = {"config_id": "noop-r1-c1-b1", "status": "ok", "throughput_qps": 1.0, "latency_ms": {"p99": 1.0}}
    path = tmp_path / "runs.ndjson"

    @settings(max_examples=80, deadline=None)
    @given(st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
                     st.just(json.dumps(good)[:25]), st.just('{"status": "ok"}'), st.just('{"config_id": 3}'),
                     st.just('{"config_id": "a", "status": "ok", "latency_ms": "x"}'),
                     st.just('{"config_id": "a", "status": "ok", "throughput_qps": "fast"}')))
    def check(garbage):
        garbage = " ".join(garbage.splitlines())
        path.write_text(json.dumps(good) + "\n" + garbage + "\n" + json.dumps(good) + "\n", errors="replace")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lines = read_run_lines(path)
        assert lines[0] == good and lines[-1] == good and len(lines) in (2, 3)
        if len(lines) == 2 and garbage.strip():  # the middle line was dropped: the warning says where
            assert [str(w.message) for w in caught] == [f"{path}:2: not a readable configuration line; skipped"]
        for line in lines:
            assert isinstance(line["config_id"], str) and isinstance(line.get("latency_ms") or {}, dict)

    check()


def test_load_results_and_report_read_past_a_wrong_typed_line(tmp_path):
    import json
    import subprocess
    import sys

    import pytest

    import clipper_bench
    from tests.conftest import REPO

    exp = tmp_path / "exp"
    (exp / "configs").mkdir(parents=True)
    (exp / "experiment.json").write_text(json.dumps({"experiment_id": "exp", "host": {}}))
    good = {"config_id": "noop-r1-c1-b1", "model_name": "noop", "status": "ok", "num_replicas": 1, "batch_size": 1,
            "cpus_per_replica": 1, "throughput_qps": 10.0, "latency_ms": {"p50": 1.0, "p99": 2.0},
            "engine": "local", "transport": "binary", "framework": "torch", "precision": "fp32", "gpus": [],
            "num_completed": 100, "num_errors": 0, "num_defaults": 0, "num_unanswered": 0, "power": None,
            "reason": None, "error": None}
    (exp / "runs.ndjson").write_text(json.dumps(good) + "\n" + json.dumps({**good, "latency_ms": "x"}) + "\n"
                                     + '{"config_id": "noop-r1-c1-b2", "sta')
    (exp / "configs" / "noop-r1-c1-b1.json").write_text('{"settings": {"tran')  # truncated record
    with pytest.warns(UserWarning):
        df = clipper_bench.load_results(exp)
    assert list(df.config_id) == ["noop-r1-c1-b1"] and df.p99_ms.iloc[0] == 2.0
    proc = subprocess.run([sys.executable, "-m", "clipper_bench", "report", str(exp)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "runs.ndjson:2: not a readable configuration line" in proc.stderr


def test_a_damaged_raw_file_is_a_clear_results_error(tmp_path):
    import json

    import pytest

    from clipper_bench.results.frame import ResultsError, load_queries

    exp = tmp_path / "exp"
    (exp / "configs").mkdir(parents=True)
    (exp / "experiment.json").write_text("{}")
    (exp / "configs" / "c.json").write_text(json.dumps({"raw_files": ["c.client0.queries.npz"],
                                                        "window_wall_ns": [0, 1]}))
    (exp / "configs" / "c.client0.queries.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ResultsError, match=r"c\.client0\.queries\.npz .*damaged"):
        load_queries(exp, "c")


def test_a_full_disk_keeps_every_line_whole_and_says_so_in_one_line(tmp_path, no_leftover_processes):
    """Results on a 200 KiB tmpfs (root only): the sweep stops with one line naming the file and
    the fix, every runs.ndjson line is whole, no temporary file is left, nothing outlives it."""
    import json
    import os
    import subprocess
    import sys

    import pytest

    from tests.conftest import REPO

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("tmpfs could not be mounted here")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "clipper_bench", "run", "-m", "sleep", "--sleep_ms", "5", "-b", "1", "2", "4", "8",
             "16", "-d", "2", "--warmup", "0.5", "--idle_s", "0", "--metrics_port", "0",
             "--results_dir", str(disk / "res")],
            capture_output=True, text=True, cwd=REPO, timeout=300)
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        # one line says it; warnings about the machine (another run, a late load generator) may precede it
        errors = [x for x in proc.stderr.strip().splitlines() if "WARNING" not in x]
        (line,) = errors
        assert "No space left on device" in line and "rerun with --resume" in line
        runs = list(disk.glob("res/*/runs.ndjson"))
        for path in runs:
            for text in path.read_text().splitlines():
                json.loads(text)  # every line whole
        assert not [p for p in disk.rglob("*") if ".tmp" in p.name]
    finally:
        subprocess.run(["umount", str(disk)])


def test_an_append_after_a_torn_last_line_starts_a_line_of_its_own(tmp_path):
    """Issue 28 item 1: a runs.ndjson whose last line was cut short (a kill, a full disk) gets a newline
    before the next line, which stays whole and readable; the torn one is skipped with a warning."""
    import json

    import pytest

    from clipper_bench.results.store import RUNS_FILE

    store = ExperimentStore(tmp_path)
    store.create({"experiment_id": store.experiment_id})
    good = {"config_id": "noop-r1-c1-b1", "status": "ok", "throughput_qps": 1.0, "latency_ms": {"p99": 1.0}}
    (store.path / RUNS_FILE).write_text(json.dumps(good) + "\n" + json.dumps(good)[:30])  # torn: no newline
    store.append_run({**good, "config_id": "noop-r1-c1-b2"})
    store.append_run({**good, "config_id": "noop-r1-c1-b4"})
    text = (store.path / RUNS_FILE).read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 4
    with pytest.warns(UserWarning, match=r"runs\.ndjson:2: not a readable configuration line"):
        lines = store.runs()
    assert [line["config_id"] for line in lines] == ["noop-r1-c1-b1", "noop-r1-c1-b2", "noop-r1-c1-b4"]


def test_missing_files_says_why_a_configuration_recorded_ok_is_not_whole(tmp_path):
    """Issue 28 item 4: what --resume checks before it skips a configuration as measured."""
    store = ExperimentStore(tmp_path)
    store.create({"experiment_id": store.experiment_id})
    assert store.missing_files("c") == "configs/c.json is missing"
    store.write_config("c", {"status": "ok", "raw_files": ["c.client0.queries.npz"]})
    assert store.missing_files("c") == "its raw per-query file configs/c.client0.queries.npz is missing"
    (store.configs_dir / "c.client0.queries.npz").write_bytes(b"npz")
    assert store.missing_files("c") is None
    store.write_config("c", {"status": "degraded", "raw_files": ["c.client0.queries.npz"]})
    assert store.missing_files("c") == "configs/c.json does not record it ok"
    store.config_path("c").write_text('{"status": "o')
    assert store.missing_files("c") == "configs/c.json is not readable JSON"
