"""The results layout, written atomically.

::

    <results_dir>/<experiment_id>/
        experiment.json            command line, settings, host, package versions
        runs.ndjson                one line per configuration, appended when it ends
        baselines.ndjson           raw in-process speed per batch size (run --baseline, baseline)
        results-%y%m%d_%H%M%S.json the original driver's file of each measured configuration (seconds)
        configs/<config_id>.json   the original driver's keys plus "summary"
        configs/<config_id>.client<k>.queries.npz   raw per-query data of each client
        configs/<config_id>.power_samples.json      power, energy and CPU-use time series
        idle_power_samples.json    the idle measurement's time series
        logs/<config_id>/          one log file per process of that configuration
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from .records import ClientMetrics, original_client_metrics


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` as indented JSON, atomically (see :func:`atomic_write_text`)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info(gpu_names: list[str]) -> dict[str, Any]:
    """Facts about this machine that decide how numbers compare."""
    versions = {}
    for dist in ("clipper-bench", "clipper_admin", "pyzmq", "aiohttp", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "gpus": gpu_names,
        "packages": versions,
    }


class ResultsWriteError(OSError):
    """A results file could not be written (a full disk, a lost mount); what was written before
    stays whole and readable."""

    def __init__(self, path: Path, exc: OSError, lost: str | None = None) -> None:
        """``lost``: what this failure cost, when it cost more than the file (a configuration's record)."""
        self.path = path
        super().__init__(exc.errno, f"cannot write {path} ({exc.strerror or exc})" + (f"; {lost}" if lost else "")
                         + ": free space there (or pass --results_dir elsewhere) and rerun with --resume; every "
                           "configuration recorded before is intact")

    def __str__(self) -> str:
        return str(self.strerror)


# Every file name of an experiment, in this one place (readers and writers use these).
EXPERIMENT_FILE = "experiment.json"  # settings, core plan, configurations, host, idle power
RUNS_FILE = "runs.ndjson"  # one line per configuration
BASELINES_FILE = "baselines.ndjson"  # raw in-process speed per batch size
SWEEP_FILE = "sweep.yaml"  # the sweep, resolved, as `run --config` takes it
CONFIGS_DIR = "configs"  # one record per configuration, its raw per-query data and power samples
LOGS_DIR = "logs"  # every process's log, per configuration


def record_path(experiment: Path, config_id: str) -> Path:
    """Where configuration ``config_id``'s record is."""
    return Path(experiment) / CONFIGS_DIR / f"{config_id}.json"


class ExperimentStore:
    """One experiment's directory."""

    def __init__(self, results_dir: Path, experiment_id: str | None = None) -> None:
        """The experiment ``experiment_id`` (``--resume``: one that exists), or a new one: its id is the
        time to the second, ``-2``, ``-3``, ... after it when taken, and its directory is made here,
        atomically, so that runs started in the same second in one results directory never share it."""
        self.experiment_id = experiment_id or self._claim_new(Path(results_dir))
        self.path = Path(results_dir) / self.experiment_id
        self.configs_dir = self.path / CONFIGS_DIR
        self.logs_dir = self.path / LOGS_DIR

    @staticmethod
    def _claim_new(results_dir: Path) -> str:
        """Make a new experiment's directory (mkdir fails if another run made it first) and return its id."""
        stamp = time.strftime("%y%m%d_%H%M%S")
        experiment_id, n = stamp, 1
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
            while True:
                try:
                    (results_dir / experiment_id).mkdir()
                    return experiment_id
                except FileExistsError:
                    n += 1
                    experiment_id = f"{stamp}-{n}"
        except OSError as exc:
            raise ResultsWriteError(results_dir / experiment_id, exc) from None

    def create(self, experiment: dict[str, Any]) -> None:
        """Make the experiment's directories and write experiment.json."""
        try:
            self.configs_dir.mkdir(parents=True, exist_ok=True)
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path / EXPERIMENT_FILE, experiment)
        except OSError as exc:
            raise ResultsWriteError(self.path / EXPERIMENT_FILE, exc) from None

    def update_experiment(self, fields: dict[str, Any]) -> None:
        """Add fields to experiment.json (rewritten atomically)."""
        path = self.path / EXPERIMENT_FILE
        data = json.loads(path.read_text())
        data.update(fields)
        try:
            atomic_write_json(path, data)
        except OSError as exc:
            raise ResultsWriteError(path, exc) from None

    def config_path(self, config_id: str) -> Path:
        """Where a configuration's record goes: ``configs/<config_id>.json``."""
        return self.configs_dir / f"{config_id}.json"

    def raw_path(self, config_id: str, client_index: int) -> Path:
        """Where one client's raw per-query data of a configuration goes (``.npz``)."""
        return self.configs_dir / f"{config_id}.client{client_index}.queries.npz"

    def write_config(self, config_id: str, record: dict[str, Any]) -> None:
        """Write a configuration's record (atomically; ResultsWriteError when it cannot be)."""
        path = self.config_path(config_id)
        try:
            atomic_write_json(path, record)
        except OSError as exc:
            raise ResultsWriteError(path, exc) from None

    def write_original_results(self, record: dict[str, Any], client_metrics: ClientMetrics) -> str:
        """Write the original driver's ``results-%y%m%d_%H%M%S.json`` for one configuration and return its name.

        As the original: ``node_configs``, ``clipper_metrics`` (Clipper 0.4.1's ``/metrics``) and
        ``client_metrics`` (``thrus`` in queries/s, ``p99_lats``, ``mean_lats`` and ``all_lats`` in
        seconds): given one dict per client, written as :func:`original_client_metrics` shapes it (one
        client's dict alone, several clients' list), plus a ``clipper_bench`` block naming the
        configuration and its status. The name is the
        configuration's end time; when a file of that second exists the next free second is used, so
        that code listing the directory finds exactly one file per configuration. A re-run
        (``--resume``) replaces the configuration's earlier file.
        """
        previous = self._original_results_of(record["config_id"])
        stamp = record["ended_at"]
        while True:
            name = f"results-{time.strftime('%y%m%d_%H%M%S', time.localtime(stamp))}.json"
            if not (self.path / name).exists():
                break
            stamp += 1
        try:
            atomic_write_json(self.path / name, {
                "node_configs": record["node_configs"],
                "clipper_metrics": record["clipper_metrics"],
                "client_metrics": original_client_metrics(client_metrics),
                "clipper_bench": {"config_id": record["config_id"], "status": record["status"],
                                  "reason": record["reason"], "record": f"configs/{record['config_id']}.json"},
            })
        except OSError as exc:
            raise ResultsWriteError(self.path / name, exc) from None
        if previous is not None:
            (self.path / previous).unlink(missing_ok=True)
        return name

    def _original_results_of(self, config_id: str) -> str | None:
        """The original-format file an earlier run of ``config_id`` wrote, if any."""
        try:
            return json.loads(self.config_path(config_id).read_text()).get("original_results_file")
        except (OSError, ValueError):
            return None

    def append_run(self, line: dict[str, Any]) -> None:
        """Append one line to runs.ndjson."""
        self.append_line(RUNS_FILE, line)

    def append_line(self, filename: str, line: dict[str, Any]) -> None:
        """Append one JSON line to ``filename``, whole or not at all: a write cut short (a full disk)
        is undone by truncating back, and raises ResultsWriteError. A file whose last line is torn
        (no newline: a kill or a full disk mid-write) gets a newline first, so the new line never
        glues onto it; the torn one stays an unreadable line that readers skip with a warning."""
        path = self.path / filename
        data = (json.dumps(line) + "\n").encode()
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ResultsWriteError(path, exc) from None
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise ResultsWriteError(path, exc) from None
        finally:
            os.close(fd)

    def missing_files(self, config_id: str) -> str | None:
        """Why configuration ``config_id`` is not whole on disk (its record missing, unreadable or not
        ``ok``, or a raw per-query file it names gone), or None when it is: ``--resume`` trusts these
        files, not the runs.ndjson line."""
        path = self.config_path(config_id)
        try:
            record = json.loads(path.read_text())
        except OSError:
            return f"{CONFIGS_DIR}/{path.name} is missing"
        except ValueError:
            return f"{CONFIGS_DIR}/{path.name} is not readable JSON"
        if not isinstance(record, dict) or record.get("status") != "ok":
            return f"{CONFIGS_DIR}/{path.name} does not record it ok"
        raw = record.get("raw_files")
        if not raw or not isinstance(raw, list):
            return f"{CONFIGS_DIR}/{path.name} names no raw per-query file"
        gone = [name for name in raw if not isinstance(name, str) or not (self.configs_dir / name).is_file()]
        if gone:
            return f"its raw per-query file {CONFIGS_DIR}/{gone[0]} is missing"
        return None

    def runs(self) -> list[dict[str, Any]]:
        """The readable lines of runs.ndjson (see :func:`read_run_lines`; unreadable ones are warned about)."""
        return read_run_lines(self.path / RUNS_FILE)


_NUMBER = (int, float, type(None))
_LINE_TYPES = {"config_id": str, "status": str, "latency_ms": (dict, type(None)), "power": (dict, type(None)),
               "throughput_qps": _NUMBER, "num_completed": _NUMBER, "batch_size": _NUMBER, "num_replicas": _NUMBER}


def _is_run_line(line: Any) -> bool:
    """Whether ``line`` has the fields readers rely on, with their types."""
    return isinstance(line, dict) and isinstance(line.get("config_id"), str) and all(
        isinstance(line.get(key), kinds) for key, kinds in _LINE_TYPES.items() if key != "config_id")


def read_run_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a ``runs.ndjson`` that is a JSON object with a string ``config_id`` and
    ``status``. A line that is not (truncated by a full disk or a kill, or garbled) is skipped
    with a warning naming the file and line, so one bad line never hides the rest."""
    if not path.exists():
        return []
    lines = []
    for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except (ValueError, RecursionError):
            line = None
        if not _is_run_line(line):
            warnings.warn(f"{path}:{number}: not a readable configuration line; skipped", stacklevel=2)
            continue
        lines.append(line)
    return lines
