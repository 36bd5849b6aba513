"""The experiment directory's files: the original driver's results files beside our records."""

from __future__ import annotations

import os

from clipper_bench.results.status import RunStatus, classify
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
    status, reason = classify(_summary(5, 0, defaults=5), [])
    assert status is RunStatus.NO_ANSWERS and "--slo_ms" in reason
    status, reason = classify(_summary(5, 0, defaults=3, errors=2), [])
    assert status is RunStatus.NO_ANSWERS and "3 SLO defaults, 2 errors, 0 unanswered" in reason
    assert [s.clean for s in RunStatus] == [True, False, False, False, False]
