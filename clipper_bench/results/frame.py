"""Experiments as pandas DataFrames, for notebooks and the report.

``load_results(DIR)`` gives one row per configuration: the ``runs.ndjson`` line (its last one, after
``--resume``) flattened, with friendly columns for the numbers most plots need, and the experiment
it belongs to. ``load_queries(row)`` (or ``load_queries(experiment_dir, config_id)``) gives the raw
per-query data of one configuration, one row per query.

Every row keeps its ``status`` and ``reason``; ``clean`` is True only for ``ok`` rows, the only
ones that are clean measurements (filter with ``df[df.clean]``).

With ``--power_meter``, ``node_*`` columns hold the whole machine's figures (``node_energy_per_query_j``,
``node_power_mean_w``, ...): they include the GPU's and RAPL's, so never add them to ``joules_per_query``;
``gpu_above_idle_w`` against ``node_above_idle_w`` is what the GPU figure leaves out.

``DIR`` may be an experiment directory (it holds ``experiment.json``) or a results directory holding
several experiments; several directories may be given and their rows are concatenated.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..load.spec import QueryStatus
from ..load.stats import ClientData
from .status import RunStatus
from .store import CONFIGS_DIR, EXPERIMENT_FILE, RUNS_FILE, read_run_lines, record_path

STATUS_NAMES = {int(s): s.label for s in QueryStatus}  # ok, slo_default, error, unanswered
LATENCY_KEYS = ("mean", "p50", "p90", "p95", "p99", "p999", "max")
# the whole machine's figures (--power_meter; docs/power-meters.md): they include the GPUs' and CPUs'
NODE_COLUMNS = ("node_power_mean_w", "node_idle_w", "node_energy_per_query_j", "node_energy_per_query_above_idle_j",
                "node_readings", "node_update_interval_s", "node_source", "node_problem")
CROSS_CHECK_COLUMNS = ("node_above_idle_w", "gpu_w", "gpu_above_idle_w", "gpu_share_of_node_above_idle")


class ResultsError(ValueError):
    """A directory that holds no experiment, or an experiment that cannot be read."""


def experiment_dirs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The experiment directories in ``paths`` (each an experiment or a results directory)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / EXPERIMENT_FILE).exists():
            found.append(path)
        elif path.is_dir():
            inner = sorted(p.parent for p in path.glob("*/experiment.json"))
            if not inner:
                raise ResultsError(f"{path} holds no experiment (no experiment.json in it or its subdirectories)")
            found.extend(inner)
        else:
            raise ResultsError(f"{path} does not exist: pass an experiment directory such as results/<experiment_id>")
    return found


def _last_lines(exp: Path) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for rec in read_run_lines(exp / RUNS_FILE):
        last.pop(rec["config_id"], None)  # keep the order in which configurations last ended
        last[rec["config_id"]] = rec
    return list(last.values())


def _row(line: dict[str, Any], exp: Path, experiment: dict[str, Any]) -> dict[str, Any]:
    host = experiment.get("host", {})
    row: dict[str, Any] = {
        "experiment": exp.name,
        "experiment_dir": str(exp),
        "hostname": host.get("hostname"),
        "cpu_model": host.get("cpu_model"),
        "gpu_names": ", ".join(host.get("gpus") or []),
    }
    flat = pd.json_normalize({k: v for k, v in line.items() if k not in ("gpus",)}, sep=".").iloc[0].to_dict()
    row.update(flat)
    row["gpus"] = ",".join(str(g) for g in line.get("gpus") or [])
    row["clean"] = line.get("status") == RunStatus.OK  # only ok is a clean measurement
    latency = line.get("latency_ms") or {}
    for key in LATENCY_KEYS:
        row[f"{key}_ms"] = latency.get(key)
    record_file = record_path(exp, line["config_id"])
    try:
        record = json.loads(record_file.read_text())
    except OSError:
        record = {}
    except ValueError:
        warnings.warn(f"{record_file} is not valid JSON (truncated?): its settings are left out", stacklevel=3)
        record = {}
    if not isinstance(record, dict):
        record = {}
    settings = {k: v for k, v in (record.get("settings") or {}).items() if k != "placements"}
    row.update({f"settings.{k}": v for k, v in settings.items()})
    row["deployment_reused"] = (record.get("deployment") or {}).get("reused")
    power = line.get("power") or {}
    row["avg_w"] = power.get("avg_w")
    row["joules_per_query"] = power.get("joules_per_query")
    row["joules_per_query_above_idle"] = power.get("joules_per_query_above_idle")
    for key in NODE_COLUMNS:  # with --power_meter: the whole machine, GPUs included (never add to the above)
        row[key] = power.get(key)
    check = power.get("cross_check") or {}
    for key in CROSS_CHECK_COLUMNS:
        row[key] = check.get(key)
    return row


def load_results(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """One row per configuration of the experiments in ``paths`` (see the module docstring)."""
    rows = []
    for exp in experiment_dirs(paths):
        try:
            experiment = json.loads((exp / EXPERIMENT_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ResultsError(f"cannot read {exp / 'experiment.json'}: {exc}") from None
        rows.extend(_row(line, exp, experiment) for line in _last_lines(exp))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    numeric = ["throughput_qps", "avg_w", "joules_per_query", "joules_per_query_above_idle",
               *(f"{k}_ms" for k in LATENCY_KEYS), *NODE_COLUMNS[:6], *CROSS_CHECK_COLUMNS]
    numeric += [c for c in ("goodput", "goodput_qps") if c in frame]  # records before goodput lack them
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def load_queries(row_or_dir: pd.Series | str | Path, config_id: str | None = None) -> pd.DataFrame:
    """Raw per-query data of one configuration: client, wall-clock times (ns), latency, status, and
    whether the query counts (due inside the measurement window)."""
    if isinstance(row_or_dir, pd.Series):
        exp, config_id = Path(row_or_dir["experiment_dir"]), row_or_dir["config_id"]
    else:
        exp = Path(row_or_dir)
    if config_id is None:
        raise ValueError("load_queries(experiment_dir, config_id): name the configuration")
    record_file = record_path(exp, config_id)
    try:
        record = json.loads(record_file.read_text())
    except OSError:
        raise ResultsError(f"no record {record_file}: is {config_id} a configuration of {exp}?") from None
    window = record.get("window_wall_ns")
    frames = []
    for name in record.get("raw_files") or []:
        try:
            c = ClientData.from_npz(str(exp / CONFIGS_DIR / name))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise ResultsError(f"cannot read {exp / 'configs' / name} ({type(exc).__name__}: {exc}): the raw "
                               "file is damaged; the record's summary still holds its numbers") from None
        done = c.done_wall_ns.astype(np.int64)
        answered = done >= 0
        latency = np.where(answered, (done - c.start_wall_ns) / 1e6, np.nan)
        frames.append(pd.DataFrame({
            "client": c.client_index,
            "scheduled_wall_ns": c.start_wall_ns,
            "send_wall_ns": c.send_wall_ns,
            "done_wall_ns": np.where(answered, done, -1),
            "latency_ms": latency,
            "status": pd.Categorical([STATUS_NAMES.get(int(s), str(s)) for s in c.status],
                                     categories=list(STATUS_NAMES.values())),
            "in_window": c.measured(tuple(window)) if window else False,
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
