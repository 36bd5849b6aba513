"""The report's pages for pipeline experiments (``clipper-bench pipeline``): several models per query.

Per pipeline experiment: a table with one row per stage configuration (its stage tuples, status,
end-to-end throughput, goodput and latency, bottleneck stage, cost and energy), end-to-end p99
against throughput (the cheapest configuration under ``--slo_ms`` starred), where each stage's time
goes (mean queueing and service per stage pass, stacked), and energy per query when it was measured.
Everything comes from the saved records: ``runs.ndjson`` for the end-to-end numbers and each
configuration's record (``configs/<config_id>.json``) for the per-stage breakdown.

A stage tuple ``r2c1b4g1`` is 2 replicas of 1 core each, batch size 4, 1 GPU in all. The cost of a
configuration is its replica cores plus GPUs over all stages.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..power.sampler import energy_source_names  # noqa: E402
from ..results.frame import load_results  # noqa: E402
from ..results.store import EXPERIMENT_FILE, record_path  # noqa: E402
from .pages import table_pages  # noqa: E402
from .table import significant  # noqa: E402

COLUMNS = ["configuration", "status", "queries/s", "goodput", "e2e p50 ms", "e2e p99 ms", "bottleneck",
           "cores+GPUs", "mJ/query"]
NUMERIC = {"queries/s", "goodput", "e2e p50 ms", "e2e p99 ms", "cores+GPUs", "mJ/query"}
TUPLE_KEY = ("Each configuration names every stage's tuple: r replicas, c cores per replica, b batch size, "
             "g GPUs (when any); the plots label a configuration by what differs between them.")
COST_RULE = "cheapest = fewest replica cores plus GPUs summed over the stages, ties to the higher throughput"
NOT_MEASURED = "not measured"
QUEUE_COLOUR, SERVICE_COLOUR = "tab:orange", "tab:blue"
BREAKDOWN_PER_FIGURE = 6  # configurations per stage-breakdown figure (one PDF page each)
TABLE_ROWS_PER_PAGE = 20
WRAP = 118


@dataclass
class PipelineSection:
    """One pipeline experiment's part of the report: its lines, table, notes and figures."""

    experiment: str
    name: str
    frame: pd.DataFrame  # one row per configuration: load_results' columns and label, tuples, cost, breakdown
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    pick: str | None = None  # the cheapest configuration under --slo_ms, in a sentence
    figures: list[tuple[Figure, str, str]] = field(default_factory=list)  # figure, caption, file stem


def is_pipeline(exp: Path) -> bool:
    """Whether ``exp`` holds a pipeline experiment (its experiment.json says ``"kind": "pipeline"``)."""
    try:
        return json.loads((exp / EXPERIMENT_FILE).read_text()).get("kind") == "pipeline"
    except (OSError, ValueError, AttributeError):
        return False  # the single-model path reports the unreadable file


def sections(dirs: list[Path], slo_ms: float | None) -> list[PipelineSection]:
    """A section per pipeline experiment in ``dirs``; figure files are named ``pipeline_<what>``,
    with the experiment id after ``pipeline`` when there are several."""
    return [_section(exp, slo_ms, "pipeline" if len(dirs) == 1 else f"pipeline_{exp.name}") for exp in dirs]


def stage_tag(stage: dict[str, Any]) -> str:
    """``r<replicas>c<cores>b<batch>`` and ``g<GPUs>`` when the stage has any."""
    gpus = len(stage.get("gpus") or [])
    return (f"r{stage['num_replicas']}c{stage['cpus_per_replica']}b{stage['batch_size']}"
            + (f"g{gpus}" if gpus else ""))


def cost(stages: list[dict[str, Any]]) -> int:
    """Replica cores plus GPUs over all stages."""
    return sum(int(s.get("num_replicas") or 0) * int(s.get("cpus_per_replica") or 0) + len(s.get("gpus") or [])
               for s in stages)


