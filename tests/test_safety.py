"""Safety a user can rely on: loopback by default, no unpickling of anything that came over the wire."""

from __future__ import annotations

import ast
from pathlib import Path

import psutil
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
                    and f.value.id == "joblib" and path.name != "classical.py":
                found.append(f"{path}:{node.lineno} joblib.load outside the hash-checked model loader")
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
