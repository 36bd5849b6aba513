"""The ``report`` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..common.cli_types import finite_float


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand and its arguments to ``sub``."""
    p = sub.add_parser(
        "report",
        help="summarise saved experiments: a table, Markdown, PNG plots and one PDF",
        description="Build a report from saved experiments (no engine needed). Several experiment or results "
                    "directories merge into one comparison.",
    )
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                   help="experiment directories (results/<experiment_id>) or results directories holding them")
    p.add_argument("--out", type=Path, default=None,
                   help="where the report goes (default: DIR/report for one experiment, ./report for several)")
    p.add_argument("--slo_ms", type=finite_float, default=None,
                   help="name, per model, the configuration with the highest throughput and the one with the "
                        "fewest joules per query whose p99 stays under this many ms; for a pipeline experiment, "
                        "star the cheapest configuration (fewest replica cores plus GPUs) whose end-to-end p99 does")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Build the report of ``args.dirs`` and print its table, notes and files; UsageError on
    bad arguments or unreadable results."""
    from rich.console import Console
    from rich.table import Table

    from ..common.errors import UsageError
    from ..results.frame import ResultsError, experiment_dirs
    from . import pipeline, planner
    from .build import build_report
    from .table import to_markdown

    if args.slo_ms is not None and args.slo_ms <= 0:
        raise UsageError(f"--slo_ms must be a positive number of milliseconds, got {args.slo_ms:g}")
    try:
        paths, plans = planner.split_inputs(args.dirs)  # a plan directory (plan --results_dir) gives plan files only
        dirs = experiment_dirs(paths) if paths or not plans else []
        out = args.out or (dirs[0] / "report" if len(dirs) == 1 and not plans else
                           args.dirs[0] / "report" if plans and not dirs and args.dirs[0].is_dir() else Path("report"))
        report = build_report(args.dirs, out, args.slo_ms)
    except (ResultsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except PermissionError as exc:
        raise UsageError(f"cannot write the report: {exc}; choose another --out") from None
    console = Console()
    tables = [(f"{len(report.rows)} configurations from {len(dirs) - len(report.pipelines)} experiment(s)",
               report.columns, report.rows, [*report.notes, *report.best])] if report.rows else []
    tables += [(f"pipeline {s.name} ({s.experiment}): {len(s.rows)} configurations", pipeline.COLUMNS, s.rows,
                [*s.notes, *([s.pick] if s.pick else [])]) for s in report.pipelines]
    if report.planner is not None:
        tables.append((f"planner: {len(report.planner.files)} plan file(s)", planner.SUMMARY_COLUMNS,
                       report.planner.rows, report.planner.notes))
    for title, columns, rows, lines in tables:
        if console.is_terminal:
            table = Table(*columns, title=title)
            for row in rows:
                table.add_row(*row)
            console.print(table)
        else:  # a file or a pipe: the Markdown table, never cut to a terminal's width
            several = report.pipelines or report.planner
            print(f"{title}\n\n{to_markdown(columns, rows)}" if several else to_markdown(columns, rows), end="")
        for line in lines:
            print(line)
    names = ", ".join(f.name for f in report.files)
    print(f"report in {report.out_dir}: {names}")
    return 0