def short_labels(stage_lists: list[list[dict[str, Any]]]) -> list[str]:
    """A label per configuration with only the stages and tuple letters that differ between them
    (``b1:r2``); the whole tuple list when nothing differs."""
    fields = {"r": "num_replicas", "c": "cpus_per_replica", "b": "batch_size"}
    varying: dict[str, list[str]] = {}
    for k, stage in enumerate(stage_lists[0] if stage_lists else []):
        same = [s[k] for s in stage_lists if len(s) > k]
        values = {letter: {str(s.get(key)) for s in same} for letter, key in fields.items()}
        values["g"] = {str(len(s.get("gpus") or [])) for s in same}
        varying[stage["name"]] = [letter for letter, seen in values.items() if len(seen) > 1]
    labels = []
    for stages in stage_lists:
        parts = []
        for s in stages:
            shown = {"r": s["num_replicas"], "c": s["cpus_per_replica"], "b": s["batch_size"],
                     "g": len(s.get("gpus") or [])}
            letters = "".join(f"{letter}{shown[letter]}" for letter in varying.get(s["name"], []))
            parts += [f"{s['name']}:{letters}"] if letters else []
        labels.append(" ".join(parts) or " ".join(f"{s['name']}:{stage_tag(s)}" for s in stages))
    return labels


def _record(exp: Path, config_id: str) -> dict[str, Any]:
    """The configuration's record, or {} when it is missing or unreadable."""
    try:
        record = json.loads(record_path(exp, config_id).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def pipeline_frame(exp: Path) -> pd.DataFrame:
    """``load_results`` of one pipeline experiment, with its stage tuples (``tuples``), plot label,
    cost, the record's per-stage breakdown (``breakdown``) and power sources, cheapest first."""
    frame = load_results(exp)
    if frame.empty:
        return frame
    stage_lists = [list(s) if isinstance(s, list) else [] for s in frame["stages"]]
    records = [_record(exp, cid) for cid in frame["config_id"]]
    frame = frame.assign(
        tuples=[" ".join(f"{s['name']}:{stage_tag(s)}" for s in stages) for stages in stage_lists],
        label=short_labels(stage_lists),
        cost=[cost(stages) for stages in stage_lists],
        breakdown=[(r.get("stages") or {}).get("stages") or {} for r in records],
        power_sources=[(r.get("power") or {}).get("sources") or {} for r in records],
    )
    return frame.sort_values(["cost", "tuples"], kind="stable").reset_index(drop=True)


def cheapest_under(frame: pd.DataFrame, slo_ms: float) -> pd.Series | None:
    """The ok configuration with end-to-end p99 under ``slo_ms`` that costs least (``COST_RULE``)."""
    ok = frame[(frame["status"] == "ok") & (frame["p99_ms"] < slo_ms)]
    if ok.empty:
        return None
    return ok.sort_values(["cost", "throughput_qps"], ascending=[True, False], kind="stable").iloc[0]


def _number(value: Any, digits: int) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):,.{digits}f}"


def table_rows(frame: pd.DataFrame) -> list[list[str]]:
    """The table's rows (``COLUMNS``), one per configuration, cheapest first."""
    rows = []
    for _, r in frame.iterrows():
        jpq = r.get("joules_per_query")
        goodput = r.get("goodput")
        rows.append([
            r["tuples"], str(r["status"]), _number(r.get("throughput_qps"), 1),
            "-" if goodput is None or pd.isna(goodput) else f"{100 * float(goodput):.1f}%",
            _number(r.get("p50_ms"), 2), _number(r.get("p99_ms"), 2),
            str(r["bottleneck"]) if isinstance(r.get("bottleneck"), str) else "-", str(r["cost"]),
            NOT_MEASURED if jpq is None or pd.isna(jpq) else f"{1000 * float(jpq):.2f}",
        ])
    return rows


