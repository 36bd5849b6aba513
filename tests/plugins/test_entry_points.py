"""A plug-in installed as its own package (tests/plugins/toy_plugin) adds a model, an engine and a
power source through entry points, and a run uses all three (issue 30)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
                   "--power_meter", "toy:42", "-d", "1", "--warmup", "0", "--idle_s", "0",
                   "--results_dir", str(tmp_path)], plugin_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (runs,) = tmp_path.glob("*/runs.ndjson")
    (record,) = [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]
    assert (record["status"], record["model_name"], record["engine"]) == ("ok", "toy", "toy")
    assert record["num_completed"] > 0
    assert record["power"]["node_source"] == "toy" and record["power"]["node_power_mean_w"] == 42.0
    (sweep,) = tmp_path.glob("*/sweep.yaml")  # the plug-in's flag is part of the sweep as run
    assert "toy_label: demo" in sweep.read_text()


def test_the_plugins_engine_flag_is_offered_and_checked_like_the_cores(plugin_path: str, tmp_path: Path) -> None:
    """The toy engine's --toy_label (declared in the plug-in alone) is in run --help and its check runs
    before anything starts, with the core's one-line error."""
    help_text = _python(["-m", "clipper_bench", "run", "--help"], plugin_path).stdout
    assert "--toy_label" in help_text and "--engine toy: a label" in help_text
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
