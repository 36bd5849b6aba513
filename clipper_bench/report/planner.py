"""The report's planner page, from the plan files ``clipper-bench plan`` writes (``--out``; one per
p99 bound, ``plan-<name>-slo<MS>.yaml`` with several bounds).

A plan file holds the planner's pick and its coarse baseline (every stage at the same replica
count) with their predictions, and after ``--validate`` what each measured (means of the repeats
with 95% intervals, and each stage's service time and utilisation from the frontend's trace). From
them alone, with no experiment read:

* ``planner_cost_vs_slo``: cost against the p99 bound, the curve InferLine drew: replica cores and
  GPU replicas per bound, planned and coarse; beside it energy per query (measured where it was
  validated, else predicted), a plan measured over its bound marked with a red cross;
* ``planner_predicted_vs_measured``: predicted against measured p99 for every validated plan, with
  the line y = x, the 15% band the planner aims within, and the measured 95% intervals;
* a summary table (one row per plan and coarse baseline), and per plan file its predicted-against-
  measured table and its stage table (replicas, batch, cores, GPU, power limit, service time,
  utilisation and mean batch, predicted and measured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..results.store import EXPERIMENT_FILE  # noqa: E402
from .pages import table_pages  # noqa: E402
from .table import significant  # noqa: E402
from .table import to_markdown as markdown_table  # noqa: E402

SUMMARY_COLUMNS = ["p99 bound ms", "rate q/s", "which", "stages", "cores", "GPU replicas", "pred p99 ms",
                   "meas p99 ms (95%)", "p99 error", "meets bound", "pred J/query", "meas J/query"]
PDF_LEAVES_OUT = ("rate q/s", "stages")  # too wide for a page; each plan's page has its stages
COMPARE_COLUMNS = ["", "p50 ms", "p99 ms", "queries/s", "goodput", "J/query"]
STAGE_COLUMNS = ["which", "stage", "replicas", "batch", "cores/replica", "GPU", "power limit", "profiled at r",
                 "service ms pred", "service ms meas", "utilisation pred", "utilisation meas", "batch pred",
                 "batch meas"]
TUPLE_KEY = "Stages: r replicas, c cores per replica, b batch size, g GPU replicas (when on a GPU)."
ACCURACY = 0.15  # the planner's target: predicted p99 within 15% of the measured one (issue 27)
COLOURS = {"plan": "tab:blue", "coarse": "tab:orange"}
MARKERS = {"plan": dict(marker="o", markersize=6), "coarse": dict(marker="s", markersize=10, markerfacecolor="none")}
LABELS = {"plan": "planned per stage", "coarse": "coarse (every stage the same replicas)"}
MAX_PLAN_BYTES = 1 << 20
NONE = "-"
WRAP = 118
ROWS_PER_PAGE = 20


@dataclass
class PlanPoint:
    """One plan (the planner's pick or its coarse baseline) for one bound, as its plan file holds it."""

    file: Path
    name: str  # the pipeline or model planned
    rate_qps: float
    arrival: str
    slo_ms: float
    which: str  # "plan" or "coarse"
    summary: dict[str, Any]  # the plan file's planner.plan or planner.coarse
    measured: dict[str, Any] | None  # what --validate measured, None when not validated
    same_as_plan: bool = False  # a coarse baseline that is the plan itself (every stage already alike)

    @property
    def found(self) -> bool:
        """Whether the planner found a plan for this bound."""
        return bool(self.summary.get("found"))

    def cost(self) -> tuple[int, int]:
        """(replica cores, GPU replicas) of a found plan."""
        stages = self.summary.get("stages") or {}
        cores = sum(s["replicas"] * s["cpus_per_replica"] for s in stages.values())
        return cores, sum(s["replicas"] for s in stages.values() if s.get("gpu"))

    def predicted(self, key: str) -> float | None:
        """A predicted end-to-end number (``p50_ms``, ``p99_ms``, ``throughput_qps``, ...)."""
        return (self.summary.get("predicted") or {}).get(key)

    def measured_mean(self, key: str) -> float | None:
        """A measured end-to-end number: the repeats' mean where it has an interval, else the value."""
        value = (self.measured or {}).get(key)
        return value.get("mean") if isinstance(value, dict) else value

    def group(self) -> tuple[str, float, str]:
        """What a cost-against-bound curve joins: the same pipeline, rate and arrivals."""
        return self.name, self.rate_qps, self.arrival


@dataclass
class PlannerSection:
    """The planner's part of a report."""

    files: list[Path]
    points: list[PlanPoint]
    rows: list[list[str]]  # SUMMARY_COLUMNS
    plans: list[tuple[str, list[list[str]], list[list[str]]]] = field(default_factory=list)  # title, compare, stages
    notes: list[str] = field(default_factory=list)
    figures: list[tuple[Figure, str, str]] = field(default_factory=list)  # figure, caption, file stem


def read_plan(path: Path) -> dict[str, Any] | None:
    """The plan file at ``path`` (a YAML document with a ``planner`` key), or None when it is not one."""
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            return None
        doc = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("planner"), dict) else None


