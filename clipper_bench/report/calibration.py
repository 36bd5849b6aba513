"""The report's calibration section: why to trust the other numbers.

Per configuration, from its record: how late the load generator sent and how much of a core it used,
each client's clock, idle power and whether it was subtracted, the NVML energy counter against the
integrated power samples, the GPU power limit and SM clock in force, and the serving efficiency
against the raw baseline. Per experiment: the generator's cores, the idle measurement, and the
``--calibrate`` run (the sleep model's known capacity against the measured). A value that was not
measured says so, with a numbered reason (``[n]``) when the records give one; it is never shown as 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..load.stats import client_cpu_share
from ..results.store import CONFIGS_DIR, EXPERIMENT_FILE, record_path
from .table import significant

NOT_MEASURED = "not measured"
LOAD_COLUMNS = ["configuration", "load", "late p99 ms", "late > 1 ms", "kept up", "generator CPU", "clients' clocks"]
POWER_COLUMNS = ["configuration", "idle W", "above idle", "integrated / counter", "power limit W", "SM clock MHz",
                 "serving efficiency", "baseline q/s"]
CLOSED_LOOP = ("closed loop: each query goes out when an answer comes back, so there is no schedule to be "
               "late against")
NO_CPU_TIME = ("the load clients recorded no CPU time over the window (raw data written before clipper-bench "
               "recorded it, or load that ended before the window)")
NO_BASELINE = "no raw baseline of this model and batch size: run with --baseline"


class Reasons:
    """Numbered reasons for values that were not measured, each text numbered once."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def mark(self, reason: str | None) -> str:
        """`` [n]`` for ``reason`` (numbered on first use), or nothing without one."""
        if not reason:
            return ""
        return f" [{self.numbers.setdefault(reason, len(self.numbers) + 1)}]"

    def missing(self, reason: str | None) -> str:
        """``not measured [n]``."""
        return NOT_MEASURED + self.mark(reason)

    def lines(self, rows: list[list[str]] | None = None) -> list[str]:
        """``[n] reason`` for every reason, or for those that ``rows`` refer to."""
        cells = " ".join(c for row in rows for c in row) if rows is not None else None
        return [f"[{n}] {text}" for text, n in self.numbers.items() if cells is None or f"[{n}]" in cells]


@dataclass
class CalibrationSection:
    """What the calibration section shows: lines per experiment and two tables, one row per configuration."""

    lines: list[str] = field(default_factory=list)
    load_rows: list[list[str]] = field(default_factory=list)
    power_rows: list[list[str]] = field(default_factory=list)
    reasons: Reasons = field(default_factory=Reasons)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def calibration_section(dirs: list[Path], frame: pd.DataFrame) -> CalibrationSection:
    """The calibration section of the experiments in ``dirs``, rows in the order of ``frame``
    (one row per configuration, as ``table.summary_rows`` orders them)."""
    section = CalibrationSection()
    experiments = {exp.name: _read_json(exp / EXPERIMENT_FILE) or {} for exp in dirs}
    for exp in dirs:
        section.lines += experiment_lines(exp.name, experiments[exp.name], len(dirs) > 1)
    ordered = frame.sort_values(["series", "model_name", "num_replicas", "cpus_per_replica", "batch_size"])
    for _, row in ordered.iterrows():
        exp = Path(row["experiment_dir"])
        record = _read_json(record_path(exp, row["config_id"]))
        name = f"{row['series']} {row['config_id']}" if row["series"] else row["config_id"]
        if record is None:
            why = section.reasons.missing(f"the record configs/{row['config_id']}.json could not be read")
            section.load_rows.append([name, *[why] * (len(LOAD_COLUMNS) - 1)])
            section.power_rows.append([name, *[why] * (len(POWER_COLUMNS) - 1)])
            continue
        section.load_rows.append([name, *_load_cells(record, exp, section.reasons)])
        section.power_rows.append([name, *_power_cells(record, experiments[exp.name], section.reasons)])
    return section


def experiment_lines(name: str, experiment: dict[str, Any], several: bool) -> list[str]:
    """The experiment's load generator cores, idle measurement and calibration run, one line each."""
    prefix = f"{name}: " if several else ""
    plan = experiment.get("core_plan") or {}
    settings = experiment.get("settings") or {}
    clients = settings.get("num_clients") or 1
    cores = plan.get("client_cpus")
    where = (f"on cores {','.join(map(str, cores))}" if cores else
             f"sharing cores with the frontend and replicas ({plan.get('note') or 'no cores of its own'})")
    lines = [f"{prefix}Load generator: {clients} client process(es) {where}."]
    lines.append(f"{prefix}Idle power: {_idle_line(experiment)}.")
    lines.append(f"{prefix}Calibration run: {_calibration_line(experiment.get('calibration'))}.")
    return lines


