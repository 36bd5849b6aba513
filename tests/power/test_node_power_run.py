"""``clipper-bench run --power_meter``: a wall meter and a Redfish BMC beside a (fake) GPU, through the
record, the run line, ``load_results`` and the report; the BMC's password in no file of the results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from clipper_bench.report.build import build_report
from clipper_bench.results.frame import load_results
from tests.conftest import REPO
from tests.power import fake_pynvml
from tests.power.fake_bmc import PASSWORD, USER, RedfishService, write_meter


def test_run_records_node_energy_beside_the_gpu_and_never_the_password(tmp_path, no_leftover_processes):
    state = tmp_path / "nvml.json"
    fake_pynvml.write_state(state, [{"watts": 250.0}])
    env = {**os.environ, "CLIPPER_BENCH_NVML_MODULE": "tests.power.fake_pynvml", "FAKE_NVML_STATE": str(state),
           "PYTHONPATH": str(REPO), "CLIPPER_BENCH_REDFISH_USER": USER, "CLIPPER_BENCH_REDFISH_PASSWORD": PASSWORD}
    meter = f"meter:{sys.executable} {write_meter(tmp_path)} 0.2 0 {tmp_path / 'meter.pid'}"
    results = tmp_path / "results"
    with RedfishService(refresh_s=0.3) as bmc:
        proc = subprocess.run(
            [sys.executable, "-m", "clipper_bench", "run", "-m", "noop", "-g", "0", "-b", "2", "-d", "2.5",
             "--warmup", "0.5", "--idle_s", "1.5", "--power_interval_ms", "50", "--metrics_port", "0",
             "--powercap_root", str(tmp_path / "none"), "--power_meter", meter, f"redfish:{bmc.url}",
             "--results_dir", str(results)], capture_output=True, text=True, cwd=REPO, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "whole node" in proc.stdout, proc.stdout
    print(proc.stdout)
    (exp,) = results.iterdir()
    idle = json.loads((exp / "experiment.json").read_text())["idle_power"]
    assert {"node:meter:psu1", "node:meter:psu2", "node:redfish", "gpu0"} <= set(idle["watts"])
    power = json.loads((exp / "configs" / "noop-r1-c1-b2.json").read_text())["power"]
    assert power["energy_channels"] == ["gpu0"]  # the node's channels are not among the parts
    assert power["channels"]["gpu0"]["avg_w"] == pytest.approx(250.0, rel=0.05)
    assert power["node_source"] == "meter" and set(power["node"]["meters"]) == {"meter", "redfish"}
    assert power["node_energy_per_query_j"] is not None, power["node_problem"]
    assert power["node_energy_per_query_j"] > power["joules_per_query"]  # the node includes the GPU
    assert power["cross_check"]["gpu_w"] == pytest.approx(250.0, rel=0.05)
    frame = load_results(exp)
    assert frame["node_energy_per_query_j"].iloc[0] == pytest.approx(power["node_energy_per_query_j"])
    assert frame["gpu_w"].iloc[0] == pytest.approx(power["cross_check"]["gpu_w"])
    report = build_report([exp], tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Whole-node power" in markdown and report.node_power_rows[0][0] == "noop-r1-c1-b2"
    for folder in (results, tmp_path / "report"):
        for path in (p for p in folder.rglob("*") if p.is_file()):
            assert PASSWORD.encode() not in path.read_bytes(), path