def find_plan_files(paths: list[Path]) -> list[Path]:
    """The plan files among ``paths`` and anywhere under the directories among them, sorted."""
    found: set[Path] = set()
    for path in map(Path, paths):
        candidates = [path] if path.is_file() else [*path.rglob("*.yaml"), *path.rglob("*.yml")] if path.is_dir() else []
        found.update(p for p in candidates if read_plan(p) is not None)
    return sorted(found)


def split_inputs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """``report``'s inputs as (paths holding experiments, plan files): a directory that holds plan
    files and no experiment (``plan --results_dir``) gives only its plan files; a plan file itself
    is no experiment path."""
    plans = find_plan_files(paths)
    experiments = []
    for path in map(Path, paths):
        holds_experiment = (path / EXPERIMENT_FILE).exists() or any(path.glob(f"*/{EXPERIMENT_FILE}"))
        if holds_experiment or not (path.is_file() or any(p.is_relative_to(path) for p in plans)):
            experiments.append(path)  # what holds neither gets experiment_dirs' own error
    return experiments, plans


def points(files: list[Path]) -> list[PlanPoint]:
    """Every plan and coarse baseline in ``files``, by pipeline, rate, arrivals and bound."""
    out = []
    for path in files:
        doc = read_plan(path) or {}
        planner, validation = doc["planner"], doc.get("validation") or {}
        inputs = planner.get("inputs") or {}
        common = (path, str(doc.get("name") or inputs.get("pipeline") or inputs.get("model_name")),
                  float(inputs.get("rate") or 0), str(inputs.get("arrival")), float(inputs.get("slo_p99_ms") or 0))
        out.append(PlanPoint(*common, "plan", planner.get("plan") or {}, validation.get("plan")))
        coarse, plan = planner.get("coarse"), planner.get("plan") or {}
        if coarse:
            same = bool(coarse.get("config_id")) and coarse.get("config_id") == plan.get("config_id")
            measured = validation.get("plan") if same or validation.get("coarse_is_plan") else validation.get("coarse")
            out.append(PlanPoint(*common, "coarse", coarse, measured, same))
    return sorted(out, key=lambda p: (p.group(), p.slo_ms, p.which != "plan"))


def section(files: list[Path]) -> PlannerSection | None:
    """The planner section of the plan files ``files`` (None when there are none): tables, notes, figures."""
    if not files:
        return None
    pts = points(files)
    order = {p.file: k for k, p in reversed(list(enumerate(pts)))}  # by pipeline, rate, arrivals and bound
    files = sorted(files, key=order.__getitem__)
    sec = PlannerSection(files, pts, [summary_row(p) for p in pts])
    for path in files:
        mine = [p for p in pts if p.file == path]
        title = (f"p99 bound {mine[0].slo_ms:g} ms: {mine[0].name} at {mine[0].rate_qps:g} q/s "
                 f"({mine[0].arrival} arrivals), {path.name}")
        sec.plans.append((title, [r for p in mine for r in compare_rows(p)], [r for p in mine for r in stage_rows(p)]))
    sec.notes = notes(pts)
    found = [p for p in pts if p.found]
    if found:
        sec.figures.append((cost_vs_slo(found), "cost against the p99 bound, planned per stage and coarse; "
                            "energy per query beside it", "planner_cost_vs_slo"))
    if any(p.measured_mean("p99_ms") is not None for p in found):
        sec.figures.append((predicted_vs_measured(found), "predicted against measured end-to-end p99 of every "
                            "validated plan (95% intervals of the repeats)", "planner_predicted_vs_measured"))
    else:
        sec.notes.append("No plan file holds a validation: run `clipper-bench plan ... --validate` to measure "
                         "the plans and draw predicted against measured p99.")
    return sec


def _num(value: float | None, digits: int = 3) -> str:
    return NONE if value is None or not math.isfinite(value) else significant(value, digits)


