"""The report's whole-machine table: for configurations measured with ``--power_meter``, the node's
power and energy per query beside the GPU's, and the node's watts above idle against the GPU's, so
that what the GPU figure leaves out (CPUs, memory, fans, power-supply losses) can be seen. The node
figure includes the GPU's: the two are compared, never added."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

NODE_POWER_COLUMNS = ["configuration", "node W", "node above idle W", "GPU W", "GPU above idle W",
                      "GPU share of node above idle", "node mJ/query", "GPU+RAPL mJ/query", "readings (every s)"]
NOTE = ("Whole-node power from --power_meter (a BMC or a wall meter): it includes the GPUs, CPUs, memory, fans "
        "and power-supply losses, so the node and GPU figures are compared, never added. 'not a result': "
        "the meter gave too few distinct readings in the window (or none), as the cell says.")


def _value(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _num(x: Any, digits: int = 0, scale: float = 1.0) -> str:
    value = _value(x)
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _per_query(row: pd.Series) -> str:
    value = _value(row.get("node_energy_per_query_j"))
    if value is not None:
        return f"{value * 1000:.2f}"
    problem = row.get("node_problem")
    return f"not a result ({problem})" if isinstance(problem, str) and problem else "-"


def node_power_rows(frame: pd.DataFrame) -> list[list[str]]:
    """One row per configuration that ran a whole-machine meter, in NODE_POWER_COLUMNS."""
    if frame.empty or "node_power_mean_w" not in frame:
        return []
    with_node = frame[frame["node_power_mean_w"].notna() | frame.get("node_problem", pd.Series(dtype=object)).notna()]
    rows = []
    for _, r in with_node.iterrows():
        share = _value(r.get("gpu_share_of_node_above_idle"))
        every = _value(r.get("node_update_interval_s"))
        readings = _value(r.get("node_readings"))
        rows.append([
            str(r["config_id"]), _num(r.get("node_power_mean_w")), _num(r.get("node_above_idle_w")),
            _num(r.get("gpu_w")), _num(r.get("gpu_above_idle_w")),
            "-" if share is None else f"{100 * share:.0f}%", _per_query(r),
            _num(r.get("joules_per_query"), 2, 1000.0),
            "-" if readings is None else f"{readings:.0f}" + (f" ({every:.2g})" if every is not None else ""),
        ])
    return rows
