"""A plug-in installed as its own package (tests/plugins/toy_plugin) adds a model, an engine and a
power source through entry points, and a run uses all three (issue 30)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.server.test_serve import printed_ports, start_serve, stop_serve

REPO = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).resolve().parent / "toy_plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The toy plug-in pip-installed into a folder of its own, and the PYTHONPATH that finds it."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PLUGIN)], check=True, timeout=120)
    return os.pathsep.join([str(target), str(REPO)])


def _python(code: list[str], pythonpath: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, *code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_registries_list_the_plugin(plugin_path: str) -> None:
    """Each registry offers the plug-in's entry by name, after the built-ins."""
    out = _python(["-c", "from clipper_bench.engines import engine_names as e;"
                         "from clipper_bench.containers.models import model_names as m;"
                         "from clipper_bench.power.meters import parse_meter as p;"
                         "print(e()[0], e()[-1], 'toy' in m(), p('toy:7'))"], plugin_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["local", "toy", "True", "('toy',", "'7')"]


def test_run_with_the_plugins_model_engine_and_power_source(plugin_path: str, tmp_path: Path) -> None:
    """``run -m toy --engine toy --power_meter toy:42`` finishes with an ok record from all three."""
    out = _python(["-m", "clipper_bench", "run", "-m", "toy", "--engine", "toy", "--toy_label", "demo",
                   "--toy_offset", "3", "--power_meter", "toy:42", "-d", "1", "--warmup", "0", "--idle_s", "0",
                   "--results_dir", str(tmp_path)], plugin_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (runs,) = tmp_path.glob("*/runs.ndjson")
    (record,) = [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]
    assert (record["status"], record["model_name"], record["engine"]) == ("ok", "toy", "toy")
    assert record["num_completed"] > 0
    assert record["power"]["node_source"] == "toy" and record["power"]["node_power_mean_w"] == 42.0
    (sweep,) = tmp_path.glob("*/sweep.yaml")  # the plug-in's flags are part of the sweep as run
    assert "toy_label: demo" in sweep.read_text() and "toy_offset: 3" in sweep.read_text()
    (config,) = tmp_path.glob(f"*/configs/{record['config_id']}.json")
    assert json.loads(config.read_text())["settings"]["toy_offset"] == 3


def test_the_plugins_model_reads_its_own_flag_when_served(plugin_path: str, no_leftover_processes,
                                                         tmp_path: Path) -> None:
    """``serve -m toy --toy_offset 3``: the flag, declared beside the toy model alone, reaches the
    model in its replica process (four elements plus three)."""
    proc, out = start_serve("-m", "toy", "--toy_offset", "3", "--log_dir", str(tmp_path),
                            env={**os.environ, "PYTHONPATH": plugin_path})
    try:
        url = f"http://127.0.0.1:{printed_ports(out)['query']}/toy/predict"
        answer = requests.post(url, json={"input": [0.1, 0.2, 0.3, 0.4]}, timeout=10).json()
        assert answer["output"] == 7 and answer["default"] is False, answer  # JSON, as Clipper answers
    finally:
        stop_serve(proc)


def test_the_plugins_engine_flag_is_offered_and_checked_like_the_cores(plugin_path: str, tmp_path: Path) -> None:
    """The toy engine's --toy_label and the toy model's --toy_offset (declared in the plug-in alone)
    are in run --help and their checks run before anything starts, with the core's one-line error."""
    help_text = _python(["-m", "clipper_bench", "run", "--help"], plugin_path).stdout
    assert "--toy_label" in help_text and "--engine toy: a label" in help_text
    assert "-m toy: added to every answer" in help_text
    out = _python(["-m", "clipper_bench", "run", "-m", "toy", "--toy_offset", "5000", "-d", "1",
                   "--results_dir", str(tmp_path)], plugin_path)
    assert out.returncode == 2 and "--toy_offset" in out.stderr and "1000" in out.stderr, out.stderr
    out = _python(["-m", "clipper_bench", "run", "-m", "toy", "--engine", "toy", "--toy_label", " ",
                   "-d", "1", "--results_dir", str(tmp_path)], plugin_path)
    assert out.returncode != 0
    assert "--toy_label must not be empty: pass a word" in out.stderr
    assert not any(tmp_path.iterdir()), "refused before anything was written"


def test_without_the_plugin_toy_is_unknown() -> None:
    """Without the package installed nothing is added."""
    out = _python(["-c", "from clipper_bench.containers.models import model_names; print('toy' in model_names())"],
                  str(REPO))
    assert out.stdout.strip() == "False", out.stderr