def _interval(stat: Any) -> str:
    """``172 (122-222)``: a measured mean and its 95% interval; a plain number as it is."""
    if not isinstance(stat, dict):
        return _num(stat)
    if stat.get("mean") is None:
        return NONE
    low, high = stat.get("ci95_low"), stat.get("ci95_high")
    band = f" ({_num(low)}-{_num(high)})" if low is not None and high is not None else ""
    return _num(stat["mean"]) + band


def stage_tuples(p: PlanPoint) -> str:
    """``a:r2c1b4 b:r1c2b16g1``: each stage's replicas, cores per replica, batch and GPU replicas."""
    return " ".join(f"{n}:r{s['replicas']}c{s['cpus_per_replica']}b{s['batch_size']}"
                    + (f"g{s['replicas']}" if s.get("gpu") else "") for n, s in (p.summary.get("stages") or {}).items())


def _error(p: PlanPoint) -> str:
    """How far the predicted p99 is from the measured one, as a share of the measured."""
    pred, meas = p.predicted("p99_ms"), p.measured_mean("p99_ms")
    return NONE if pred is None or not meas else f"{100 * (pred - meas) / meas:+.0f}%"


def summary_row(p: PlanPoint) -> list[str]:
    """One plan's row of the summary table."""
    head = [f"{p.slo_ms:g}", f"{p.rate_qps:g}", "coarse (the plan)" if p.same_as_plan else p.which]
    if not p.found:
        why = p.summary.get("next_cheaper_fails") or "no plan"
        limit = p.summary.get("limiting_stage")
        return head + [f"no plan{' (stage ' + limit + ' limits it)' if limit else ''}: {why}"] + [NONE] * 8
    cores, gpus = p.cost()
    meets = NONE if p.measured is None else ("yes" if p.measured.get("meets_slo") else "MISSES")
    return head + [stage_tuples(p), str(cores), str(gpus), _num(p.predicted("p99_ms")),
                   _interval((p.measured or {}).get("p99_ms")) if p.measured else "not validated", _error(p), meets,
                   _num(p.predicted("joules_per_query")), _num(p.measured_mean("joules_per_query"))]


def compare_rows(p: PlanPoint) -> list[list[str]]:
    """The plan's predicted and measured end-to-end numbers, a row each."""
    if not p.found:
        return []
    keys = ("p50_ms", "p99_ms", "throughput_qps", "goodput", "joules_per_query")
    rows = [[f"{p.which}, predicted", *(_num(p.predicted(k)) for k in keys)]]
    if p.measured is not None:
        rows.append([f"{p.which}, measured ({p.measured.get('status')}; mean, 95%)",
                     *(_interval(p.measured.get(k)) for k in keys)])
    return rows


def stage_rows(p: PlanPoint) -> list[list[str]]:
    """Each stage of the plan: its configuration, then predicted and measured service, load and batch."""
    rows = []
    measured = (p.measured or {}).get("stages") or {}
    for name, s in (p.summary.get("stages") or {}).items():
        m = measured.get(name) or {}
        limit = s.get("gpu_power_limit_w")
        rows.append([p.which, name, str(s["replicas"]), str(s["batch_size"]), str(s["cpus_per_replica"]),
                     "yes" if s.get("gpu") else "no", NONE if not s.get("gpu") else f"{limit:g} W" if limit else "default",
                     ",".join(map(str, s.get("replicas_profiled") or [])) or NONE, _num(s.get("service_ms")),
                     _num(m.get("service_ms")), _num(s.get("predicted_utilisation"), 2), _num(m.get("utilisation"), 2),
                     _num(s.get("predicted_mean_batch")), _num(m.get("mean_batch"))])
    return rows


def notes(pts: list[PlanPoint]) -> list[str]:
    """What a reader must know: extrapolations, plans measured over their bound, predictions off by
    more than the planner's target, and what per-stage planning saved against the coarse baseline."""
    out = []
    for p in (p for p in pts if p.found):
        tag = f"{p.name} {p.slo_ms:g} ms {p.which}"
        for line in p.summary.get("extrapolated_replicas") or []:
            out.append(f"{tag}: extrapolated: {line} (outside the replica counts profiled).")
        if p.summary.get("extrapolated_stages"):
            out.append(f"{tag}: batch sizes outside the measured ones at {', '.join(p.summary['extrapolated_stages'])}.")
        pred, meas = p.predicted("p99_ms"), p.measured_mean("p99_ms")
        if p.measured is not None and not p.measured.get("meets_slo"):
            out.append(f"{tag}: measured p99 {_num(meas)} ms ({p.measured.get('status')}) MISSES the {p.slo_ms:g} ms bound.")
        if pred is not None and meas and abs(pred - meas) > ACCURACY * meas:
            out.append(f"{tag}: p99 {'under' if pred < meas else 'over'}-predicted by "
                       f"{abs(100 * (pred - meas) / meas):.0f}% (target within {100 * ACCURACY:.0f}%).")
    for plan in (p for p in pts if p.found and p.which == "plan"):
        coarse = next((c for c in pts if c.which == "coarse" and c.found and c.file == plan.file), None)
        if coarse is not None:
            (pc, pg), (cc, cg) = plan.cost(), coarse.cost()
            out.append(f"{plan.name} {plan.slo_ms:g} ms: per-stage planning uses {pc} cores + {pg} GPU replicas "
                       f"against the coarse baseline's {cc} + {cg} (saves {cc - pc} cores, {cg - pg} GPU replicas).")
    return out


