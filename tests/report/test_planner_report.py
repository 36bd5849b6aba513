"""The report's planner page, from plan files a real `plan --validate` wrote for two bounds in one
command (two sleep stages profiled by `run`, small windows), read back with no engine running."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clipper_bench.report.table import significant
from tests.conftest import REPO

PIPELINE = {"name": "two", "stages": {"a": {"model": "sleep", "options": {"sleep_ms": 20}},
                                      "b": {"model": "sleep", "input": "a", "options": {"sleep_ms": 10}}}}
BOUNDS = ("60", "150")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipper_bench", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> tuple[Path, Path]:
    """(the profiles, the plan directory): both sleep stages profiled at batch 1 and 2, then one
    `plan --slo_p99_ms 60,150 --validate` (each plan and its coarse baseline measured twice)."""
    tmp = tmp_path_factory.mktemp("planner_report")
    for ms in ("20", "10"):
        proc = cli("run", "-m", "sleep", "--sleep_ms", ms, "-b", "1", "2", "-d", "1.5", "--warmup", "0.3",
                   "--idle_s", "0", "--results_dir", str(tmp / "prof"))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    spec = tmp / "two.yaml"
    spec.write_text(json.dumps(PIPELINE))
    proc = cli("plan", str(tmp / "prof"), "--pipeline", str(spec), "--rate", "60", "--slo_p99_ms", ",".join(BOUNDS),
               "--oversubscribe", "--validate", "-d", "1", "--warmup", "0.3", "--repeats", "2",
               "--results_dir", str(tmp / "plans"))
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]  # 1: a bound missed (a busy machine)
    assert "cost against the p99 bound: 60 ms:" in proc.stdout, proc.stdout
    return tmp / "prof", tmp / "plans"


def _rows(markdown: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|") and not line.startswith("| ---")]


def _plans(plans: Path) -> dict[str, dict]:
    return {b: yaml.safe_load((plans / f"plan-two-slo{b}.yaml").read_text()) for b in BOUNDS}


def test_one_command_writes_a_plan_file_per_bound(planned):
    _, plans = planned
    for bound, doc in _plans(plans).items():
        assert doc["planner"]["inputs"]["slo_p99_ms"] == float(bound)
        if doc["planner"]["plan"]["found"]:
            assert doc["validation"]["plan"]["experiment"].startswith(str(plans / f"slo{bound}" / "validate-plan"))


def test_the_planner_page_carries_the_plan_files_numbers(planned, tmp_path):
    _, plans = planned
    proc = cli("report", str(plans), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    md = (tmp_path / "report.md").read_text()
    assert "## Planner" in md and "### p99 bound 60 ms: two at 60 q/s (poisson arrivals)" in md
    rows = _rows(md)
    for bound, doc in _plans(plans).items():
        for which in ("plan", "coarse"):
            summary = doc["planner"][which]
            if not summary or not summary["found"]:
                continue
            (row,) = [r for r in rows if r[:2] == [bound, "60"] and r[2].startswith(which)]
            stages = summary["stages"]
            assert row[4] == str(sum(s["replicas"] * s["cpus_per_replica"] for s in stages.values()))
            assert row[6] == significant(summary["predicted"]["p99_ms"])
            measured = doc["validation"].get(which) or doc["validation"]["plan"]  # coarse that is the plan itself
            assert row[7].startswith(significant(measured["p99_ms"]["mean"]))
            assert row[9] == ("yes" if measured["meets_slo"] else "MISSES")
            for name, s in stages.items():
                assert [which, name, str(s["replicas"]), str(s["batch_size"]), str(s["cpus_per_replica"]), "no"] in [
                    r[:6] for r in rows]
    for stem in ("planner_cost_vs_slo", "planner_predicted_vs_measured"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10_000 and f"]({stem}.png)" in md
    assert len(re.findall(rb"/MediaBox", (tmp_path / "report.pdf").read_bytes())) >= 5  # summary, 2 plans, 2 figures


def test_plan_files_beside_experiments_add_a_section(planned, tmp_path):
    prof, plans = planned
    proc = cli("report", str(prof), str(plans / "plan-two-slo150.yaml"), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    md = (tmp_path / "report.md").read_text()
    assert "## Configurations" in md and "## Planner" in md and "plan-two-slo60.yaml" not in md
