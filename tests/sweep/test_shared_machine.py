"""Runs that share a machine (issue 25): two drivers started together, with the default port flags
and one results directory, each get their own ports and their own experiment directory."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from clipper_bench.results import store as store_module
from clipper_bench.results.store import ExperimentStore
from tests.conftest import REPO

DRIVER = REPO / "model_composition" / "image_driver_1" / "driver.py"


def test_stores_made_in_the_same_second_in_one_directory_get_their_own(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module.time, "strftime", lambda fmt, *a: "250101_120000")  # one second for all
    barrier = threading.Barrier(8)
    made: list[ExperimentStore] = []

    def make() -> None:
        barrier.wait()
        made.append(ExperimentStore(tmp_path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sorted(s.experiment_id for s in made)
    assert ids == sorted(["250101_120000"] + [f"250101_120000-{n}" for n in range(2, 9)])
    assert all(s.path.is_dir() for s in made)  # each claimed its directory when it was made
    made[0].create({"experiment_id": made[0].experiment_id})  # create() fills the claimed directory
    assert (made[0].path / "experiment.json").exists()
    resumed = ExperimentStore(tmp_path, made[0].experiment_id)  # --resume names an existing one
    assert resumed.path == made[0].path
    assert sorted(p.name for p in tmp_path.iterdir()) == ids  # and makes none


def _records(exp: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((exp / "configs").glob("*.json"))
            if not p.name.endswith(".power_samples.json")]


def test_two_runs_started_together_with_default_ports_both_measure(tmp_path, no_leftover_processes):
    """Both with the default --metrics_port (1390): whichever finds it taken moves to a free port;
    the frontends' other ports are the OS's choice. Both sweeps are clean, in their own directories."""
    argv = [sys.executable, str(DRIVER), "-m", "noop", "-b", "1", "2", "-d", "1", "--warmup", "0.3",
            "--idle_s", "0", "--results_dir", str(tmp_path)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-2000:] + err[-2000:]
    dirs = [next(line.split()[2] for line in out.splitlines() if line.startswith("results in "))
            for out, _ in outputs]
    assert dirs[0] != dirs[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(d).name for d in dirs)
    ports = []
    for d in dirs:
        runs = [json.loads(line) for line in (Path(d) / "runs.ndjson").read_text().splitlines()]
        assert [(r["config_id"], r["status"]) for r in runs] == [("noop-r1-c1-b1", "ok"), ("noop-r1-c1-b2", "ok")]
        (record,) = {json.dumps(r["deployment"]["ports"]) for r in _records(Path(d))}  # one deployment
        ports.append(json.loads(record))
    assert all(p["metrics"] for p in ports)
