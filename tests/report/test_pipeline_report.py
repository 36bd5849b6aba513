"""The report's pipeline pages, from a real two-stage noop pipeline experiment (and a single-model one
for a mixed report), saved to disk and read back with no engine running."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PIPELINE = {"name": "p", "stages": {"a": {"model": "noop"}, "b": {"model": "noop", "input": "a", "replicas": [1, 2]}}}
FIGURES = ("pipeline_latency_vs_throughput", "pipeline_stage_breakdown")


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipper_bench", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def _new_experiment(results: Path, *args: str) -> Path:
    before = set(results.iterdir()) if results.exists() else set()
    proc = cli(*args, "--idle_s", "0", "--oversubscribe", "--results_dir", str(results))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (exp,) = set(results.iterdir()) - before
    return exp


@pytest.fixture(scope="module")
def experiments(tmp_path_factory) -> tuple[Path, Path]:
    """A two-stage noop pipeline (stage b with 1 and 2 replicas) and a one-configuration noop run."""
    tmp = tmp_path_factory.mktemp("pipeline_report")
    spec = tmp / "p.yaml"
    spec.write_text(json.dumps(PIPELINE))  # JSON is valid YAML
    pipe = _new_experiment(tmp / "results", "pipeline", str(spec), "-d", "1.5", "--warmup", "0.5")
    single = _new_experiment(tmp / "results", "run", "-m", "noop", "-r", "1", "-b", "1", "-d", "1", "--warmup", "0.3")
    return pipe, single


def _pages(pdf: Path) -> list[bytes]:
    return re.findall(rb"/MediaBox\s*\[([^\]]+)\]", pdf.read_bytes())


def _runs(exp: Path) -> dict[str, dict]:
    return {(line := json.loads(text))["config_id"]: line for text in (exp / "runs.ndjson").read_text().splitlines()}


def _tuples(line: dict) -> str:
    return " ".join(f"{s['name']}:r{s['num_replicas']}c{s['cpus_per_replica']}b{s['batch_size']}"
                    for s in line["stages"])


def test_pipeline_table_carries_the_records_numbers(experiments, tmp_path):
    pipe, _ = experiments
    proc = cli("report", str(pipe), "--out", str(tmp_path), "--slo_ms", "10000")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "report.md").read_text()
    assert "## Pipeline p (" in md
    runs = _runs(pipe)
    assert len(runs) == 2
    for line in runs.values():
        row = next(r for r in md.splitlines() if r.startswith(f"| {_tuples(line)} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == line["status"] == "ok"
        assert cells[2] == f"{line['throughput_qps']:,.1f}"
        assert cells[3] == f"{100 * line['goodput']:.1f}%"
        assert cells[4] == f"{line['latency_ms']['p50']:,.2f}" and cells[5] == f"{line['latency_ms']['p99']:,.2f}"
        assert cells[6] == line["bottleneck"] and line["bottleneck"] in ("a", "b")
        assert cells[7] == str(1 + line["stages"][1]["num_replicas"])  # one core per replica, no GPU
        assert cells[8] == ("not measured" if line["power"]["joules_per_query"] is None
                            else f"{1000 * line['power']['joules_per_query']:.2f}")
        assert row in proc.stdout  # the printed table is the same
    # both configurations keep p99 under 10 s: the cheaper one (b with 1 replica, 2 cores) is the pick
    assert "Cheapest configuration under end-to-end p99 10000 ms: a:r1c1b1 b:r1c1b1, 2 cores+GPUs" in md
    assert "fewest replica cores plus GPUs" in md
    for stem in FIGURES:
        assert f"]({stem}.png)" in md
        assert (tmp_path / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert b"<svg" in (tmp_path / f"{stem}.svg").read_bytes()[:2000]
        from PIL import Image

        with Image.open(tmp_path / f"{stem}.png") as image:
            assert image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
    if not any(line["power"]["joules_per_query"] for line in runs.values()):
        assert "Energy per query is not plotted: no configuration measured energy (" in md
    pages = _pages(tmp_path / "report.pdf")
    assert len(pages) == 1 + len(FIGURES) and len(set(pages)) == 1  # the table page, then the figures


def test_mixed_report_adds_pipeline_pages_to_the_single_model_ones(experiments, tmp_path):
    pipe, single = experiments
    alone, mixed = tmp_path / "alone", tmp_path / "mixed"
    assert cli("report", str(single), "--out", str(alone)).returncode == 0
    proc = cli("report", str(single), str(pipe), "--out", str(mixed))
    assert proc.returncode == 0, proc.stderr
    before, after = _pages(alone / "report.pdf"), _pages(mixed / "report.pdf")
    assert len(after) == len(before) + 1 + len(FIGURES) and len(set(after)) == 1
    md = (mixed / "report.md").read_text()
    assert md.index("## Configurations") < md.index("## Pipeline p (")
    assert "| noop | 1 | 1 | 1 | ok |" in md  # the single-model table as before
    assert f"{pipe.name} (local engine" in md and f"{single.name} (local engine" in md
    summary = (mixed / "summary.csv").read_text().splitlines()
    assert len(summary) == 2  # the single-model configuration only
    for stem in ("latency_vs_throughput", *FIGURES):
        assert (mixed / f"{stem}.png").stat().st_size > 0


def test_breakdown_stacks_queueing_and_service_and_marks_the_bottleneck(experiments):
    from clipper_bench.report import pipeline

    frame = pipeline.pipeline_frame(experiments[0])
    fig = pipeline.stage_breakdown(frame)
    assert len(fig.axes) == 2  # a panel per configuration
    for ax, (_, r) in zip(fig.axes, frame.iterrows(), strict=True):
        assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
        widths = {round(p.get_width(), 9) for p in ax.patches if p.get_fill()}
        for stage in ("a", "b"):
            assert round(r["breakdown"][stage]["queue_ms"]["mean"], 9) in widths
            assert round(r["breakdown"][stage]["service_ms"]["mean"], 9) in widths
        bold = [t.get_text() for t in ax.texts if t.get_weight() == "bold"]
        assert bold == [f"util {100 * r['breakdown'][r['bottleneck']]['utilisation']:.0f}%, bottleneck"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["queueing (ms)", "service (ms)", "bottleneck stage (most utilised)"]


def test_energy_page_and_a_failed_configuration(experiments, tmp_path):
    """Records with energy and one not ok (rewritten from the real ones): the energy figure appears and
    the failed configuration is listed in a note, left out of the plots."""
    exp = tmp_path / experiments[0].name
    shutil.copytree(experiments[0], exp)
    lines = list(_runs(exp).values())
    lines[0]["power"] = {"joules_per_query": 0.0125, "avg_w": 30.0}
    lines[1].update(status="overloaded", reason="the queue grew all window")
    (exp / "runs.ndjson").write_text("".join(json.dumps(line) + "\n" for line in lines))
    proc = cli("report", str(exp), "--out", str(tmp_path / "out"), "--slo_ms", "0.001")
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"| {_tuples(lines[0])} | ok |" in md and "| 12.50 |" in md
    assert f"left out of the plots: {_tuples(lines[1])} (overloaded: the queue grew all window)" in md
    assert "No configuration keeps end-to-end p99 under 0.001 ms; the lowest was" in md
    assert "](pipeline_energy_per_query.png)" in md
    assert len(_pages(tmp_path / "out" / "report.pdf")) == 1 + len(FIGURES) + 1


def test_labels_name_only_what_differs_and_the_cheapest_breaks_ties_by_throughput():
    import pandas as pd

    from clipper_bench.report import pipeline

    def stage(name, r=1, c=1, b=1, gpus=()):
        return {"name": name, "num_replicas": r, "cpus_per_replica": c, "batch_size": b, "gpus": list(gpus)}

    configs = [[stage("x"), stage("y", b=4)], [stage("x", r=2), stage("y", b=4, gpus=[0])]]
    assert pipeline.short_labels(configs) == ["x:r1 y:g0", "x:r2 y:g1"]
    assert pipeline.short_labels(configs[:1]) == ["x:r1c1b1 y:r1c1b4"]
    assert [pipeline.cost(c) for c in configs] == [2, 4]
    frame = pd.DataFrame({"status": ["ok", "ok", "ok", "error"], "p99_ms": [5.0, 9.0, 20.0, 1.0],
                          "cost": [3, 3, 1, 1], "throughput_qps": [10.0, 30.0, 50.0, 90.0]})
    assert pipeline.cheapest_under(frame, 10)["throughput_qps"] == 30.0  # cost 3 twice: the faster
    assert pipeline.cheapest_under(frame, 1) is None
