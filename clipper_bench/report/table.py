"""The summary table: which configurations ran and what they measured, and which one to pick."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

SERIES_CANDIDATES = ("engine", "hostname", "framework", "precision", "transport", "settings.batches_in_flight")


def significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits (thousands separated): 0.2 stays 0.2, 12345 is 12,345."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}"


def add_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a ``series`` column naming what tells merged experiments apart (empty for one experiment).

    It joins the settings that differ between experiments (engine, host, framework, ...); when none
    do, it is the experiment id.
    """
    frame = frame.copy()
    if frame.empty or frame["experiment"].nunique() <= 1:
        frame["series"] = ""
        return frame
    differ = [c for c in SERIES_CANDIDATES if c in frame and frame[c].astype(str).nunique() > 1]
    columns = differ or ["experiment"]
    frame["series"] = frame[columns].astype(str).agg(" ".join, axis=1)
    return frame


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _fmt_count(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{int(value):,}"


def _fmt_mean(r: pd.Series, column: str, metric: str, digits: int) -> str:
    """The repeats' mean with its 95% interval's half-width (``--repeats``), else the one value."""
    mean, low = r.get(f"repeat_stats.{metric}.mean"), r.get(f"repeat_stats.{metric}.ci95_low")
    if mean is None or low is None or pd.isna(mean) or pd.isna(low):
        return _fmt(r.get(column), digits)
    return f"{_fmt(mean, digits)} ± {_fmt(mean - low, digits)}"


def _fmt_share(value) -> str:
    """A share as a percentage with one decimal, or - when unknown."""
    if value is None or pd.isna(value):
        return "-"
    return f"{100 * float(value):.1f}%"


def summary_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows, one per configuration, sorted by series, model, replicas, batch."""
    columns = ["series"] if frame["series"].astype(bool).any() else []
    columns += ["model", "replicas", "cores/replica", "batch", "status", "queries/s", "goodput", "p50 ms",
                "p99 ms", "errors", "SLO defaults", "watts", "mJ/query"]
    flagged = "serving_efficiency_problem" in frame and frame["serving_efficiency_problem"].notna().any()
    efficiency = flagged or ("serving_efficiency" in frame and frame["serving_efficiency"].notna().any())
    if efficiency:  # --baseline ran: served / raw in-process speed
        columns.append("serving efficiency")
    ordered = frame.sort_values(["series", "model_name", "num_replicas", "cpus_per_replica", "batch_size"])
    rows = []
    for _, r in ordered.iterrows():
        row = [r["series"]] if columns[0] == "series" else []
        jpq = r.get("joules_per_query")
        row += [
            str(r["model_name"]), str(r["num_replicas"]), str(r["cpus_per_replica"]), str(r["batch_size"]),
            str(r["status"]), _fmt_mean(r, "throughput_qps", "throughput_qps", 1), _fmt_share(r.get("goodput")),
            _fmt_mean(r, "p50_ms", "p50_ms", 2), _fmt_mean(r, "p99_ms", "p99_ms", 2),
            _fmt_count(r.get("num_errors")), _fmt_count(r.get("num_defaults")), _fmt(r.get("avg_w"), 0),
            _fmt(None if jpq is None or pd.isna(jpq) else 1000 * jpq, 2),
        ]
        if efficiency:
            eff, problem = r.get("serving_efficiency"), r.get("serving_efficiency_problem")
            if isinstance(problem, str):  # above 1.05: a measurement problem, its reason on the calibration page
                row.append("not a result")
            else:
                row.append("-" if eff is None or pd.isna(eff) else significant(float(eff)))  # noop's 0.004 is not 0.00
        rows.append(row)
    return columns, rows


def to_markdown(columns: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""
    numeric = {"replicas", "cores/replica", "batch", "queries/s", "p50 ms", "p99 ms", "errors", "SLO defaults",
               "watts", "mJ/query", "serving efficiency"}
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if c in numeric else "---" for c in columns) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def best_under_slo(frame: pd.DataFrame, slo_ms: float) -> list[dict[str, Any]]:
    """Per series and model: the configuration with the highest throughput, and the one with the
    fewest joules per query, among those measured ``ok`` whose p99 stays under ``slo_ms``."""
    out = []
    for (series, model), group in frame.groupby(["series", "model_name"], sort=True):
        ok = group[(group["status"] == "ok") & (group["p99_ms"] < slo_ms)]
        entry: dict[str, Any] = {"series": series, "model": model, "slo_ms": slo_ms,
                                 "candidates": len(ok), "of": len(group)}
        if ok.empty:
            entry["throughput"] = entry["energy"] = None
            closest = group[group["status"] == "ok"].sort_values("p99_ms").head(1)
            entry["closest"] = None if closest.empty else _pick(closest.iloc[0])
        else:
            entry["throughput"] = _pick(ok.loc[ok["throughput_qps"].idxmax()])
            with_energy = ok.dropna(subset=["joules_per_query"])
            entry["energy"] = None if with_energy.empty else _pick(with_energy.loc[with_energy["joules_per_query"].idxmin()])
        out.append(entry)
    return out


def picked(best: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (experiment, config_id) of each highest-throughput pick in ``best_under_slo``'s answer:
    configuration ids repeat across experiments, so the id alone would star another series' point."""
    return {(b["throughput"]["experiment"], b["throughput"]["config_id"]) for b in best if b["throughput"]}


def _pick(r: pd.Series) -> dict[str, Any]:
    jpq = r.get("joules_per_query")
    return {"config_id": r["config_id"], "experiment": r["experiment"], "throughput_qps": float(r["throughput_qps"]),
            "p99_ms": float(r["p99_ms"]), "joules_per_query": None if pd.isna(jpq) else float(jpq)}


def describe_best(best: list[dict[str, Any]]) -> list[str]:
    """One sentence per series and model."""
    lines = []
    for b in best:
        who = f"{b['model']}" + (f" ({b['series']})" if b["series"] else "")
        if b["throughput"] is None:
            closest = b.get("closest")
            hint = (f"; the lowest p99 was {closest['p99_ms']:.2f} ms ({closest['config_id']})" if closest else "")
            lines.append(f"{who}: no configuration keeps p99 under {b['slo_ms']:g} ms{hint}")
            continue
        t = b["throughput"]
        text = (f"{who}: under p99 {b['slo_ms']:g} ms ({b['candidates']} of {b['of']} qualify), highest throughput "
                f"{t['config_id']} at {significant(t['throughput_qps'])} q/s (p99 {t['p99_ms']:.2f} ms)")
        e = b["energy"]
        if e is None:
            text += "; no energy was measured, so no pick by joules per query"
        else:
            text += (f"; fewest joules per query {e['config_id']} at {1000 * e['joules_per_query']:.2f} mJ/query "
                     f"({significant(e['throughput_qps'])} q/s, p99 {e['p99_ms']:.2f} ms)")
        lines.append(text)
    return lines
