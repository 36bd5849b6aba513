"""``clipper-bench report``: from saved experiments to a Markdown summary, PNG plots and one PDF."""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..power.sampler import energy_source_names
from ..results.frame import experiment_dirs, load_results
from ..results.store import EXPERIMENT_FILE
from . import plots
from .nodes import NODE_COLUMNS, node_rows
from .table import add_series, best_under_slo, describe_best, summary_rows, to_markdown

FIGURES = (
    ("latency_vs_throughput", "p99 latency against throughput, per replica count", plots.latency_vs_throughput),
    ("throughput_p99_vs_batch", "throughput and p99 latency against batch size", plots.throughput_and_p99_vs_batch),
    ("energy_vs_batch", "energy per query against batch size", None),
    ("throughput_heatmap", "throughput per batch size and replica count", plots.throughput_heatmap),
)


@dataclass
class Report:
    """What a report found and wrote."""

    out_dir: Path
    frame: pd.DataFrame
    columns: list[str]
    rows: list[list[str]]
    best: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    node_rows: list[list[str]] = field(default_factory=list)  # configurations run on a Ray cluster


def _no_energy_reason(dirs: list[Path]) -> str:
    """Why no energy was measured, from the idle probe or a record's source status."""
    for exp in dirs:
        idle = json.loads((exp / EXPERIMENT_FILE).read_text()).get("idle_power") or {}
        sources = idle.get("sources") or {}
        energy = energy_source_names()
        reasons = [f"{k}: {v}" for k, v in sources.items() if k in energy and v != "ok"]
        if reasons:
            return "\n".join(textwrap.fill(r, 60) for r in reasons)
    return ""


def _experiments_line(frame: pd.DataFrame) -> str:
    parts = []
    for exp, group in frame.groupby("experiment", sort=True):
        first = group.iloc[0]
        gpus = f", GPUs {first['gpu_names']}" if first["gpu_names"] else ""
        parts.append(f"{exp} ({first['engine']} engine on {first['hostname']}: {first['cpu_model']}{gpus}; "
                     f"{len(group)} configurations)")
    return "; ".join(parts)


def build_report(paths: list[Path], out_dir: Path, slo_ms: float | None = None) -> Report:
    """Read the experiments in ``paths``, write report.md, summary.csv, the PNGs and report.pdf."""
    dirs = experiment_dirs(paths)
    frame = add_series(load_results(dirs))
    if frame.empty:
        raise ValueError(f"no configuration has been recorded yet in {', '.join(map(str, dirs))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    columns, rows = summary_rows(frame)
    report = Report(out_dir, frame, columns, rows, node_rows=node_rows(dirs))
    ok = frame[frame["status"] == "ok"]
    failed = frame[frame["status"] != "ok"]
    if not failed.empty:
        report.notes.append(f"{len(failed)} configuration(s) not measured ok and left out of the plots: "
                            + ", ".join(f"{r.config_id} ({r.status})" for r in failed.itertuples()))
    if slo_ms is not None:
        report.best = describe_best(best_under_slo(frame, slo_ms))

    csv = out_dir / "summary.csv"
    frame.drop(columns=["series"] if not frame["series"].astype(bool).any() else []).to_csv(csv, index=False)
    report.files.append(csv)

    from matplotlib.backends.backend_pdf import PdfPages

    pdf_path = out_dir / "report.pdf"
    figures = []
    if not ok.empty:
        for name, caption, draw in FIGURES:
            fig = plots.energy_vs_batch(ok, _no_energy_reason(dirs)) if draw is None else draw(ok)
            png = out_dir / f"{name}.png"
            fig.savefig(png, dpi=110)
            report.files.append(png)
            figures.append((fig, caption, png))
    with PdfPages(pdf_path) as pdf:
        pdf.savefig(_front_page(report))
        for fig, _, _ in figures:
            pdf.savefig(fig)
        info = pdf.infodict()
        info["Title"] = "clipper-bench report"
        info["Subject"] = _experiments_line(frame)
    report.files.append(pdf_path)

    import matplotlib.pyplot as plt

    plt.close("all")
    md = out_dir / "report.md"
    md.write_text(_markdown(report, figures))
    report.files.insert(0, md)
    return report


def _markdown(report: Report, figures: list) -> str:
    parts = ["# clipper-bench report", "",
             f"Experiments: {_experiments_line(report.frame)}.", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `clipper-bench report`; every number comes from "
             "the saved records (latency percentiles from the raw per-query data, over each measurement window).", ""]
    if report.best:
        parts += ["## Best configuration under the latency target", ""] + [f"- {b}" for b in report.best] + [""]
    parts += ["## Configurations", "", to_markdown(report.columns, report.rows)]
    parts += [f"{n}" for n in report.notes]
    if report.node_rows:
        parts += ["", "## Nodes", "", "Where each replica and load client ran, and the energy of the machine each "
                  "node runs on (Ray nodes that share a machine share its energy).", "",
                  to_markdown(NODE_COLUMNS, report.node_rows)]
    parts += ["", "## Plots", ""]
    for _, caption, png in figures:
        parts += [f"![{caption}]({png.name})", ""]
    return "\n".join(parts) + "\n"


def _front_page(report: Report):
    """The PDF's first page: what was run, the best picks, and the summary table."""
    import matplotlib.pyplot as plt

    shown = report.rows[:40]
    height = 3.2 + 0.22 * len(shown) + 0.3 * len(report.best)
    fig = plt.figure(figsize=(11, max(8.5, height)))
    text = ["clipper-bench report", "", *textwrap.wrap("Experiments: " + _experiments_line(report.frame), 118)]
    if report.best:
        text += ["", "Best under the latency target:"] + [w for b in report.best for w in textwrap.wrap("  " + b, 118)]
    text += [w for n in report.notes for w in textwrap.wrap(n, 118)]
    fig.text(0.03, 0.98, "\n".join(text), va="top", ha="left", fontsize=9, family="monospace")
    top = 1 - (len(text) + 2) * 0.16 / fig.get_figheight()
    ax = fig.add_axes((0.02, 0.02, 0.96, max(0.1, top - 0.03)))
    ax.axis("off")
    table = ax.table(cellText=shown, colLabels=report.columns, loc="upper center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.scale(1, 1.25)
    table.auto_set_column_width(list(range(len(report.columns))))
    if len(report.rows) > len(shown):
        ax.set_title(f"first {len(shown)} of {len(report.rows)} configurations (all are in summary.csv)", fontsize=8)
    return fig