def _energy(p: PlanPoint) -> tuple[float | None, bool]:
    """Energy per query to plot: measured when validated, else predicted; and whether measured."""
    measured = p.measured_mean("joules_per_query")
    return (measured, True) if measured is not None else (p.predicted("joules_per_query"), False)


def cost_vs_slo(pts: list[PlanPoint]) -> Figure:
    """Left: replica cores (solid) and GPU replicas (dashed) against the p99 bound, planned and coarse;
    right: energy per query. A plan measured over its bound carries a red cross."""
    fig, (ax, ax_e) = plt.subplots(1, 2, figsize=(11.5, 4.6))
    groups = sorted({p.group() for p in pts})
    any_gpu = any(p.cost()[1] for p in pts)
    for g in groups:
        for which in ("plan", "coarse"):
            line = sorted((p for p in pts if p.group() == g and p.which == which), key=lambda p: p.slo_ms)
            if not line:
                continue
            tag = LABELS[which] + (f", {g[0]} at {g[1]:g} q/s" if len(groups) > 1 else "")
            xs = [p.slo_ms for p in line]
            ax.plot(xs, [p.cost()[0] for p in line], "-", color=COLOURS[which], label=f"{tag}: cores", **MARKERS[which])
            if any_gpu:
                ax.plot(xs, [p.cost()[1] for p in line], "--", color=COLOURS[which], label=f"{tag}: GPU replicas",
                        **MARKERS[which])
            _energy_line(ax_e, line, which, tag)
    missed = [p for p in pts if p.measured is not None and not p.measured.get("meets_slo")]
    if missed:
        ax.scatter([p.slo_ms for p in missed], [p.cost()[0] for p in missed], marker="x", s=120, color="tab:red",
                   zorder=5, label="measured p99 over the bound")
    bounds = sorted({p.slo_ms for p in pts})
    pad = max(0.08 * (bounds[-1] - bounds[0]), 0.1 * bounds[0])
    for a in (ax, ax_e):
        a.set_xticks(bounds, [f"{b:g}" for b in bounds])
        a.set_xlim(bounds[0] - pad, bounds[-1] + pad)
        a.set_xlabel("end-to-end p99 bound (ms)")
        a.grid(True, alpha=0.3)
        top = max((y for ln in a.lines for y in ln.get_ydata() if np.isfinite(y)), default=0.0)
        a.set_ylim(0, 1.15 * top if top > 0 else None)  # room above the highest marker
    ax.set_ylabel("cost: replica cores, GPU replicas (count)")
    ax.set_title("Cost against the p99 bound", fontsize=11)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax_e.set_ylabel("energy per query (J)")
    ax_e.set_title("Energy per query against the p99 bound", fontsize=11)
    if not ax_e.lines:
        ax_e.text(0.5, 0.5, "no energy measured or predicted\n(the profiles and validations hold no joules)",
                  ha="center", va="center", transform=ax_e.transAxes, fontsize=9)
    else:
        ax_e.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def _energy_line(ax: Any, line: list[PlanPoint], which: str, tag: str) -> None:
    """One energy curve (plan: circles, solid; coarse: larger squares, dashed): filled markers where
    measured, white where only predicted."""
    pts = [(p.slo_ms, *_energy(p)) for p in line]
    pts = [(x, j, m) for x, j, m in pts if j is not None]
    if not pts:
        return
    colour, marker = COLOURS[which], MARKERS[which]
    ax.plot([x for x, _, _ in pts], [j for _, j, _ in pts], "-" if which == "plan" else "--", color=colour,
            label=f"{tag} (filled: measured, white: predicted)")
    for x, j, m in pts:
        ax.plot([x], [j], marker["marker"], color=colour, markersize=marker["markersize"],
                markerfacecolor=colour if m else "white", alpha=0.8 if which == "coarse" else 1.0)


