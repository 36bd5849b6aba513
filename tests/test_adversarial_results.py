"""Issue 28 items 1, 3, 4, 5 and 6: results stay whole and readable, whatever cuts a run short, and
``--resume`` trusts the files on disk, not the lines that say they exist."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from clipper_bench.results.store import ExperimentStore, ResultsWriteError, read_run_lines
from tests.conftest import REPO

DRIVER = REPO / "model_composition" / "image_driver_1" / "driver.py"
NOOP = ["-m", "noop", "-d", "1", "--warmup", "0", "--idle_s", "0"]


def driver(*args: str, cwd: Path = REPO, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DRIVER), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def only_experiment(results: Path) -> Path:
    (exp,) = [p for p in results.iterdir() if p.is_dir()]
    return exp


def wait_for(path_glob: Path, pattern: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    """Wait until ``pattern`` matches under ``path_glob`` (while ``proc`` runs)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the driver ended (exit {proc.returncode}) first: {proc.stderr.read()[-2000:]}")
        if path_glob.exists() and list(path_glob.glob(pattern)):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing matched {path_glob}/{pattern} within {timeout_s:.0f} s")


def test_resume_after_a_torn_line_and_a_deleted_record_from_a_relative_results_dir(tmp_path, no_leftover_processes):
    """Items 1, 4, 5: the last runs.ndjson line torn, a configuration's record deleted, and --resume
    given the same results directory spelled relative: both configurations are measured again, every
    new line is whole, and every configuration's queries load."""
    from clipper_bench.results.frame import load_queries

    first = driver(*NOOP, "-b", "1", "2", "--results_dir", str(tmp_path / "results"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    exp = only_experiment(tmp_path / "results")
    runs = exp / "runs.ndjson"
    b1, b2 = runs.read_text().splitlines()
    runs.write_text(b1 + "\n" + b2[: len(b2) // 2])  # killed mid-line: no newline at the end
    (exp / "configs" / "noop-r1-c1-b1.json").unlink()  # the line still says ok

    resumed = driver(*NOOP, "-b", "1", "2", "--results_dir", "results", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"experiment {exp}" in resumed.stdout or f"experiment results/{exp.name}" in resumed.stdout
    assert ("noop-r1-c1-b1: recorded ok in runs.ndjson, but configs/noop-r1-c1-b1.json is missing: "
            "measuring it again") in resumed.stdout
    assert "0 already measured" in resumed.stdout and "already measured, skipped" not in resumed.stdout
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lines = read_run_lines(runs)
    assert [str(w.message) for w in caught] == [f"{runs}:2: not a readable configuration line; skipped"]
    assert [(line["config_id"], line["status"]) for line in lines] == [
        ("noop-r1-c1-b1", "ok"), ("noop-r1-c1-b1", "ok"), ("noop-r1-c1-b2", "ok")]
    for cid in ("noop-r1-c1-b1", "noop-r1-c1-b2"):
        assert len(load_queries(exp, cid)) > 0


def test_resume_matches_the_same_directory_however_it_is_spelled(tmp_path, monkeypatch):
    """Item 5, alone: the settings are compared with the results directory left out (the experiment
    lies in it) and other paths resolved."""
    import dataclasses

    from clipper_bench.sweep.runner import find_resumable
    from clipper_bench.sweep.settings import RunSettings

    monkeypatch.chdir(tmp_path)
    settings = RunSettings(model_name="noop", results_dir=Path("results"))
    exp = tmp_path / "results" / "261201_120000"
    exp.mkdir(parents=True)
    (exp / "experiment.json").write_text(json.dumps({"settings": settings.to_json()}))
    for spelled in (tmp_path / "results", Path("./results"), tmp_path / "results" / ".." / "results"):
        assert find_resumable(dataclasses.replace(settings, results_dir=spelled)) == exp.name
    absolute_models = dataclasses.replace(settings, results_dir=tmp_path / "results",
                                          models_dir=(tmp_path / "models").resolve())
    assert find_resumable(absolute_models) == exp.name  # "models" then, /abs/models now: the same directory


@pytest.mark.parametrize("sig, reason", [(signal.SIGTERM, "interrupted (signal SIGTERM)"),
                                         (signal.SIGINT, "interrupted (signal SIGINT, Ctrl-C)")])
def test_an_interrupted_repeats_run_keeps_its_completed_repeats_and_no_stray_file(tmp_path, sig, reason,
                                                                                  no_leftover_processes):
    """Item 3 (and item 25's reason): SIGTERM or Ctrl-C during repeat 4 of 5 keeps the first window and
    repeats 2 and 3 in the record, with their statistics, and leaves no repeat's raw file behind."""
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, str(DRIVER), *NOOP, "-b", "1", "--repeats", "5",
                             "--results_dir", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_for(results, "*/logs/noop-r1-c1-b1/repeat4/client*.log", proc)
        time.sleep(0.5)  # the fourth window is running
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    exp = only_experiment(results)
    record = json.loads((exp / "configs" / "noop-r1-c1-b1.json").read_text())
    assert record["status"] == "interrupted" and record["reason"] == reason
    assert len(record["repeats"]) == 3 and all(r["throughput_qps"] > 0 for r in record["repeats"])
    assert record["repeat_stats"]["throughput_qps"]["n"] == 3
    (line,) = read_run_lines(exp / "runs.ndjson")
    assert line["status"] == "interrupted" and line["reason"] == reason and line["repeat_stats"] is not None
    assert sorted(p.name for p in (exp / "configs").iterdir()) == [
        "noop-r1-c1-b1.client0.queries.npz", "noop-r1-c1-b1.json", "noop-r1-c1-b1.power_samples.json"]
    assert err.strip().splitlines()[-1].startswith("clipper-bench: interrupted")


def _filled(disk: Path) -> None:
    """Fill ``disk`` to the last byte."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_disk_that_fills_while_a_configuration_is_measured(tmp_path, no_leftover_processes):
    """Item 6 on a real full disk (a tmpfs, root only): exit 3, not 2; one line naming the configuration
    that was lost and why; the configuration before it whole; no temporary file left."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("tmpfs could not be mounted here")
    try:
        proc = subprocess.Popen([sys.executable, str(DRIVER), *NOOP, "-d", "2", "-b", "1", "2",
                                 "--results_dir", str(disk / "res")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            wait_for(disk / "res", "*/logs/noop-r1-c1-b2/client*.log", proc)
            _filled(disk)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 3 and "Traceback" not in err, out[-2000:] + err[-2000:]
        line = err.strip().splitlines()[-1]
        assert line.startswith("clipper-bench: error: cannot write ") and "No space left on device" in line
        assert "configuration noop-r1-c1-b2 " in line and "rerun with --resume" in line
        exp = only_experiment(disk / "res")
        lines = read_run_lines(exp / "runs.ndjson")
        assert (lines[0]["config_id"], lines[0]["status"]) == ("noop-r1-c1-b1", "ok")
        if len(lines) == 2:  # the small line fitted where the record did not: it says so
            assert lines[1]["config_id"] == "noop-r1-c1-b2" and lines[1]["status"] == "failed"
        assert not [p for p in disk.rglob("*") if ".tmp" in p.name]
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def _runner_with_store(tmp_path: Path):
    from clipper_bench.sweep.runner import ExperimentRunner

    runner = ExperimentRunner.__new__(ExperimentRunner)  # only what writing results needs
    runner.store = ExperimentStore(tmp_path)
    runner.store.create({"experiment_id": runner.store.experiment_id})
    runner._run_line = lambda point, record: {"config_id": point.config_id, "status": record["status"],
                                              "reason": record["reason"], "error": None, "latency_ms": None,
                                              "throughput_qps": 10.0, "num_completed": 10}
    return runner


def _no_space_for(name: str, monkeypatch) -> None:
    """Make atomic writes of files named ``name`` fail as on a full disk (the narrowest point)."""
    from clipper_bench.results import store

    real = store.atomic_write_text

    def write(path: Path, text: str) -> None:
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, text)

    monkeypatch.setattr(store, "atomic_write_text", write)


def test_a_record_that_cannot_be_written_still_gets_its_line(tmp_path, monkeypatch):
    """Item 6, in process: the record does not fit, the line does: the line says failed and why, and
    the error names the configuration."""
    runner = _runner_with_store(tmp_path)
    _no_space_for("c.json", monkeypatch)
    record = {"config_id": "c", "status": "failed", "reason": "x", "error": "x"}
    with pytest.raises(ResultsWriteError) as caught:
        runner._write_results(SimpleNamespace(config_id="c"), record, [])
    assert "configuration c (failed) has no record; its runs.ndjson line says so (failed)" in str(caught.value)
    assert "No space left on device" in str(caught.value)
    (line,) = runner.store.runs()
    assert line["status"] == "failed"
    assert line["reason"] == "measured failed, but its files could not be written: c.json: No space left on device"


def test_a_configuration_with_nothing_written_is_named_in_the_error(tmp_path, monkeypatch):
    runner = _runner_with_store(tmp_path)
    _no_space_for("c.json", monkeypatch)

    def full(*args, **kwargs):
        raise ResultsWriteError(runner.store.path / "runs.ndjson", OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(runner.store, "append_run", full)
    with pytest.raises(ResultsWriteError, match=r"configuration c \(failed\) is lost: neither its record nor its "
                                                r"runs\.ndjson line"):
        runner._write_results(SimpleNamespace(config_id="c"),
                              {"config_id": "c", "status": "failed", "reason": "x", "error": "x"}, [])


def test_a_results_write_error_exits_3_and_a_usage_error_2():
    from clipper_bench.cli import _exit_code
    from clipper_bench.common.errors import UsageError

    full = ResultsWriteError(Path("/x/runs.ndjson"), OSError(errno.ENOSPC, "No space left on device"))
    try:
        try:
            raise full
        except ResultsWriteError as exc:
            raise UsageError(str(exc)) from None  # as the command layers turn it into one line
    except UsageError as wrapped:
        assert _exit_code(wrapped) == 3
    assert _exit_code(UsageError("bad flag")) == 2
