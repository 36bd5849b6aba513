"""Issue 28 items 14 and 25: files an adversary can plant or change. A tampered model file is a one-line
error (exit 2), never a traceback or an abort; a ``cb-shm-*`` link, FIFO or someone else's file in
/dev/shm is never read as a replica's input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipper_bench.containers.models.classical import ModelNotBuiltError, verify_artifact
from clipper_bench.protocol.shm import (
    SHM_DIR,
    ShmError,
    ShmReader,
    check_descriptor,
    encode_descriptor,
    remove_stale_regions,
)
from tests.conftest import REPO


@pytest.fixture(scope="module")
def small_lgbm(tmp_path_factory) -> Path:
    from clipper_bench.containers.models.classical import ClassicalBuildSettings, build_models

    models = tmp_path_factory.mktemp("models")
    build_models(models, ClassicalBuildSettings(lgbm_train_rows=300, lgbm_trees=10), ["lgbm"])
    return models


def _tampered(models: Path, tmp_path: Path, change) -> Path:
    """A copy of ``models`` whose lgbm.txt is changed by ``change`` and whose manifest's hash is
    changed to match (an adversary who can write one can write the other)."""
    out = tmp_path / "tampered"
    out.mkdir()
    data = change((models / "lgbm.txt").read_bytes())
    (out / "lgbm.txt").write_bytes(data)
    manifest = json.loads((models / "manifest.json").read_text())
    manifest["models"]["lgbm"]["sha256"] = hashlib.sha256(data).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


TAMPERS = {
    "truncated": lambda d: d[: len(d) // 2],  # LightGBM's parser aborts the process on this one
    "a bad field": lambda d: d.replace(b"num_leaves=", b"num_leaves=x", 1),
    "empty": lambda d: b"",
    "not text": lambda d: b"\xff\xfe" + d[2:],
}


@pytest.mark.parametrize("how", list(TAMPERS))
def test_a_tampered_lgbm_file_is_a_model_not_built_error(small_lgbm, tmp_path, how):
    models = _tampered(small_lgbm, tmp_path, TAMPERS[how])
    with pytest.raises(ModelNotBuiltError, match=r"lgbm\.txt .*rebuild it with clipper-bench build-models") as caught:
        verify_artifact(models, "lgbm")
    assert "\n" not in str(caught.value)


def test_the_untampered_model_verifies(small_lgbm):
    verify_artifact(small_lgbm, "lgbm")


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_run_with_a_tampered_lgbm_is_one_line_and_exit_2(small_lgbm, tmp_path, how, no_leftover_processes):
    models = _tampered(small_lgbm, tmp_path, TAMPERS[how])
    proc = subprocess.run([sys.executable, "-m", "clipper_bench", "run", "-m", "lgbm", "--models_dir", str(models),
                           "-d", "1", "--idle_s", "0", "--results_dir", str(tmp_path / "results")],
                          capture_output=True, text=True, cwd=REPO, timeout=240)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.strip()]
    assert line.startswith("clipper-bench: error: ") and "lgbm.txt" in line and "Traceback" not in proc.stderr


@pytest.fixture
def shm_names():
    """Unique region names for this test; whatever is left under them is removed after it."""
    made: list[Path] = []

    def name(k: int) -> str:
        path = SHM_DIR / f"cb-shm-test-{os.getpid()}-{k}"
        made.append(path)
        return path.name

    yield name
    for path in made:
        path.unlink(missing_ok=True)


def test_a_region_that_is_a_symbolic_link_is_never_followed(tmp_path, shm_names):
    secret = tmp_path / "secret"
    secret.write_bytes(b"S" * 64)
    name = shm_names(1)
    os.symlink(secret, SHM_DIR / name)
    descriptor = encode_descriptor(name, 0, 16)
    with pytest.raises(ShmError, match="is a symbolic link; regions are never followed"):
        ShmReader().read(descriptor)
    with pytest.raises(ShmError, match="is a symbolic link"):
        check_descriptor(descriptor, 16)


def test_a_region_that_is_not_a_regular_file_or_not_ours_is_refused(shm_names):
    fifo = shm_names(2)
    os.mkfifo(SHM_DIR / fifo)
    with pytest.raises(ShmError, match="is not a regular file"):
        ShmReader().read(encode_descriptor(fifo, 0, 16))  # and it does not block on the FIFO
    with pytest.raises(ShmError, match="is not a regular file"):
        check_descriptor(encode_descriptor(fifo, 0, 16), 16)
    other = shm_names(3)
    (SHM_DIR / other).write_bytes(b"x" * 64)
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    os.chown(SHM_DIR / other, 65534, 65534)
    with pytest.raises(ShmError, match="belongs to uid 65534, not to this user"):
        ShmReader().read(encode_descriptor(other, 0, 16))
    with pytest.raises(ShmError, match="belongs to uid 65534"):
        check_descriptor(encode_descriptor(other, 0, 16), 16)


def test_a_load_clients_region_is_read_in_place(shm_names):
    name = shm_names(4)
    (SHM_DIR / name).write_bytes(bytes(range(32)))
    reader = ShmReader()
    try:
        assert bytes(reader.read(encode_descriptor(name, 16, 16))) == bytes(range(16, 32))
    finally:
        reader.close()
    check_descriptor(encode_descriptor(name, 16, 16), 16)
    with pytest.raises(ShmError, match="lies outside region"):
        check_descriptor(encode_descriptor(name, 32, 16), 16)


def test_stale_regions_of_dead_clients_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live, link = (SHM_DIR / f"cb-shm-{dead.pid}-0", SHM_DIR / f"cb-shm-{os.getpid()}-9",
                         SHM_DIR / f"cb-shm-{dead.pid}-1")
    try:
        stale.write_bytes(b"x")
        live.write_bytes(b"x")
        os.symlink(tmp_path / "target", link)
        removed = remove_stale_regions()
        assert stale.name in removed and not stale.exists()
        assert live.exists() and os.path.islink(link)  # a running client's region; a link is not ours to judge
    finally:
        for path in (stale, live, link):
            path.unlink(missing_ok=True)