def _idle_line(experiment: dict[str, Any]) -> str:
    idle = experiment.get("idle_power")
    if not idle:
        idle_s = (experiment.get("settings") or {}).get("idle_s")
        return f"{NOT_MEASURED} (--idle_s {idle_s:g})" if idle_s == 0 else f"{NOT_MEASURED} (none recorded)"
    watts = idle.get("watts") or {}
    sources = "; ".join(f"{k}: {v}" for k, v in (idle.get("sources") or {}).items() if v != "ok")
    if not watts:
        why = idle.get("skipped") or "no source measured watts"
        return f"{NOT_MEASURED} ({why}{'; ' + sources if sources else ''})"
    text = ", ".join(f"{k} {v:.1f} W" for k, v in sorted(watts.items())) + f" over {idle.get('duration_s', 0):g} s"
    return text + (f" (not measured: {sources})" if sources else "")


def _calibration_line(block: dict[str, Any] | None) -> str:
    if not block:
        return "none in this experiment (clipper-bench run --calibrate adds one)"
    text = (f"{block['model']} model, {block['sleep_ms']:g} ms per batch of {block['batch_size']}, "
            f"{block['num_replicas']} replica: known capacity {significant(block['known_capacity_qps'])} q/s")
    if not _known(block.get("measured_qps")):
        return f"{text}, measured: {NOT_MEASURED} ({block.get('reason') or block.get('status')})"
    text += (f", measured {significant(block['measured_qps'])} q/s, ratio {block['ratio']:.3f} "
             f"(closed loop of {block.get('concurrency')}, {block['duration_s']:g} s, {block.get('transport')})")
    if block.get("status") not in (None, "ok"):
        text += f"; {block['status']}: {block.get('reason')}"
    return text


def _unmeasured_reason(record: dict[str, Any]) -> str:
    return f"the configuration was {record.get('status')}: {record.get('reason') or record.get('error')}"


def _load_cells(record: dict[str, Any], exp: Path, reasons: Reasons) -> list[str]:
    """load, lateness p99, share over 1 ms, kept up, generator CPU, clients' clocks."""
    summary = record.get("summary")
    if not summary:
        why = reasons.missing(_unmeasured_reason(record))
        return [why] * (len(LOAD_COLUMNS) - 2) + [_clocks(record)]
    load = summary.get("load") or {}
    if load.get("mode") == "open":
        what = f"open, {load.get('rate_qps'):g} q/s {load.get('arrival')}"
    else:
        what = f"closed, {load.get('concurrency') or record['settings'].get('concurrency')} outstanding"
    late = load.get("lateness")
    if load.get("mode") != "open":
        cells = [reasons.missing(CLOSED_LOOP)] * 3
    elif not late or not _known(late.get("p99_ms")):
        cells = [reasons.missing("no query was due in the window")] * 3
    else:
        cells = [f"{late['p99_ms']:.2f}", f"{100 * late['share_over_1ms']:.1f}%", "yes" if late["kept_up"] else "NO"]
    return [what, *cells, _cpu(record, load, exp, reasons), _clocks(record)]


def _cpu(record: dict[str, Any], load: dict[str, Any], exp: Path, reasons: Reasons) -> str:
    """The busiest client's share of one core over the window: the summary's, else from the raw files."""
    share = load.get("client_cpu_share")
    if not _known(share):
        paths = [exp / CONFIGS_DIR / name for name in record.get("raw_files") or []]
        try:
            share = client_cpu_share([str(p) for p in paths if p.exists()])
        except (OSError, ValueError):
            share = None
    if not _known(share):
        return reasons.missing(NO_CPU_TIME)
    return f"{100 * share:.1f}% of a core"


def _clocks(record: dict[str, Any]) -> str:
    """Each client's clock: its offset from the driver's and the probe's round trip (clients on a Ray
    cluster's nodes), else the driver's own clock."""
    sites = [c for c in record.get("clients") or [] if c and "clock_offset_ns" in c]
    if not sites:
        return "local clock"
    return ", ".join(f"#{c.get('client_index', k)} {c['clock_offset_ns'] / 1e6:+.2f} ms"
                     + (f" (rtt {c['clock_rtt_ns'] / 1e6:.2f})" if _known(c.get("clock_rtt_ns")) else "")
                     for k, c in enumerate(sites))


def _no_energy_reason(power: dict[str, Any]) -> str:
    if power.get("status") not in (None, "ok"):
        return f"power was not sampled: {power['status']}"
    sources = "; ".join(f"{k}: {v}" for k, v in (power.get("sources") or {}).items() if v != "ok")
    return "no energy source was available" + (f" ({sources})" if sources else "")


