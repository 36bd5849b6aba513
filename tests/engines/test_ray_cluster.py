"""--engine ray on a cluster of two Ray nodes on this machine (loopback only): replicas and load
clients on both nodes, every client's raw data gathered on the driver's clock, power per host,
and nothing of Ray left behind."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray Serve not installed (pip install -e '.[ray]')"),
    pytest.mark.timeout(900),
]
RAY_NAMES = ("raylet", "gcs_server", "ray::", "dashboard", "log_monitor", "default_worker")


def ray_descendants() -> set[int]:
    """Ray's processes among this test process's descendants (it is their subreaper: see conftest)."""
    pids = set()
    for p in psutil.Process().children(recursive=True):
        try:
            text = p.name() + " " + " ".join(p.cmdline())
            if p.status() != psutil.STATUS_ZOMBIE and any(n in text for n in RAY_NAMES):
                pids.add(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return pids


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[str]:
    """A head and a second node, two CPUs each, bound to 127.0.0.1; torn down afterwards, and the
    test fails if any of their processes outlives the teardown."""
    from clipper_bench.common.ray_env import use_loopback_ray_env

    use_loopback_ray_env()
    from ray.cluster_utils import Cluster

    before = ray_descendants()
    loopback = {"num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=dict(loopback))
    try:
        cluster.add_node(**loopback)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()
    deadline = time.monotonic() + 30
    while (left := ray_descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray processes left after the cluster's teardown: {sorted(left)}"


def run_on_cluster(address: str, results: Path, *args: str) -> tuple[list[dict], Path]:
    proc = subprocess.run(
        [sys.executable, "-m", "clipper_bench", "run", "--engine", "ray", "--ray_address", address, "-r", "2",
         "-n", "2", "-d", "3", "--warmup", "1", "--idle_s", "1", "--results_dir", str(results), *args],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (exp,) = [p for p in results.iterdir() if p.is_dir()]
    runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    records = [json.loads((exp / "configs" / f"{r['config_id']}.json").read_text()) for r in runs]
    return records, exp


def assert_spread_over_both_nodes(records: list[dict], exp: Path, rapl: bool) -> None:
    from clipper_bench.load.stats import ClientData

    for rec in records:
        assert rec["status"] == "ok", rec["reason"]
        nodes = rec["nodes"]
        assert len(nodes) == 2 and len({n["node_id"] for n in nodes}) == 2
        # one replica and one client on each node, each replica pinned to a core of its own
        assert [len(n["replicas"]) for n in nodes] == [1, 1]
        assert sorted(c["client_index"] for n in nodes for c in n["clients"]) == [0, 1]
        assert [len(n["clients"]) for n in nodes] == [1, 1]
        assert sorted(r["cpus"][0] for n in nodes for r in n["replicas"]) == [0, 1]
        # each client's raw data says where it ran and holds queries answered in the window
        data = [ClientData.from_npz(str(exp / "configs" / f)) for f in rec["raw_files"]]
        assert {d.site["node_id"] for d in data} == {n["node_id"] for n in nodes}
        window = tuple(rec["window_wall_ns"])
        latencies = []
        for d in data:
            ok = d.measured(window) & (d.status == 0)
            assert ok.sum() > 0  # both clients measured in the window
            latencies.append((d.done_wall_ns[ok] - d.start_wall_ns[ok]) / 1e6)
            assert abs(d.site["clock_offset_ns"]) < d.site["clock_rtt_ns"] + 5_000_000  # one machine's clock
        # the record's percentiles are those of both clients' raw latencies together
        merged = np.concatenate(latencies)
        assert rec["summary"]["num_completed"] == merged.size
        assert rec["summary"]["latency_ms"]["p99"] == pytest.approx(float(np.percentile(merged, 99)))
        # both nodes share this machine: one power host, sampled once
        (host,) = rec["power"]["hosts"].values()
        assert sorted(host["node_ids"]) == sorted(n["node_id"] for n in nodes)
        assert all(n["power_host"] == next(iter(rec["power"]["hosts"])) for n in nodes)
        if rapl:  # the fake RAPL's constant watts, counted once although two nodes run here
            assert host["sources"]["rapl"] == "ok" and host["joules"] == rec["power"]["joules"]
            assert rec["power"]["avg_w"] == pytest.approx(sum(rec["power"]["idle_w"].values()), rel=0.1)
        else:  # no source here: it says why, and no number stands for the unknown
            assert host["sources"]["rapl"].startswith("unavailable") and host["joules"] is None
            assert rec["power"]["joules"] is None


def assert_report_shows_nodes(exp: Path, out: Path, records: list[dict]) -> None:
    proc = subprocess.run([sys.executable, "-m", "clipper_bench", "report", str(exp), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    nodes = (out / "report.md").read_text().split("## Nodes", 1)[1].split("\n## ", 1)[0]  # that section alone
    for rec in records:
        rows = [line for line in nodes.splitlines() if line.startswith(f"| {rec['config_id']} |")]
        assert len(rows) == 2 and sum("| yes |" in r for r in rows) == 1


def test_noop_and_sleep_on_two_nodes(two_node_cluster, tmp_path):
    from tests.power.fake_powercap import FakePowercap

    with FakePowercap(tmp_path / "powercap"):
        noop, noop_exp = run_on_cluster(two_node_cluster, tmp_path / "noop", "-m", "noop", "-b", "1", "4",
                                        "--powercap_root", str(tmp_path / "powercap"))
    assert [r["config_id"] for r in noop] == ["noop-r2-c1-b1", "noop-r2-c1-b4"]
    assert_spread_over_both_nodes(noop, noop_exp, rapl=True)
    assert_report_shows_nodes(noop_exp, tmp_path / "report", noop)

    sleep_ms = 250.0
    sleep, sleep_exp = run_on_cluster(two_node_cluster, tmp_path / "sleep", "-m", "sleep", "--sleep_ms", str(sleep_ms),
                                      "-b", "1", "2", "--ray_ingress", "handle")
    assert_spread_over_both_nodes(sleep, sleep_exp, rapl=False)
    for rec in sleep:
        ideal = 2 * rec["node_configs"][0]["batch_size"] / (sleep_ms / 1000)
        got = rec["summary"]["throughput_qps"]
        assert got == pytest.approx(ideal, rel=0.15), f"{rec['config_id']}: {got:.2f} q/s, ideal {ideal:.2f}"
    assert np.all([rec["deployment"]["started_for"] == "sleep-r2-c1-b1" for rec in sleep])