def to_markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table, the numeric columns right-aligned."""
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---:" if c in NUMERIC else "---" for c in columns) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _header(exp: Path, frame: pd.DataFrame) -> tuple[str, list[str]]:
    """The pipeline's name and the lines that open its section: experiment, host, stages."""
    experiment = json.loads((exp / EXPERIMENT_FILE).read_text())
    block = experiment.get("pipeline") or {}
    name = block.get("name") or exp.name
    host = experiment.get("host") or {}
    gpus = f", GPUs {', '.join(host['gpus'])}" if host.get("gpus") else ""
    engine = frame["engine"].iloc[0] if not frame.empty and "engine" in frame else "?"
    stages = "; ".join(f"{s['name']} ({s['model']}{', fed by ' + s['input'] if s.get('input') else ''})"
                       for s in block.get("stages") or [])
    return name, [f"Experiment {exp.name}: {engine} engine on {host.get('hostname')}: {host.get('cpu_model')}{gpus}; "
                  f"{len(frame)} configuration(s).",
                  f"Stages (a query enters every stage fed by none): {stages or 'not recorded'}.", TUPLE_KEY]


def _no_energy_reason(exp: Path, frame: pd.DataFrame) -> str:
    """Why no energy was measured: the idle probe's or the records' energy sources that were not ok."""
    energy = energy_source_names()
    idle = json.loads((exp / EXPERIMENT_FILE).read_text()).get("idle_power") or {}
    for sources in [idle.get("sources") or {}, *frame["power_sources"]]:
        reasons = [f"{k}: {v}" for k, v in sources.items() if k in energy and v != "ok"]
        if reasons:
            return "; ".join(reasons)
    return "no GPU or RAPL source was available"


def _section(exp: Path, slo_ms: float | None, prefix: str) -> PipelineSection:
    """Read one pipeline experiment and draw its figures (not yet saved)."""
    frame = pipeline_frame(exp)
    name, header = _header(exp, frame)
    section = PipelineSection(exp.name, name, frame, header, table_rows(frame) if not frame.empty else [])
    if frame.empty:
        section.notes.append(f"No configuration of {exp.name} has been recorded yet.")
        return section
    ok = frame[frame["status"] == "ok"]
    failed = frame[frame["status"] != "ok"]
    if not failed.empty:
        section.notes.append(f"{len(failed)} configuration(s) not measured ok and left out of the plots: " + ", ".join(
            f"{r.tuples} ({r.status}{': ' + r.reason if isinstance(r.reason, str) else ''})" for r in failed.itertuples()))
    chosen = cheapest_under(frame, slo_ms) if slo_ms is not None else None
    if slo_ms is not None:
        section.pick = _describe_pick(frame, chosen, slo_ms)
    if ok.empty:
        return section
    section.figures.append((latency_vs_throughput(ok, slo_ms, chosen), f"{name}: end-to-end p99 latency against "
                            "throughput, per stage configuration", f"{prefix}_latency_vs_throughput"))
    for k in range(0, len(ok), BREAKDOWN_PER_FIGURE):
        part = "" if len(ok) <= BREAKDOWN_PER_FIGURE else f"_{k // BREAKDOWN_PER_FIGURE + 1}"
        section.figures.append((stage_breakdown(ok.iloc[k:k + BREAKDOWN_PER_FIGURE]), f"{name}: mean queueing and "
                                "service time per stage, per configuration", f"{prefix}_stage_breakdown{part}"))
    if ok["joules_per_query"].notna().any():
        section.figures.append((energy_per_query(ok), f"{name}: energy per query, per configuration",
                                f"{prefix}_energy_per_query"))
    else:
        section.notes.append("Energy per query is not plotted: no configuration measured energy "
                             f"({_no_energy_reason(exp, frame)}).")
    return section