def _idle_reason(power: dict[str, Any], experiment: dict[str, Any]) -> str:
    """Why the configuration has no idle watts to subtract."""
    if not power.get("energy_channels"):
        return _no_energy_reason(power)
    idle = experiment.get("idle_power")
    if not idle:
        idle_s = (experiment.get("settings") or {}).get("idle_s")
        return "--idle_s 0: idle power was not measured" if idle_s == 0 else "no idle measurement was recorded"
    missing = [k for k in power["energy_channels"] if k not in (idle.get("watts") or {})]
    return f"the idle measurement has no watts for {', '.join(missing) or 'these channels'}"


def _idle_cells(power: dict[str, Any], experiment: dict[str, Any], reasons: Reasons) -> list[str]:
    """Idle watts per channel, and whether they were subtracted from energy per query."""
    idle = power.get("idle_w") or {}
    watts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(idle.items())) if idle else None
    above = power.get("joules_per_query_above_idle")
    if _known(above):
        return [watts or NOT_MEASURED, f"subtracted: {1000 * above:.2f} mJ/query"]
    why = _idle_reason(power, experiment) if not idle else "no query completed in the window"
    return [watts or reasons.missing(why), "not subtracted" + reasons.mark(why)]


def _cross_check(power: dict[str, Any], reasons: Reasons) -> str:
    """Integrated power samples / the energy counter, per channel that has both."""
    channels = power.get("channels") or {}
    both = {k: c for k, c in channels.items() if _known(c.get("joules_counter")) and _known(c.get("joules_integrated"))}
    ratios = [f"{k} {c['joules_integrated'] / c['joules_counter']:.3f}" for k, c in sorted(both.items())
              if c["joules_counter"]]
    if ratios:
        return ", ".join(ratios)
    energy = power.get("energy_channels") or []
    if not energy:
        return reasons.missing(_no_energy_reason(power))
    only = [f"{k} has {'an energy counter' if _known(channels[k].get('joules_counter')) else 'power samples'} only"
            for k in energy if k in channels]
    return reasons.missing("nothing to cross-check: " + "; ".join(only))


def _gpu_setting(power: dict[str, Any], set_to: Any, key: str, word: str, reasons: Reasons) -> str:
    """A GPU setting in force: as set by the sweep, and as NVML read it (the window's average)."""
    read = {k: c[f"{key}_avg"] for k, c in sorted((power.get("channels") or {}).items())
            if k.startswith("gpu") and _known(c.get(f"{key}_avg"))}
    seen = ", ".join(f"{k} {significant(v)}" for k, v in read.items())
    if _known(set_to):
        return f"{word} {set_to:g}" + (f" (read {seen})" if seen else "")
    if seen:
        return seen
    nvml = (power.get("sources") or {}).get("nvml")
    return reasons.missing(f"nvml: {nvml}" if nvml and nvml != "ok" else "NVML read no GPU in this configuration")


def _efficiency_cells(record: dict[str, Any], reasons: Reasons) -> list[str]:
    """Serving efficiency (served / units x raw) and the raw baseline's throughput."""
    baseline = record.get("baseline") or {}
    raw = baseline.get("throughput_qps")
    units = record.get("baseline_units") or 1
    raw_cell = (significant(raw) + (f" x {units}" if units > 1 else "")) if _known(raw) else reasons.missing(NO_BASELINE)
    efficiency = record.get("serving_efficiency")
    if _known(efficiency):
        return [significant(float(efficiency)), raw_cell]
    why = record.get("serving_efficiency_problem")
    if not why:
        why = NO_BASELINE if not _known(raw) else _unmeasured_reason(record)
    return [reasons.missing(why), raw_cell]


def _power_cells(record: dict[str, Any], experiment: dict[str, Any], reasons: Reasons) -> list[str]:
    """idle W, above idle, integrated / counter, power limit, SM clock, serving efficiency, baseline."""
    power = record.get("power")
    settings = record.get("settings") or {}
    if power is None:
        why = reasons.missing(_unmeasured_reason(record))
        cells = [why] * 3
        cells += [f"set {settings['gpu_power_limit_w']:g}" if _known(settings.get("gpu_power_limit_w")) else why,
                  f"locked {settings['gpu_clock_mhz']:g}" if _known(settings.get("gpu_clock_mhz")) else why]
    else:
        cells = [*_idle_cells(power, experiment, reasons), _cross_check(power, reasons),
                 _gpu_setting(power, settings.get("gpu_power_limit_w"), "power_limit_w", "set", reasons),
                 _gpu_setting(power, settings.get("gpu_clock_mhz"), "sm_clock_mhz", "locked", reasons)]
    return cells + _efficiency_cells(record, reasons)


