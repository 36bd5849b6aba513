"""``clipper-bench report``: from saved experiments to a Markdown summary, PNG plots and one PDF."""

from __future__ import annotations

import json
import os
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..power.sampler import energy_source_names
from ..results.frame import experiment_dirs, load_results
from ..results.store import EXPERIMENT_FILE
from . import calibration, pipeline, planner, plots
from .node_power import NODE_POWER_COLUMNS, NOTE, node_power_rows
from .nodes import NODE_COLUMNS, node_rows
from .pages import table_pages
from .table import add_series, best_under_slo, describe_best, picked, summary_rows, to_markdown

FIGURES = (  # name, caption, drawing (frame, slo_ms, picks)
    ("latency_vs_throughput", "p99 latency against throughput, per replica count", plots.latency_vs_throughput),
    ("throughput_p99_vs_batch", "throughput and p99 latency against batch size", plots.throughput_and_p99_vs_batch),
    ("energy_vs_batch", "energy per query against batch size", lambda f, slo, picks: plots.energy_vs_batch(f)),
    ("throughput_heatmap", "throughput per batch size and replica count", lambda f, slo, picks: plots.throughput_heatmap(f)),
)
FIGURE_FORMATS = ("pdf", "svg", "png")  # vector for papers, and a 300-dpi PNG
PNG_DPI = 300
PAGE_IN = (11.0, 8.5)  # every page of report.pdf: US letter, landscape
TABLE_ROWS_PER_PAGE = 22


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
    node_power_rows: list[list[str]] = field(default_factory=list)  # configurations with --power_meter
    calibration: calibration.CalibrationSection | None = None  # why to trust the rest (report/calibration.py)
    pipelines: list[pipeline.PipelineSection] = field(default_factory=list)  # a section per pipeline experiment
    planner: planner.PlannerSection | None = None  # plan files (report/planner.py)


def _no_energy_reason(dirs: list[Path], frame: pd.DataFrame) -> str:
    """Why no energy was measured: from the idle probe, else from the records' source status."""
    energy = energy_source_names()
    for exp in dirs:
        idle = json.loads((exp / EXPERIMENT_FILE).read_text()).get("idle_power") or {}
        reasons = [f"{k}: {v}" for k, v in (idle.get("sources") or {}).items() if k in energy and v != "ok"]
        if reasons:
            return "; ".join(reasons)
    reasons = []
    for name in energy:
        column = f"power.sources.{name}"
        values = frame[column].dropna() if column in frame else []
        reasons += [f"{name}: {v}" for v in list(dict.fromkeys(values))[:1] if v != "ok"]
    return "; ".join(reasons)


def _experiments_line(frame: pd.DataFrame) -> str:
    parts = []
    for exp, group in frame.groupby("experiment", sort=True):
        first = group.iloc[0]
        gpus = f", GPUs {first['gpu_names']}" if first["gpu_names"] else ""
        parts.append(f"{exp} ({first['engine']} engine on {first['hostname']}: {first['cpu_model']}{gpus}; "
                     f"{len(group)} configurations)")
    return "; ".join(parts)


def _experiments(report: Report) -> str:
    """The experiments line, single-model and pipeline experiments alike."""
    columns = ["experiment", "engine", "hostname", "cpu_model", "gpu_names"]
    frames = [f[columns] for f in [report.frame, *(s.frame for s in report.pipelines)] if not f.empty]
    if not frames:  # plan files only
        return f"none (plan files {', '.join(f.name for f in report.planner.files)})" if report.planner else "none"
    return _experiments_line(pd.concat(frames, ignore_index=True))


