"""The report's figures, each a matplotlib Figure drawn from ``load_results`` rows measured ``ok``.

One panel per model (and per series when experiments are merged, for the heatmap); one line per
replica count (and cores per replica when that was swept, and series when merged).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .table import significant  # noqa: E402

PANEL_W, PANEL_H = 5.2, 3.8


def _panels(n: int, rows: int = 1) -> tuple[Figure, np.ndarray]:
    cols = max(1, math.ceil(n / rows))
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_W * cols, PANEL_H * rows), squeeze=False)
    return fig, axes


def _line_label(key: tuple, swept_cores: bool, merged: bool) -> str:
    series, replicas, cores = key
    label = f"{replicas} replica{'s' if replicas != 1 else ''}"
    if swept_cores:
        label += f" x {cores} cores"
    return f"{series}: {label}" if merged and series else label


def _lines(group: pd.DataFrame):
    """Yield (label, rows sorted by batch size) per line of a panel."""
    swept_cores = group["cpus_per_replica"].nunique() > 1
    merged = group["series"].astype(bool).any()
    for key, rows in group.groupby(["series", "num_replicas", "cpus_per_replica"], sort=True):
        yield _line_label(key, swept_cores, merged), rows.sort_values("batch_size")


def _batch_positions(group: pd.DataFrame) -> dict[int, int]:
    """Each measured batch size's place on a categorical axis (only measured sizes get a tick)."""
    return {int(b): i for i, b in enumerate(sorted(group["batch_size"].unique()))}


def _batch_axis(ax, positions: dict[int, int]) -> None:
    ax.set_xticks(list(positions.values()), [str(b) for b in positions])
    ax.set_xlim(-0.4, len(positions) - 0.6)
    ax.set_xlabel("batch size")


def _x(rows: pd.DataFrame, positions: dict[int, int]) -> list[int]:
    return [positions[int(b)] for b in rows["batch_size"]]


def _slo_line(ax, slo_ms: float | None) -> None:
    """The latency target as a dashed horizontal line, labelled."""
    if slo_ms is not None:
        ax.axhline(slo_ms, color="tab:red", linestyle="--", linewidth=1, label=f"SLO p99 {slo_ms:g} ms")


def _mark_picks(ax, rows: pd.DataFrame, picks: set[tuple[str, str]], x, y) -> None:
    """A star on each configuration ``report --slo_ms`` picked (highest throughput under the SLO).
    Picks are (experiment, config_id): two experiments' series share configuration ids."""
    chosen = np.array([(e, c) in picks for e, c in zip(rows["experiment"], rows["config_id"], strict=True)], dtype=bool)
    if chosen.any():
        ax.scatter(np.asarray(x)[chosen], np.asarray(y)[chosen], marker="*", s=220, color="gold",
                   edgecolor="black", zorder=5, label="pick under the SLO")


def _no_data(ax, why: str) -> None:
    """A panel that has nothing to plot says why, in one line."""
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9, transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(ax) -> None:
    """A legend without repeated entries (the pick's star may appear on several lines)."""
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(unique.values(), unique.keys(), fontsize=8)


def _title(ax, model: str, what: str) -> None:
    ax.set_title(f"{model}: {what}", fontsize=11)
    ax.grid(True, alpha=0.3)


def _interval(rows: pd.DataFrame, metric: str) -> np.ndarray | None:
    """Error bars (below, above the plotted value) from ``--repeats``' 95% intervals, when recorded:
    the points are the repeats' means then, so the bars sit around them."""
    low, high = f"repeat_stats.{metric}.ci95_low", f"repeat_stats.{metric}.ci95_high"
    if low not in rows or rows[low].isna().all():
        return None
    mean = rows[f"repeat_stats.{metric}.mean"]
    return np.vstack([(mean - rows[low]).clip(lower=0).fillna(0), (rows[high] - mean).clip(lower=0).fillna(0)])


def _value(rows: pd.DataFrame, column: str, metric: str) -> pd.Series:
    """The repeats' mean when ``--repeats`` recorded one, else the single measurement."""
    mean = f"repeat_stats.{metric}.mean"
    return rows[mean].fillna(rows[column]) if mean in rows else rows[column]


def latency_vs_throughput(frame: pd.DataFrame, slo_ms: float | None = None, picks: set[tuple[str, str]] = frozenset()) -> Figure:
    """p99 latency against throughput, a line per replica count through its batch sizes (labelled),
    with the SLO line and the picks when ``report --slo_ms`` gave them."""
    models = sorted(frame["model_name"].unique())
    fig, axes = _panels(len(models))
    for ax, model in zip(axes.flat, models, strict=False):
        group = frame[frame["model_name"] == model]
        _title(ax, model, "p99 latency vs throughput")
        if group["p99_ms"].isna().all():
            _no_data(ax, "no configuration was answered successfully: no latency to plot")
            continue
        for label, rows in _lines(group):
            x, y = _value(rows, "throughput_qps", "throughput_qps"), _value(rows, "p99_ms", "p99_ms")
            ax.errorbar(x, y, xerr=_interval(rows, "throughput_qps"), yerr=_interval(rows, "p99_ms"),
                        marker="o", label=label, capsize=3)
            for (_, r), xi, yi in zip(rows.iterrows(), x, y, strict=True):
                ax.annotate(f"b{r['batch_size']}", (xi, yi), fontsize=7, textcoords="offset points", xytext=(4, 3))
            _mark_picks(ax, rows, picks, x, y)
        _slo_line(ax, slo_ms)
        ax.set_xlabel("throughput (queries/s)")
        ax.set_ylabel("p99 latency (ms)")
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        _legend(ax)
    fig.tight_layout()
    return fig