def _describe_pick(frame: pd.DataFrame, chosen: pd.Series | None, slo_ms: float) -> str:
    """One sentence: the cheapest configuration under the SLO, or the lowest p99 when none qualifies."""
    ok = frame[frame["status"] == "ok"]
    if chosen is None:
        closest = ok.sort_values("p99_ms").head(1)
        hint = "" if closest.empty else (f"; the lowest was {closest.iloc[0]['p99_ms']:.2f} ms "
                                         f"({closest.iloc[0]['tuples']})")
        return f"No configuration keeps end-to-end p99 under {slo_ms:g} ms{hint}."
    qualify = int((ok["p99_ms"] < slo_ms).sum())
    return (f"Cheapest configuration under end-to-end p99 {slo_ms:g} ms: {chosen['tuples']}, {chosen['cost']} "
            f"cores+GPUs, {significant(float(chosen['throughput_qps']))} q/s at p99 {chosen['p99_ms']:.2f} ms "
            f"({qualify} of {len(frame)} configurations qualify; {COST_RULE}).")


def latency_vs_throughput(ok: pd.DataFrame, slo_ms: float | None = None, chosen: pd.Series | None = None) -> Figure:
    """End-to-end p99 against throughput, a labelled point per configuration measured ok; the SLO
    line and the cheapest configuration under it (starred) when ``--slo_ms`` gave one."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.scatter(ok["throughput_qps"], ok["p99_ms"], marker="o", s=36, color="tab:blue", zorder=3,
               label="stage configuration (measured ok)")
    for k, (_, r) in enumerate(ok.iterrows()):
        ax.annotate(r["label"], (r["throughput_qps"], r["p99_ms"]), fontsize=8, textcoords="offset points",
                    xytext=(10, 6 if k % 2 == 0 else -13))
    top = float(ok["p99_ms"].max())
    if slo_ms is not None:  # far above every point, it would squash them: it stays in the legend only
        above = slo_ms > 2 * top
        ax.axhline(slo_ms, color="tab:red", linestyle="--", linewidth=1,
                   label=f"SLO p99 {slo_ms:g} ms" + (" (above the plotted range)" if above else ""))
        top = top if above else max(top, slo_ms)
    if chosen is not None:
        ax.scatter([chosen["throughput_qps"]], [chosen["p99_ms"]], marker="*", s=260, color="gold",
                   edgecolor="black", zorder=5, label="cheapest under the SLO (fewest cores+GPUs)")
    ax.set_ylim(0, top * 1.15 if math.isfinite(top) and top > 0 else None)
    ax.set_xlim(0, float(ok["throughput_qps"].max()) * 1.25 or None)
    ax.set_xlabel("end-to-end throughput (queries/s)")
    ax.set_ylabel("end-to-end p99 latency (ms)")
    ax.set_title("End-to-end p99 latency vs throughput, per stage configuration", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def _stage_bars(ax: Any, r: pd.Series) -> None:
    """One configuration's panel: a bar per stage, queueing then service, the bottleneck outlined."""
    names = [s["name"] for s in r["stages"]]
    cells = [r["breakdown"].get(n) or {} for n in names]
    queue = [(c.get("queue_ms") or {}).get("mean") or 0.0 for c in cells]
    service = [(c.get("service_ms") or {}).get("mean") or 0.0 for c in cells]
    y = list(range(len(names)))[::-1]  # the first stage on top
    ax.barh(y, queue, color=QUEUE_COLOUR, height=0.6)
    ax.barh(y, service, left=queue, color=SERVICE_COLOUR, height=0.6)
    for yi, name, c, q, s in zip(y, names, cells, queue, service, strict=True):
        util = c.get("utilisation")
        text = "no passes" if not c else (f"util {100 * util:.0f}%" if util is not None else "util -")
        bottleneck = name == r["bottleneck"]
        if bottleneck:
            ax.barh([yi], [q + s], fill=False, edgecolor="black", linewidth=2, height=0.6)
            text += ", bottleneck"
        ax.annotate(text, (q + s, yi), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7.5,
                    weight="bold" if bottleneck else "normal")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_title(f"{r['label']}: {significant(float(r['throughput_qps']))} q/s, end-to-end p50 "
                 f"{r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms", fontsize=9, loc="left")
    ax.grid(True, axis="x", alpha=0.3)