def build_report(paths: list[Path], out_dir: Path, slo_ms: float | None = None) -> Report:
    """Read the experiments in ``paths``, write report.md, summary.csv, the figures and report.pdf;
    pipeline experiments get pages of their own (report/pipeline.py) after the single-model ones."""
    experiment_paths, plan_files = planner.split_inputs(list(paths))
    dirs = experiment_dirs(experiment_paths) if experiment_paths else []
    plans = planner.section(plan_files)
    pipes = [d for d in dirs if pipeline.is_pipeline(d)]
    singles = [d for d in dirs if d not in pipes]
    frame = add_series(load_results(singles)) if singles else pd.DataFrame()
    sections = pipeline.sections(pipes, slo_ms)
    if frame.empty and not any(s.rows for s in sections) and plans is None:
        raise ValueError(f"no configuration has been recorded yet in {', '.join(map(str, dirs))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if frame.empty:  # pipeline experiments or plan files only: their sections are the report
        report = Report(out_dir, frame, [], [], pipelines=sections, planner=plans)
        return _write(report, [], [])
    columns, rows = summary_rows(frame)
    report = Report(out_dir, frame, columns, rows, node_rows=node_rows(singles), node_power_rows=node_power_rows(frame),
                    calibration=calibration.calibration_section(singles, frame), pipelines=sections, planner=plans)
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
    figures = _draw_figures(report, ok, singles, slo_ms) if not ok.empty else []
    return _write(report, [*_front_pages(report), *_node_power_pages(report),
                           *calibration.pdf_pages(report.calibration, PAGE_IN)], figures)


def _write(report: Report, pages: list, figures: list) -> Report:
    """Save the pipeline figures, then write report.pdf (``pages``, the figures at one page size, the
    pipeline pages) and report.md."""
    from matplotlib.backends.backend_pdf import PdfPages

    plan = [*((page, False) for page in pages), *((fig, True) for fig, _, _ in figures)]  # (page, is a figure)
    for section in report.pipelines:
        for fig, _, stem in section.figures:
            _save_figure(report, fig, stem)
        plan += [*((page, False) for page in pipeline.pdf_pages(section, PAGE_IN)),
                 *((fig, True) for fig, _, _ in section.figures)]
    if report.planner is not None:
        for fig, _, stem in report.planner.figures:
            _save_figure(report, fig, stem)
        plan += [*((page, False) for page in planner.pdf_pages(report.planner, PAGE_IN)),
                 *((fig, True) for fig, _, _ in report.planner.figures)]
    pdf_path = report.out_dir / "report.pdf"
    tmp = _temp_path(pdf_path)
    try:  # written aside and renamed: an interrupt leaves the old report.pdf or none, never half a one
        with PdfPages(tmp) as pdf:
            for fig, is_figure in plan:
                if is_figure:  # the standalone files keep their own size; the PDF one page size
                    fig.set_size_inches(*PAGE_IN)
                    fig.tight_layout()
                pdf.savefig(fig)
            info = pdf.infodict()
            info["Title"] = "clipper-bench report"
            info["Subject"] = _experiments(report)
        os.replace(tmp, pdf_path)
    finally:
        tmp.unlink(missing_ok=True)
    report.files.append(pdf_path)

    import matplotlib.pyplot as plt

    plt.close("all")
    md = report.out_dir / "report.md"
    md.write_text(_markdown(report, figures))
    report.files.insert(0, md)
    return report


def _draw_figures(report: Report, ok: pd.DataFrame, dirs: list[Path], slo_ms: float | None) -> list:
    """Every figure as PDF, SVG and a 300-dpi PNG; a figure with nothing to show is a note instead."""
    picks = picked(best_under_slo(ok, slo_ms)) if slo_ms else set()
    figures = []
    for name, caption, draw in FIGURES:
        if name == "energy_vs_batch" and not plots.has_energy(ok):
            reason = _no_energy_reason(dirs, ok) or "no GPU or RAPL source was available"
            report.notes.append(f"Energy per query is not plotted: no configuration measured energy ({reason}).")
            continue
        fig = draw(ok, slo_ms, picks)
        _save_figure(report, fig, name)
        figures.append((fig, caption, report.out_dir / f"{name}.png"))
    return figures


def _temp_path(path: Path) -> Path:
    """A hidden name beside ``path`` for writing it before the rename."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _save_figure(report: Report, fig, name: str) -> None:
    """``fig`` as ``name``.pdf, .svg and a 300-dpi .png in the report's directory, each written
    aside and renamed (SIGTERM or Ctrl-C midway leaves no empty or half-written figure)."""
    for ext in FIGURE_FORMATS:
        path = report.out_dir / f"{name}.{ext}"
        tmp = _temp_path(path)
        try:
            fig.savefig(tmp, format=ext, dpi=PNG_DPI if ext == "png" else None, bbox_inches="tight")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        report.files.append(path)


def _markdown(report: Report, figures: list) -> str:
    parts = ["# clipper-bench report", "",
             f"Experiments: {_experiments(report)}.", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `clipper-bench report`; every number comes from "
             "the saved records (latency percentiles from the raw per-query data, over each measurement window).", ""]
    if report.rows:
        parts += _single_model_markdown(report, figures)
    parts += [pipeline.to_markdown(section) for section in report.pipelines]
    parts += [planner.to_markdown(report.planner)] if report.planner is not None else []
    return "\n".join(parts) + "\n"


def _single_model_markdown(report: Report, figures: list) -> list[str]:
    parts = []
    if report.best:
        parts += ["## Best configuration under the latency target", ""] + [f"- {b}" for b in report.best] + [""]
    parts += ["## Configurations", "", to_markdown(report.columns, report.rows)]
    parts += [f"{n}" for n in report.notes]
    if report.node_rows:
        parts += ["", "## Nodes", "", "Where each replica and load client ran, and the energy of the machine each "
                  "node runs on (Ray nodes that share a machine share its energy).", "",
                  to_markdown(NODE_COLUMNS, report.node_rows)]
    if report.node_power_rows:
        parts += ["", "## Whole-node power", "", NOTE, "", to_markdown(NODE_POWER_COLUMNS, report.node_power_rows)]
    if report.calibration is not None:
        parts += ["", calibration.to_markdown_section(report.calibration)]
    parts += ["", "## Plots", ""]
    for _, caption, png in figures:
        parts += [f"![{caption}]({png.name})", ""]
    return parts


def _front_pages(report: Report) -> list:
    """The PDF's first pages, one page size: what was run, the picks, the notes, and the summary
    table, TABLE_ROWS_PER_PAGE rows a page."""

    text = ["clipper-bench report", "", *textwrap.wrap("Experiments: " + _experiments(report), 118)]
    if report.best:
        text += ["", "Best under the latency target:"] + [w for b in report.best for w in textwrap.wrap("  " + b, 118)]
    text += [w for n in report.notes for w in textwrap.wrap(n, 118)]
    return table_pages(text, report.columns, report.rows, "Configurations, continued (page {page} of {pages})",
                       PAGE_IN, TABLE_ROWS_PER_PAGE)


def _node_power_pages(report: Report) -> list:
    """The whole-node power table's pages (none without --power_meter)."""
    if not report.node_power_rows:
        return []
    return table_pages(["Whole-node power", "", *textwrap.wrap(NOTE, 118)], NODE_POWER_COLUMNS, report.node_power_rows,
                       "Whole-node power, continued (page {page} of {pages})", PAGE_IN, TABLE_ROWS_PER_PAGE)
