"""Safety a user can rely on: loopback by default, no unpickling of anything that came over the wire."""

from __future__ import annotations

import ast
from pathlib import Path

import psutil
import pytest
from clipper_admin import ClipperConnection

from tests.conftest import REPO

UNSAFE_CALLS = {("pickle", "loads"), ("pickle", "load"), ("cloudpickle", "loads"), ("cloudpickle", "load"),
                ("marshal", "loads"), ("dill", "loads")}


def test_no_module_unpickles_or_evaluates_data():
    found = []
    for path in sorted((REPO / "clipper_bench").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("eval", "exec"):
                found.append(f"{path}:{node.lineno} {f.id}()")
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in UNSAFE_CALLS:
                found.append(f"{path}:{node.lineno} {f.value.id}.{f.attr}()")
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append(f"{path}:{node.lineno} allow_pickle")
            if isinstance(f, ast.Attribute) and f.attr == "load" and isinstance(f.value, ast.Name) \
                    and f.value.id in ("joblib", "pickle", "cloudpickle"):
                found.append(f"{path}:{node.lineno} {f.value.id}.load: model files must not be pickles")
    assert not found, found


def test_frontend_listens_on_loopback_only_by_default(manager_factory):
    manager = manager_factory()
    ClipperConnection(manager).start_clipper()
    listening = [c for c in psutil.Process(manager.frontend.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    ports = {c.laddr.port for c in listening}
    assert {manager.query_port, manager.admin_port, manager.rpc_port, manager.binary_port} <= ports
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_a_tampered_model_file_is_not_loaded(tmp_path):
    import pytest

    from clipper_bench.containers.models import get_model_spec
    from clipper_bench.containers.models.base import ModelOptions
    from clipper_bench.containers.models.classical import (
        ClassicalBuildSettings,
        ModelNotBuiltError,
        build_models,
    )

    build_models(tmp_path, ClassicalBuildSettings(kpca_train_rows=200, kpca_components=8), ["kpca-svm"])
    artifact = next(p for p in Path(tmp_path).iterdir() if p.name.startswith("kpca"))
    artifact.write_bytes(artifact.read_bytes() + b"0")
    with pytest.raises(ModelNotBuiltError, match="differs from what build-models wrote"):
        get_model_spec("kpca-svm").build(ModelOptions(models_dir=str(tmp_path)))


class _Exploit:
    """A pickle that, if ever loaded, creates a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("artifact", ["kpca-svm.joblib", "kpca-svm.skops"])
def test_a_crafted_pickle_with_a_matching_manifest_runs_no_code(tmp_path, artifact):
    """The attack of issue 17: a pickle written as the model with its sha256 in the manifest. As a
    legacy .joblib it is refused unread; as a .skops file it is not a skops archive. Nothing runs."""
    import hashlib
    import json
    import pickle

    from clipper_bench.containers.models import get_model_spec
    from clipper_bench.containers.models.base import ModelOptions
    from clipper_bench.containers.models.classical import ModelNotBuiltError, verify_artifact

    marker = tmp_path / "pwned"
    data = pickle.dumps(_Exploit(str(marker)))
    (tmp_path / artifact).write_bytes(data)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"models": {"kpca-svm": {"artifact": artifact, "sha256": hashlib.sha256(data).hexdigest()}}}))
    with pytest.raises(ModelNotBuiltError, match="rebuild it with clipper-bench build-models"):
        verify_artifact(tmp_path, "kpca-svm")
    with pytest.raises(ModelNotBuiltError):
        get_model_spec("kpca-svm").build(ModelOptions(models_dir=str(tmp_path)))
    assert not marker.exists()


def test_run_checks_the_model_file_once_before_anything_deploys(tmp_path, no_leftover_processes):
    import hashlib
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    models = tmp_path / "models"
    models.mkdir()
    data = b"not a model"
    (models / "kpca-svm.skops").write_bytes(data)
    (models / "manifest.json").write_text(json.dumps(
        {"models": {"kpca-svm": {"artifact": "kpca-svm.skops", "sha256": hashlib.sha256(data).hexdigest()}}}))
    proc = subprocess.run([sys.executable, "-m", "clipper_bench", "run", "-m", "kpca-svm", "--models_dir", str(models),
                           "--results_dir", str(tmp_path / "res"), "-d", "1", "--idle_s", "0"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "kpca-svm.skops cannot be loaded safely" in line and "build-models" in line
    assert "logs" not in {p.name for p in (tmp_path / "res").rglob("*")} or not any(
        (tmp_path / "res").rglob("replica-*.log"))