def stage_breakdown(ok: pd.DataFrame) -> Figure:
    """Per configuration (a panel each), each stage's mean queueing and mean service time per pass,
    stacked, with its replicas' utilisation; the bottleneck stage (the most utilised) outlined."""
    heights = [0.75 + 0.32 * max(1, len(stages)) for stages in ok["stages"]]
    fig, axes = plt.subplots(len(ok), 1, figsize=(8.5, 0.6 + sum(heights)), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    longest = 0.0
    for ax, (_, r) in zip(axes[:, 0], ok.iterrows(), strict=True):
        _stage_bars(ax, r)
        longest = max([longest, *(sum((c.get(k) or {}).get("mean") or 0.0 for k in ("queue_ms", "service_ms"))
                                   for c in r["breakdown"].values())])
    axes[0, 0].set_xlim(0, longest * 1.3 if longest > 0 else 1)  # room for the utilisation notes
    axes[-1, 0].set_xlabel("mean time per stage pass (ms)")
    axes[0, 0].legend(handles=[Patch(color=QUEUE_COLOUR, label="queueing (ms)"),
                               Patch(color=SERVICE_COLOUR, label="service (ms)"),
                               Patch(fill=False, edgecolor="black", linewidth=2, label="bottleneck stage (most utilised)")],
                      fontsize=8, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.25), frameon=False)
    fig.tight_layout()
    return fig


def energy_per_query(ok: pd.DataFrame) -> Figure:
    """Millijoules per query per configuration measured ok (those without energy say so)."""
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.4 * len(ok)))
    y = list(range(len(ok)))[::-1]
    mj = [1000 * float(v) if pd.notna(v) else 0.0 for v in ok["joules_per_query"]]
    ax.barh(y, mj, color="tab:green", height=0.6)
    for yi, value, raw in zip(y, mj, ok["joules_per_query"], strict=True):
        ax.annotate(f"{value:.2f}" if pd.notna(raw) else NOT_MEASURED, (value, yi), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(y, list(ok["label"]), fontsize=8)
    ax.set_xlim(0, max(mj) * 1.25 if max(mj) > 0 else 1)
    ax.set_xlabel("energy per query (mJ)")
    ax.set_title("Energy per query, per stage configuration", fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def to_markdown(section: PipelineSection) -> str:
    """The section as Markdown: heading, lines, table, notes, the pick and the figures (PNGs)."""
    parts = [f"## Pipeline {section.name} ({section.experiment})", "", *[f"{line}  " for line in section.header], ""]
    if section.rows:
        parts += [to_markdown_table(COLUMNS, section.rows)]
    parts += [f"{line}\n" for line in [*section.notes, *([section.pick] if section.pick else [])]]
    parts += [f"![{caption}]({stem}.png)\n" for _, caption, stem in section.figures]
    return "\n".join(parts) + "\n"


def pdf_pages(section: PipelineSection, page_in: tuple[float, float]) -> list[Figure]:
    """The section's text and table as PDF pages of ``page_in`` inches, TABLE_ROWS_PER_PAGE rows a page
    (the figures follow, drawn by the caller at the same page size)."""
    text = [f"Pipeline {section.name} ({section.experiment})", ""]
    text += [w for line in [*section.header, *section.notes, *([section.pick] if section.pick else [])]
             for w in textwrap.wrap(line, WRAP, subsequent_indent="    ")]
    return table_pages(text, COLUMNS, section.rows,
                       f"Pipeline {section.name}: configurations, continued (page {{page}} of {{pages}})",
                       page_in, TABLE_ROWS_PER_PAGE)