def predicted_vs_measured(pts: list[PlanPoint]) -> Figure:
    """Measured p99 (mean of the repeats, 95% interval as error bars) against predicted p99, per
    validated plan, with y = x and the +-15% band."""
    fig, ax = plt.subplots(figsize=(7.2, 5.6))
    top = 0.0
    for which in ("plan", "coarse"):
        mine = [p for p in pts if p.which == which and p.measured_mean("p99_ms") is not None and not p.same_as_plan]
        if not mine:
            continue
        xs = [p.predicted("p99_ms") for p in mine]
        ys = [p.measured_mean("p99_ms") for p in mine]
        stats = [(p.measured or {}).get("p99_ms") or {} for p in mine]
        err = [[max(0.0, y - (s.get("ci95_low") if s.get("ci95_low") is not None else y)) for y, s in zip(ys, stats, strict=True)],
               [max(0.0, (s.get("ci95_high") if s.get("ci95_high") is not None else y) - y) for y, s in zip(ys, stats, strict=True)]]
        ax.errorbar(xs, ys, yerr=err, fmt="o" if which == "plan" else "s", color=COLOURS[which], capsize=4,
                    label=f"{LABELS[which]} (measured mean, 95% interval)")
        for p, x, y in zip(mine, xs, ys, strict=True):
            ax.annotate(f"{p.slo_ms:g} ms bound", (x, y), fontsize=8, textcoords="offset points", xytext=(6, 6))
        top = max(top, *xs, *(y + e for y, e in zip(ys, err[1], strict=True)))
    top = top * 1.15 or 1.0
    ax.plot([0, top], [0, top], color="black", linewidth=1, label="measured = predicted")
    ax.fill_between([0, top], [0, top * (1 - ACCURACY)], [0, top * (1 + ACCURACY)], color="grey", alpha=0.15,
                    label=f"within {100 * ACCURACY:.0f}% of the prediction")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted end-to-end p99 (ms)")
    ax.set_ylabel("measured end-to-end p99 (ms)")
    ax.set_title("Predicted against measured p99, per validated plan", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def to_markdown(sec: PlannerSection) -> str:
    """The planner section of report.md."""
    parts = ["## Planner", "",
             f"{len(sec.files)} plan file(s) from `clipper-bench plan`: "
             + ", ".join(f"`{f.name}`" for f in sec.files) + ". " + TUPLE_KEY
             + " Measured numbers are means of the validation's repeats with their 95% intervals.", "",
             markdown_table(SUMMARY_COLUMNS, sec.rows)]
    parts += [f"- {n}" for n in sec.notes]
    for _, caption, stem in sec.figures:
        parts += ["", f"![{caption}]({stem}.png)"]
    for title, compare, stages in sec.plans:
        parts += ["", f"### {title}", ""]
        if compare:
            parts += [markdown_table(COMPARE_COLUMNS, compare), markdown_table(STAGE_COLUMNS, stages)]
        else:
            parts += ["No plan meets this bound (the summary table says which stage limits it).", ""]
    return "\n".join(parts) + "\n"


def pdf_pages(sec: PlannerSection, page_in: tuple[float, float]) -> list[Figure]:
    """The planner's text-and-table pages: the summary, then one page per plan file."""
    import textwrap

    text = ["Planner", "", *textwrap.wrap(f"{len(sec.files)} plan file(s): " + ", ".join(f.name for f in sec.files)
                                          + f" (rate {', '.join(sorted({f'{p.rate_qps:g}' for p in sec.points}))} q/s). "
                                          + TUPLE_KEY, WRAP), *(w for n in sec.notes for w in textwrap.wrap(n, WRAP))]
    keep = [k for k, c in enumerate(SUMMARY_COLUMNS) if c not in PDF_LEAVES_OUT]  # the stages are on the plan pages
    pages = table_pages(text, [SUMMARY_COLUMNS[k] for k in keep], [[r[k] for k in keep] for r in sec.rows],
                        "Planner, continued (page {page} of {pages})", page_in, ROWS_PER_PAGE)
    for title, compare, stages in sec.plans:
        widths = [max(len(r[k]) for r in [COMPARE_COLUMNS, *compare]) for k in range(len(COMPARE_COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [COMPARE_COLUMNS, *compare]]
        pages += table_pages([*textwrap.wrap(title, WRAP), "", *lines], STAGE_COLUMNS, stages,
                             title + ", continued (page {page} of {pages})", page_in, ROWS_PER_PAGE)
    return pages