def throughput_and_p99_vs_batch(frame: pd.DataFrame, slo_ms: float | None = None,
                                picks: set[tuple[str, str]] = frozenset()) -> Figure:
    """Throughput (top row) and p99 latency (bottom row) against the measured batch sizes."""
    models = sorted(frame["model_name"].unique())
    fig, axes = _panels(2 * len(models), rows=2)
    for col, model in enumerate(models):
        top, bottom = axes[0, col], axes[1, col]
        group = frame[frame["model_name"] == model]
        positions = _batch_positions(group)
        for label, rows in _lines(group):
            x, thru, p99 = _x(rows, positions), _value(rows, "throughput_qps", "throughput_qps"), _value(rows, "p99_ms", "p99_ms")
            top.errorbar(x, thru, yerr=_interval(rows, "throughput_qps"), marker="o", label=label, capsize=3)
            bottom.errorbar(x, p99, yerr=_interval(rows, "p99_ms"), marker="o", label=label, capsize=3)
            _mark_picks(top, rows, picks, x, thru)
            _mark_picks(bottom, rows, picks, x, p99)
        _slo_line(bottom, slo_ms)
        for ax, what, unit in ((top, "throughput", "queries/s"), (bottom, "p99 latency", "ms")):
            _batch_axis(ax, positions)
            ax.set_ylabel(f"{what} ({unit})")
            ax.set_ylim(bottom=0)
            _title(ax, model, f"{what} vs batch size")
        _legend(top)
        _legend(bottom)
    fig.tight_layout()
    return fig


def has_energy(frame: pd.DataFrame) -> bool:
    """Whether any configuration measured energy (else the energy figure is left out, with a line why)."""
    return bool(frame["joules_per_query"].notna().any())


def energy_vs_batch(frame: pd.DataFrame) -> Figure:
    """Millijoules per query against batch size (total, and above idle dashed when known)."""
    models = sorted(frame["model_name"].unique())
    fig, axes = _panels(len(models))
    for ax, model in zip(axes.flat, models, strict=False):
        group = frame[frame["model_name"] == model]
        _title(ax, model, "energy per query vs batch size")
        if group["joules_per_query"].notna().sum() == 0:
            _no_data(ax, f"no energy measured for {model}")
            continue
        positions = _batch_positions(group)
        for label, rows in _lines(group):
            line, = ax.plot(_x(rows, positions), 1000 * rows["joules_per_query"], marker="o", label=label)
            if rows["joules_per_query_above_idle"].notna().any():
                ax.plot(_x(rows, positions), 1000 * rows["joules_per_query_above_idle"], marker=".",
                        linestyle="--", color=line.get_color(), label=f"{label}, above idle")
        _batch_axis(ax, positions)
        ax.set_ylabel("energy per query (mJ)")
        ax.set_ylim(bottom=0)
        _legend(ax)
    fig.tight_layout()
    return fig


def throughput_heatmap(frame: pd.DataFrame) -> Figure:
    """Throughput per batch size x replica count, one heatmap per model (and series)."""
    keys = sorted(frame.groupby(["model_name", "series"]).groups)
    fig, axes = _panels(len(keys))
    for ax, (model, series) in zip(axes.flat, keys, strict=False):
        group = frame[(frame["model_name"] == model) & (frame["series"] == series)]
        group = group.assign(shown_qps=_value(group, "throughput_qps", "throughput_qps"))  # the repeats' mean, as elsewhere
        grid = group.pivot_table(index="num_replicas", columns="batch_size", values="shown_qps", aggfunc="max")
        image = ax.imshow(grid.values, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(grid.shape[1]), [str(b) for b in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(r) for r in grid.index])
        ax.set_xlabel("batch size")
        ax.set_ylabel("replicas")
        top = np.nanmax(grid.values) if np.isfinite(grid.values).any() else 0
        for (i, j), value in np.ndenumerate(grid.values):
            if np.isfinite(value):
                ax.text(j, i, significant(value), ha="center", va="center", fontsize=8,
                        color="black" if value > 0.6 * top else "white")
        fig.colorbar(image, ax=ax, label="queries/s")
        ax.set_title(f"{model}{f' ({series})' if series else ''}: throughput", fontsize=11)
    fig.tight_layout()
    return fig