def to_markdown_section(section: CalibrationSection) -> str:
    """The section in Markdown: the experiment lines, both tables and the numbered reasons."""
    from .table import to_markdown

    parts = ["## Calibration", "",
             "Why to trust the numbers above: the load generator's lateness and CPU use, the clocks, idle power, "
             "the energy counter against integrated power, the GPU settings in force, the serving efficiency "
             "and the calibration run. 'not measured [n]': reason n below.", ""]
    parts += [f"- {line}" for line in section.lines] + ["", "### Load generator and clocks", "",
                                                        to_markdown(LOAD_COLUMNS, section.load_rows)]
    parts += ["### Power, GPU settings and serving efficiency", "", to_markdown(POWER_COLUMNS, section.power_rows)]
    reasons = section.reasons.lines()
    if reasons:
        parts += ["Not measured, and why:", ""] + [f"- {line}" for line in reasons]
    return "\n".join(parts) + "\n"


ROWS_PER_PAGE = 16  # rows of one calibration table on a page
ROWS_SHARED = 8  # both tables share one page when neither has more rows than this
ROW_IN = 0.22  # height of a table row on the page, inches
LINE_IN = 0.16  # height of a line of text, inches
WRAP = 118  # characters in a line of text at 9 points across the page
TITLES = ("Load generator and clocks", "Power, GPU settings and serving efficiency")


def pdf_pages(section: CalibrationSection, page_in: tuple[float, float]) -> list:
    """The section as PDF pages of ``page_in`` inches: the experiment lines, then the two tables
    (on one page when both are short, else ROWS_PER_PAGE rows a page), each page with the reasons
    its rows refer to."""
    import textwrap

    head = [w for line in section.lines for w in textwrap.wrap(line, WRAP, subsequent_indent="    ")]
    tables = [(TITLES[0], LOAD_COLUMNS, section.load_rows), (TITLES[1], POWER_COLUMNS, section.power_rows)]
    if max(len(section.load_rows), len(section.power_rows)) <= ROWS_SHARED:
        plan = [tables]
    else:
        plan = [[(title if k == 0 else f"{title}, continued", columns, rows[k:k + ROWS_PER_PAGE])]
                for title, columns, rows in tables for k in range(0, max(len(rows), 1), ROWS_PER_PAGE)]
    if (len(head) + 3) * LINE_IN + _content_in(plan[0], section.reasons) > page_in[1] - 0.7:
        plan.insert(0, [])  # many experiments: their lines get a page of their own
    pages = []
    for k, blocks in enumerate(plan):
        title = f"Calibration: why to trust the numbers (page {k + 1} of {len(plan)})"
        lines = [title, ""] + (head if k == 0 else [])
        pages.append(_page(page_in, lines, blocks, section.reasons))
    return pages


def _content_in(blocks: list, reasons: Reasons) -> float:
    """How tall (inches) the tables of a page and their reasons are."""
    import textwrap

    notes = reasons.lines([row for _, _, rows in blocks for row in rows])
    wrapped = sum(len(textwrap.wrap(n, WRAP)) for n in notes)
    return sum(0.55 + (len(rows) + 1) * ROW_IN for _, _, rows in blocks) + wrapped * LINE_IN


def _page(page_in: tuple[float, float], lines: list[str], blocks: list, reasons: Reasons) -> Any:
    """One page: ``lines`` of text at the top, then each (title, columns, rows) table, then the
    reasons the tables refer to; positions in inches from the top."""
    import textwrap

    import matplotlib.pyplot as plt

    width, height = page_in
    fig = plt.figure(figsize=page_in)
    y = 0.35
    fig.text(0.03, 1 - y / height, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace")
    y += (len(lines) + 1) * LINE_IN
    for title, columns, rows in blocks:
        fig.text(0.03, 1 - y / height, title, va="top", ha="left", fontsize=10, weight="bold")
        y += 0.3  # with the 0.25 after the table, the 0.55 of _content_in
        table_in = (len(rows) + 1) * ROW_IN
        ax = fig.add_axes((0.03, 1 - (y + table_in) / height, 0.94, table_in / height))
        ax.axis("off")
        table = ax.table(cellText=rows or [[""] * len(columns)], colLabels=columns, cellLoc="left",
                         bbox=(0, 0, 1, 1))
        table.auto_set_font_size(False)
        table.set_fontsize(7.5)
        table.auto_set_column_width(list(range(len(columns))))
        y += table_in + 0.25
    notes = reasons.lines([row for _, _, rows in blocks for row in rows])
    if notes:
        text = [w for n in notes for w in textwrap.wrap(n, WRAP, subsequent_indent="    ")]
        fig.text(0.03, 1 - y / height, "\n".join(text), va="top", ha="left", fontsize=8, family="monospace")
    return fig
