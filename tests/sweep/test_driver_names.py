"""What the driver says and keeps about how it was started: the original's model names, the GPUs it
will not use, and a command line that runs again."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.power import fake_pynvml

DRIVER = REPO / "model_composition" / "image_driver_1" / "driver.py"


def test_svm_is_the_originals_name_for_kpca_svm_and_is_recorded_as_typed(tmp_path, no_leftover_processes):
    from clipper_bench.containers.models.classical import ClassicalBuildSettings, build_models

    models = tmp_path / "models"
    build_models(models, ClassicalBuildSettings(kpca_train_rows=200, kpca_components=16), ["kpca-svm"])
    proc = subprocess.run([sys.executable, str(DRIVER), "-m", "svm", "-b", "2", "-d", "1", "--warmup", "0.5",
                           "--idle_s", "0", "--models_dir", str(models), "--results_dir", str(tmp_path / "res")],
                          capture_output=True, text=True, cwd=REPO, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (exp,) = [p for p in (tmp_path / "res").iterdir() if p.is_dir()]
    (line,) = [json.loads(x) for x in (exp / "runs.ndjson").read_text().splitlines()]
    assert line["config_id"] == "svm-r1-c1-b2" and line["model_name"] == "svm" and line["status"] == "ok"
    record = json.loads((exp / "configs" / "svm-r1-c1-b2.json").read_text())
    (node,) = record["node_configs"]
    assert node["name"] == "svm" and node["model"] == "kpca-svm" and node["model_image"].endswith("/kpca-svm")
    # the command line kept in experiment.json is the one typed, and parses back to the same flags
    command = json.loads((exp / "experiment.json").read_text())["command_line"]
    assert command[:2] == ["python", str(DRIVER)] and command[2:4] == ["-m", "svm"]


def test_an_unknown_model_lists_the_aliases_too(tmp_path):
    proc = subprocess.run([sys.executable, str(DRIVER), "-m", "resnet", "--results_dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2 and "svm" in proc.stderr and "kpca-svm" in proc.stderr


def test_clipper_bench_keeps_run_in_its_command_line():
    from clipper_bench.sweep.cli_args import typed_command_line

    assert typed_command_line(["/x/bin/clipper-bench", "run", "-m", "noop"]) == ["clipper-bench", "run", "-m", "noop"]
    line = typed_command_line(["model_composition/image_driver_1/driver.py", "-m", "vgg"])
    assert shlex.join(line) == "python model_composition/image_driver_1/driver.py -m vgg"


@pytest.mark.parametrize("gpus", [1, 0])
def test_an_image_model_without_g_on_a_gpu_machine_says_so_before_it_starts(tmp_path, gpus, no_leftover_processes):
    state = tmp_path / "nvml.json"
    fake_pynvml.write_state(state, [{"watts": 60.0, "counter": True, "instant": True}] * gpus)
    env = dict(os.environ, CLIPPER_BENCH_NVML_MODULE="tests.power.fake_pynvml", FAKE_NVML_STATE=str(state),
               PYTHONPATH=str(REPO), CLIPPER_BENCH_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, str(DRIVER), "-m", "vgg", "-b", "1", "-d", "30", "--idle_s", "0",
                             "--results_dir", str(tmp_path / "res")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
    lines = []
    try:
        for line in proc.stdout:  # up to the line that says where the experiment is, then stop the run
            lines.append(line)
            if line.startswith("experiment "):
                break
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    (exp,) = [p for p in (tmp_path / "res").iterdir() if p.is_dir()]
    experiment = json.loads((exp / "experiment.json").read_text())
    if gpus:
        assert "this machine has 1 GPU(s) (0: " in text and "pass -g 0" in text, text
        assert "pass -g 0" in experiment["unused_gpus"]
    else:
        assert "GPU" not in text and "unused_gpus" not in experiment

