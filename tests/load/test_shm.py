"""--transport shm end to end on the CPU: inputs in shared memory, descriptors over the sockets,
regions removed on every way out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import zmq
from clipper_admin import ClipperConnection

from clipper_bench.containers.models import get_model_spec
from clipper_bench.protocol import binary, shm
from clipper_bench.protocol.types import InputType
from tests.conftest import REPO
from tests.sweep.test_driver import DRIVER, only_experiment, run_driver, wait_until_measuring


def orphaned_regions() -> list[str]:
    """Regions whose load client is gone (a region of a live client, say another run's, is fine)."""
    out = []
    for path in shm.SHM_DIR.glob(f"{shm.NAME_PREFIX}*"):
        pid = int(path.name[len(shm.NAME_PREFIX):].split("-")[0])
        if not psutil.pid_exists(pid):
            out.append(path.name)
    return out


@pytest.fixture
def image_engine(manager_factory):
    manager = manager_factory()
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.register_application("img", "bytes", "TIMEOUT", 20_000_000)
    conn.deploy_model("noop-image", "1", "bytes", "clipper-bench/noop-image", num_replicas=1, batch_size=4)
    conn.link_model_to_app("img", "noop-image")
    manager.set_input_size("noop-image", "1", get_model_spec("noop-image").input_size)
    return manager


def ask(manager, frames_in: list, flags: int) -> binary.BinaryResponse:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 20_000)
    sock.connect(f"tcp://{manager.get_binary_addr()}")
    try:
        sock.send_multipart(binary.encode_request(5, "img", InputType.BYTES, frames_in, flags))
        return binary.decode_response(sock.recv_multipart())
    finally:
        sock.close()


def test_descriptors_are_served_from_the_region_and_bad_ones_get_a_clear_error(image_engine):
    images = [np.full(224 * 224 * 3, i, dtype=np.uint8).tobytes() for i in range(3)]
    region = shm.ShmPool(shm.region_name(os.getpid(), 99), images)
    try:
        resp = ask(image_engine, region.descriptors, shm.FLAG_SHM)
        assert resp.statuses == bytes(3) and [bytes(o) for o in resp.outputs] == [b"%016d" % 150528] * 3
        bad = {
            shm.encode_descriptor(region.name, 3 * 150528, 150528): "lies outside region",
            shm.encode_descriptor(region.name, 0, 1000): "the model takes 150528 bytes per input",
            shm.encode_descriptor("cb-shm-no-such-region", 0, 150528): "does not exist on this host",
            shm.encode_descriptor("../etc/passwd", 0, 150528): "must match",
            b"short": "needs 16 bytes",
        }
        for descriptor, message in bad.items():
            resp = ask(image_engine, [descriptor], shm.FLAG_SHM)
            assert resp.statuses == bytes([binary.Status.ERROR]) and message in bytes(resp.outputs[0]).decode()
        # the replica was never handed a bad descriptor: it still serves, inline bytes too
        assert ask(image_engine, [images[0]], 0).statuses == b"\0"
        assert ask(image_engine, region.descriptors[:1], shm.FLAG_SHM).statuses == b"\0"
    finally:
        region.close()
    assert not (shm.SHM_DIR / region.name).exists()


def test_a_shm_sweep_records_ok_and_leaves_no_region(tmp_path, no_leftover_processes):
    proc = run_driver("-m", "noop-image", "--transport", "shm", "-b", "1", "8", "-n", "2", "-d", "1",
                      "--warmup", "0.5", "--idle_s", "0", results=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [json.loads(x) for x in (only_experiment(tmp_path) / "runs.ndjson").read_text().splitlines()]
    assert [(r["transport"], r["status"]) for r in runs] == [("shm", "ok")] * 2
    assert all(r["num_completed"] > 0 and r["num_errors"] == 0 for r in runs)
    assert orphaned_regions() == []


@pytest.mark.parametrize("how", ["ctrl-c", "replica killed", "client killed"])
def test_regions_are_removed_on_every_way_out(tmp_path, how, no_leftover_processes):
    args = [sys.executable, str(DRIVER), "-m", "noop-image", "--transport", "shm", "-b", "4", "8", "-d", "3",
            "--warmup", "0", "--idle_s", "0", "--results_dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    wait_until_measuring(tmp_path, "noop-image-r1-c1-b4")
    deadline = time.monotonic() + 60  # the client writes its pool into the region first: on a busy host, seconds
    while True:
        children = psutil.Process(proc.pid).children(recursive=True)
        clients = [p for p in children if "loadgen" in " ".join(p.cmdline())]
        if any(shm.SHM_DIR.joinpath(shm.region_name(c.pid, 0)).exists() for c in clients):
            break
        assert time.monotonic() < deadline, "no client's shared-memory region appeared within 60 s"
        time.sleep(0.1)
    time.sleep(0.5)  # into the window
    if how == "ctrl-c":
        proc.send_signal(signal.SIGINT)
    else:
        victim = "loadgen" if how == "client killed" else "clipper-bench replica"
        next(p for p in children if victim in " ".join(p.cmdline())).kill()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == (130 if how == "ctrl-c" else 1), out + err
    assert orphaned_regions() == []
    if how == "replica killed":
        rec = json.loads((only_experiment(tmp_path) / "configs" / "noop-image-r1-c1-b4.json").read_text())
        # degraded when the window still held answers, no_answers when the kill came first; the
        # reason names the fault either way (never the model's speed)
        answered = (rec["summary"] or {}).get("num_completed", 0)
        assert rec["status"] == ("degraded" if answered else "no_answers"), rec["reason"]
        assert "faults during the configuration" in rec["reason"] and "replica" in rec["reason"]


def test_shm_needs_the_local_engine(tmp_path):
    proc = run_driver("-m", "noop-image", "--transport", "shm", "--engine", "docker", results=tmp_path, timeout=60)
    assert proc.returncode == 2 and "--transport shm needs the load clients and replicas on one host" in proc.stderr
    assert not list(Path(tmp_path).iterdir())
