"""Reports, DataFrames and the example notebook, from experiments saved to disk (no engine running)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import clipper_bench
from tests.conftest import REPO, our_processes

FIGURES = ("latency_vs_throughput.png", "throughput_p99_vs_batch.png", "throughput_heatmap.png")


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipper_bench", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def experiments(tmp_path_factory) -> tuple[Path, Path]:
    """Two saved sweeps of the sleep model (binary and REST), 2 replica counts x 2 batch sizes each."""
    results = tmp_path_factory.mktemp("results")
    made = []
    for transport in ("binary", "rest"):
        before = set(results.iterdir())
        proc = cli("run", "-m", "sleep", "--sleep_ms", "4", "-r", "1", "2", "-b", "1", "4", "-d", "1",
                   "--warmup", "0.3", "--idle_s", "0", "--oversubscribe", "--transport", transport,
                   "--results_dir", str(results))
        assert proc.returncode == 0, proc.stderr
        (exp,) = set(results.iterdir()) - before
        made.append(exp)
    return made[0], made[1]


def test_load_results_gives_one_row_per_configuration(experiments):
    binary, _ = experiments
    df = clipper_bench.load_results(binary)
    assert sorted(zip(df.num_replicas, df.batch_size, strict=True)) == [(1, 1), (1, 4), (2, 1), (2, 4)]
    assert (df.status == "ok").all() and df.clean.all() and (df.throughput_qps > 0).all()
    runs = {json.loads(line)["config_id"]: json.loads(line) for line in (binary / "runs.ndjson").read_text().splitlines()}
    for row in df.itertuples():
        assert row.p99_ms == runs[row.config_id]["latency_ms"]["p99"]
        assert row.transport == "binary" and row.engine == "local"
    assert "settings.concurrency" in df and "power.sources.rapl" in df and "deployment_reused" in df
    # the sleep model's batch takes 4 ms: no answer can be faster
    assert (df.p50_ms >= 4).all()


def test_raw_queries_reproduce_the_recorded_percentiles(experiments):
    df = clipper_bench.load_results(experiments[0])
    row = df[df.config_id == "sleep-r2-c1-b4"].iloc[0]
    queries = clipper_bench.load_queries(row)
    counted = queries[queries.in_window & (queries.status == "ok")]
    assert len(counted) == row.num_completed
    assert np.percentile(counted.latency_ms, 99) == pytest.approx(row.p99_ms, rel=1e-9)
    assert (queries.done_wall_ns[queries.status == "ok"] > queries.send_wall_ns[queries.status == "ok"]).all()


def test_report_from_saved_experiments_with_no_engine_running(experiments, tmp_path):
    assert not our_processes()
    binary, rest = experiments
    proc = cli("report", str(binary), "--slo_ms", "1000")
    assert proc.returncode == 0, proc.stderr
    out = binary / "report"
    for name in ("report.md", "report.pdf", "summary.csv", *FIGURES):
        assert (out / name).stat().st_size > 0, name
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    assert_paper_ready(out)
    assert "| model | replicas |" in proc.stdout  # not a terminal: the Markdown table
    md = (out / "report.md").read_text()
    for name in FIGURES:
        assert f"]({name})" in md
    # the sleep model: 2 replicas x batch 4 has the highest throughput, and p99 stays far under 1 s
    df = clipper_bench.load_results(binary)
    best = df.loc[df.throughput_qps.idxmax()].config_id
    assert f"highest throughput {best}" in proc.stdout
    assert "no energy was measured" in proc.stdout
    # nothing measured energy: no empty figure, one line that says why
    assert not (out / "energy_vs_batch.png").exists()
    note = next(line for line in md.splitlines() if line.startswith("Energy per query is not plotted"))
    assert "no configuration measured energy (" in note and "rapl: unavailable" in note

    merged = cli("report", str(binary), str(rest), "--out", str(tmp_path / "cmp"), "--slo_ms", "1000")
    assert merged.returncode == 0, merged.stderr
    table = (tmp_path / "cmp" / "report.md").read_text()
    assert "| series | model |" in table and "| binary | sleep |" in table and "| rest | sleep |" in table
    assert merged.stdout.count("highest throughput") == 2  # one pick per series
    assert not our_processes()


def test_slo_that_nothing_meets_is_said_plainly(experiments, tmp_path):
    proc = cli("report", str(experiments[0]), "--out", str(tmp_path / "r"), "--slo_ms", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "no configuration keeps p99 under 0.5 ms; the lowest p99 was" in proc.stdout


@pytest.mark.parametrize(("args", "fragment"), [
    (["/nonexistent/exp"], "does not exist: pass an experiment directory"),
    (["{tmp}"], "holds no experiment"),
    (["{tmp}", "--slo_ms", "-1"], "--slo_ms must be a positive number"),
])
def test_report_bad_input_gets_one_line(tmp_path, args, fragment):
    proc = cli("report", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2
    assert fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_example_notebook_executes(experiments, tmp_path):
    import nbclient
    import nbformat

    nb = nbformat.read(REPO / "examples" / "reading_results.ipynb", as_version=4)
    os.environ["CLIPPER_BENCH_EXPERIMENT"] = str(experiments[0])
    try:
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        del os.environ["CLIPPER_BENCH_EXPERIMENT"]
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "queries, p99" in printed and f"experiment: {experiments[0]}" in printed


def test_the_readme_notebook_command_runs_from_anywhere(experiments, tmp_path):
    """`.venv/bin/jupyter execute examples/reading_results.ipynb`, the README's command, from
    another directory than the checkout (the notebook finds the project itself)."""
    jupyter = Path(sys.executable).with_name("jupyter")
    proc = subprocess.run([str(jupyter), "execute", str(REPO / "examples" / "reading_results.ipynb")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CLIPPER_BENCH_EXPERIMENT": str(experiments[0])})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_load_results_round_trips_through_parquet(experiments, tmp_path):
    import pandas as pd

    df = clipper_bench.load_results(experiments[0])
    path = tmp_path / "results.parquet"
    df.to_parquet(path)  # every column, the nested ones included, has a type parquet can hold
    back = pd.read_parquet(path)
    assert list(back.columns) == list(df.columns) and len(back) == len(df)
    assert back.throughput_qps.tolist() == df.throughput_qps.tolist()
    assert back.config_id.tolist() == df.config_id.tolist()


def assert_paper_ready(out: Path) -> None:
    """Every figure as vector PDF and SVG and a 300-dpi PNG; every page of report.pdf one size."""

    from PIL import Image

    for png in FIGURES:
        stem = png.removesuffix(".png")
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert b"<svg" in (out / f"{stem}.svg").read_bytes()[:2000]
        with Image.open(out / png) as image:
            assert image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
            assert image.size[0] >= 1500  # a 5-inch panel at 300 dpi
    boxes = re.findall(rb"/MediaBox\s*\[([^\]]+)\]", (out / "report.pdf").read_bytes())
    assert len(boxes) >= 4 and len(set(boxes)) == 1, boxes


def test_figures_mark_the_slo_and_the_pick_on_measured_batch_sizes_only(experiments):
    from clipper_bench.report import plots
    from clipper_bench.report.table import add_series, best_under_slo, picked

    df = add_series(clipper_bench.load_results(experiments[0]))
    fig = plots.throughput_and_p99_vs_batch(df, 1000, picked(best_under_slo(df, 1000)))
    top, bottom = fig.axes[0], fig.axes[1]
    for ax in (top, bottom):  # categorical: a tick per measured batch size, none between
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4"]
    assert any(list(line.get_ydata()) == [1000, 1000] for line in bottom.get_lines())  # the SLO line
    legend = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert "SLO p99 1000 ms" in legend and "pick under the SLO" in legend
    star = [c for c in top.collections if c.get_label() == "pick under the SLO"]
    assert len(star) == 1 and len(star[0].get_offsets()) == 1


def test_a_pick_stars_only_its_own_experiments_point(experiments):
    """Two experiments share configuration ids; one's pick must not star the other's point."""
    from clipper_bench.report import plots
    from clipper_bench.report.table import add_series

    df = add_series(clipper_bench.load_results(list(experiments)))
    first = df[df["experiment"] == df["experiment"].iloc[0]].iloc[0]
    assert (df["config_id"] == first["config_id"]).sum() == 2  # the same id in both experiments
    fig = plots.latency_vs_throughput(df, 1000, {(first["experiment"], first["config_id"])})
    stars = [c for c in fig.axes[0].collections if c.get_label() == "pick under the SLO"]
    assert sum(len(c.get_offsets()) for c in stars) == 1


def test_heatmap_numbers_keep_significant_digits():
    from clipper_bench.report.table import significant

    assert [significant(v) for v in (0.2, 0.0123, 1.234, 12.34, 999.6, 12345.0, 0.0)] == \
        ["0.200", "0.0123", "1.23", "12.3", "1,000", "12,345", "0"]


@pytest.fixture(scope="module")
def open_loop(tmp_path_factory) -> Path:
    """A saved open-loop sweep of the sleep model with raw baselines (one configuration)."""
    results = tmp_path_factory.mktemp("open")
    proc = cli("run", "-m", "sleep", "--sleep_ms", "4", "-r", "1", "-b", "1", "--rate", "100", "-d", "1",
               "--warmup", "0.3", "--idle_s", "0", "--baseline", "--baseline_s", "0.5", "--results_dir", str(results))
    assert proc.returncode == 0, proc.stderr
    (exp,) = list(results.iterdir())
    return exp


def test_calibration_section_carries_the_records_numbers(experiments, open_loop, tmp_path):
    """report.md's calibration section: lateness, the generator's CPU, clocks, serving efficiency and
    baseline from the records; what was not measured says why, never 0; and one more PDF page."""
    from clipper_bench.load.stats import client_cpu_share
    from clipper_bench.report.table import significant

    proc = cli("report", str(open_loop), str(experiments[0]), "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    section = md[md.index("## Calibration"):md.index("## Plots")]
    (record_file,) = (open_loop / "configs").glob("sleep-r1-c1-b1-rate100.json")
    rec = json.loads(record_file.read_text())
    late = rec["summary"]["load"]["lateness"]
    share = client_cpu_share([str(open_loop / "configs" / name) for name in rec["raw_files"]])
    assert share is not None and 0 < share < 2
    row = next(line for line in section.splitlines() if "sleep-r1-c1-b1-rate100 |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:] == ["open, 100 q/s constant", f"{late['p99_ms']:.2f}", f"{100 * late['share_over_1ms']:.1f}%",
                         "yes" if late["kept_up"] else "NO", f"{100 * share:.1f}% of a core", "local clock"]
    power_row = [line for line in section.splitlines() if "sleep-r1-c1-b1-rate100 |" in line][1]
    assert f"| {significant(rec['serving_efficiency'])} | {significant(rec['baseline']['throughput_qps'])} |" in power_row
    assert "not measured [" in power_row and "| 0 |" not in power_row  # no energy here: said, never 0
    closed = next(line for line in section.splitlines() if "sleep-r1-c1-b1 |" in line)
    assert "closed, 3 outstanding" in closed and "not measured [" in closed
    assert "closed loop: each query goes out when an answer comes back" in section
    assert "no raw baseline of this model and batch size: run with --baseline" in section  # the closed sweep had none
    assert "Idle power: not measured" in section and "Calibration run: none in this experiment" in section
    assert_paper_ready(tmp_path / "r")  # every page, the calibration page too, one size
    boxes = re.findall(rb"/MediaBox", (tmp_path / "r" / "report.pdf").read_bytes())
    assert len(boxes) == 1 + 1 + len(FIGURES)  # the table, the calibration page, the figures


def test_calibration_cells_of_a_gpu_and_a_ray_client(open_loop, tmp_path):
    """A GPU's power block (energy counter and samples, limit and clock read by NVML, idle watts) and
    a client on a Ray node, grafted onto a real record: the section shows the ratio, the settings
    in force, the idle watts subtracted and the client's clock offset."""
    import shutil

    from clipper_bench.power.summary import summarize_power
    from clipper_bench.report.calibration import calibration_section
    from clipper_bench.report.table import add_series

    exp = tmp_path / open_loop.name
    shutil.copytree(open_loop, exp)
    path = next((exp / "configs").glob("sleep-r1-c1-b1-rate100.json"))
    rec = json.loads(path.read_text())
    t = [0.0, 0.5, 1.0]
    doc = {"config": {"interval_s": 0.5}, "status": {"nvml": "ok"},
           "series": {"gpu0": {"t": t, "energy_j": [0.0, 100.0, 200.0], "power_w": [200.0, 200.0, 204.0],
                               "power_limit_w": [300.0] * 3, "sm_clock_mhz": [1410.0] * 3}}}
    rec["power"] = summarize_power(doc, 100, {"gpu0": 60.0})
    rec["settings"]["gpu_power_limit_w"] = 300.0
    rec["clients"] = [{"client_index": 0, "node_id": "abc", "clock_offset_ns": 120_000, "clock_rtt_ns": 300_000}]
    path.write_text(json.dumps(rec))
    section = calibration_section([exp], add_series(clipper_bench.load_results(exp)))
    (power,) = section.power_rows
    assert power[1:6] == ["gpu0 60.0", "subtracted: 1400.00 mJ/query", "gpu0 1.005", "set 300 (read gpu0 300)",
                          "gpu0 1,410"]
    assert section.load_rows[0][-1] == "#0 +0.12 ms (rtt 0.30)"
