"""``clipper-bench serve --metrics_port``: Prometheus' endpoint as ``run`` serves it (default 1390, moved
to a free port when taken; a port asked for that is taken is a one-line error; 0 turns it off)."""

from __future__ import annotations

import re

import requests

from clipper_bench.server.serve_cli import DEFAULT_PORTS
from clipper_bench.sweep.settings import RunSettings
from tests.server.test_serve import serve_on_a_taken_port, start_serve, stop_serve


def prometheus_url(out: str) -> str | None:
    (line,) = [x for x in out.splitlines() if x.startswith("prometheus ")]
    match = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", line)
    return match.group(1) if match else None


def test_serve_takes_run_s_default_metrics_port():
    assert DEFAULT_PORTS["metrics"] == RunSettings.__dataclass_fields__["metrics_port"].default == 1390


def test_serve_serves_prometheus_on_the_default_port_or_the_one_it_moved_to(no_leftover_processes, tmp_path):
    proc, out = start_serve("-m", "noop", "--log_dir", str(tmp_path))
    try:
        url = prometheus_url(out)
        assert url is not None, out
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        if port != 1390:  # another run holds 1390: serve said so
            assert "Prometheus metrics port 1390 on 127.0.0.1 is taken (another run?): using" in out
        query = re.search(r"^query frontend +http://(127\.0\.0\.1:\d+)", out, re.M).group(1)
        assert requests.post(f"http://{query}/noop/predict", json={"input": [0.5] * 8}, timeout=10).status_code == 200
        scrape = requests.get(url, timeout=10)  # a real scrape, in Prometheus' text format
        assert scrape.status_code == 200 and scrape.headers["Content-Type"].startswith("text/plain")
        assert re.search(r'^clipper_app_num_predictions_total\{app="noop"\} [1-9]', scrape.text, re.M), scrape.text[:2000]
    finally:
        stop_serve(proc)


def test_serve_metrics_port_taken_is_one_line_and_0_is_off(no_leftover_processes, tmp_path):
    proc, port = serve_on_a_taken_port("--metrics_port", tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"port {port} (Prometheus metrics) on 127.0.0.1 is in use" in line and "pass another --metrics_port" in line
    proc, out = start_serve("--metrics_port", "0", "--log_dir", str(tmp_path / "off"))
    try:
        assert prometheus_url(out) is None and "prometheus       off (--metrics_port 0)" in out
    finally:
        stop_serve(proc)
