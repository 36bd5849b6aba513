"""--engine docker against a real Docker engine: images built from this checkout, replicas pinned
through the Docker API, and nothing left behind. Skipped, with the reason, where no engine answers
and none can be started (starting one needs root and dockerd: apt-get install docker.io)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

# building the images takes a minute on overlay2, minutes on vfs; the first test pays for it
pytestmark = pytest.mark.timeout(1800)

DOCKERD_ROOT = Path("/var/lib/clipper-bench-test-docker")
RUN_DIR = Path("/run/clipper-bench-test-docker")
CLUSTER_LABEL = "ai.clipper.container.label"
FRONTEND = ["--engine", "docker", "--docker_host_network", "--query_frontend_image", "clipper-bench/frontend"]


def _docker_answers(env: dict) -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], env=env, capture_output=True, timeout=30).returncode == 0


# overlay2 first (the images build in about a minute); vfs, which copies every layer whole (about
# eight minutes), where the kernel or the backing filesystem has no overlay
STORAGE_DRIVERS = ("overlay2", "vfs")


def _start_dockerd(driver: str, env: dict) -> tuple[subprocess.Popen | None, str]:
    """A dockerd on ``driver`` answering at env's DOCKER_HOST, or None and the last line of its log."""
    run_dir = RUN_DIR / driver
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "dockerd.log", "w") as log:
        dockerd = subprocess.Popen(
            ["dockerd", f"--storage-driver={driver}", "--iptables=false", "--bridge=none",
             f"--data-root={DOCKERD_ROOT / driver}", f"--exec-root={run_dir}/exec", f"--pidfile={run_dir}/dockerd.pid",
             "-H", env["DOCKER_HOST"]],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not _docker_answers(env):
        if dockerd.poll() is not None or time.monotonic() > deadline:
            _stop(dockerd)
            tail = (run_dir / "dockerd.log").read_text().strip().splitlines()[-1:]
            return None, f"{driver}: {tail}"
        time.sleep(0.5)
    return dockerd, ""


def _stop(dockerd: subprocess.Popen) -> None:
    dockerd.send_signal(signal.SIGTERM)
    try:
        dockerd.wait(30)
    except subprocess.TimeoutExpired:
        dockerd.kill()
        dockerd.wait()


@pytest.fixture(scope="module")
def docker_env():
    """An environment whose DOCKER_HOST answers: the one there is, or a dockerd started here."""
    env = dict(os.environ)
    if _docker_answers(env):
        yield env
        return
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers, and starting dockerd needs root")
    if shutil.which("dockerd") is None:
        pytest.skip("no Docker engine answers and dockerd is not installed (apt-get install docker.io)")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    env["DOCKER_HOST"] = f"unix://{RUN_DIR}/docker.sock"
    failures = []
    for driver in STORAGE_DRIVERS:
        dockerd, why = _start_dockerd(driver, env)
        if dockerd is not None:
            break
        failures.append(why)
    else:
        pytest.skip(f"dockerd could not be started here: {'; '.join(failures)}")
    try:
        yield env
    finally:
        _stop(dockerd)


@pytest.fixture(scope="module")
def images(docker_env):
    """clipper-bench/base, frontend, noop and lgbm, built from this checkout on a debootstrapped base."""
    if shutil.which("debootstrap") is None and subprocess.run(
            ["docker", "image", "inspect", "clipper-bench/debian:bookworm"], env=docker_env,
            capture_output=True).returncode != 0:
        pytest.skip("no base image and no debootstrap to make one (apt-get install debootstrap)")
    if subprocess.run([sys.executable, "-c", "import wheel"], capture_output=True).returncode != 0:
        pytest.skip("building the images needs the wheel package here (./setup_env.sh --test installs it)")
    proc = subprocess.run([str(REPO / "bin" / "build_docker_images.sh"), "--make_base", "noop", "lgbm"],
                          env=docker_env, capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return docker_env


def _cluster_containers(env: dict, driver_pid: int) -> list[dict]:
    """The containers of the run whose driver is ``driver_pid``: its clusters are named
    ``cb-<pid>-...``, so containers of other runs on the same Docker engine are never counted."""
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={CLUSTER_LABEL}"], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    if not out:
        return []
    found = json.loads(subprocess.run(["docker", "inspect", *out], env=env, capture_output=True, text=True,
                                      check=False).stdout or "[]")  # one may be gone since ps
    return [c for c in found if (c["Config"]["Labels"] or {}).get(CLUSTER_LABEL, "").startswith(f"cb-{driver_pid}-")]


def _run_networks(env: dict, driver_pid: int) -> list[str]:
    """The Docker networks of the run whose driver is ``driver_pid`` (``clipper-bench-cb-<pid>-...``)."""
    names = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    return [n for n in names if n.startswith(f"clipper-bench-cb-{driver_pid}-")]


@pytest.mark.parametrize("model", ["noop", "lgbm"])
def test_a_two_replica_sweep_runs_pinned_in_docker_and_leaves_nothing(images, tmp_path, model):
    env = images
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_bench", "run", "-m", model, *FRONTEND, "-r", "2", "-b", "1", "2",
         "-d", "2", "--warmup", "0.5", "--idle_s", "0", "--results_dir", str(tmp_path)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    cpusets: dict[str, str] = {}
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and len(cpusets) < 2:
        for c in _cluster_containers(env, proc.pid):  # each replica's cpuset, as the Docker API reports it
            if "ai.clipper.model_container.label" in c["Config"]["Labels"] and c["State"]["Running"]:
                cpusets[c["Name"]] = c["HostConfig"]["CpusetCpus"]
        time.sleep(0.2)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert sorted(cpusets.values()) == ["0", "1"], cpusets  # replica 1 on core 0, replica 2 on core 1

    (exp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    runs = [json.loads(line) for line in (exp / "runs.ndjson").read_text().splitlines()]
    assert [(r["status"], r["engine"], r["num_replicas"]) for r in runs] == [("ok", "docker", 2)] * 2
    assert all(r["num_completed"] > 0 and r["num_errors"] == 0 for r in runs)
    record = json.loads((exp / "configs" / f"{model}-r2-c1-b2.json").read_text())
    assert record["deployment"]["reused"] and len(record["deployment"]["replicas"]) == 2
    # the containers' logs were kept, then every container and network of the run removed
    assert list(Path(record["deployment"]["logs"]).glob("*.log"))
    assert _cluster_containers(env, proc.pid) == []
    assert _run_networks(env, proc.pid) == []


def test_a_missing_image_is_named_with_the_command_that_builds_it(images, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "clipper_bench", "run", "-m", "kpca-svm", *FRONTEND, "--results_dir", str(tmp_path)],
        env=images, cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    if "kpca-svm" in subprocess.run(["docker", "images", "--format", "{{.Repository}}"], env=images,
                                    capture_output=True, text=True).stdout:
        pytest.skip("clipper-bench/kpca-svm exists on this engine")
    assert proc.returncode == 2
    assert "no image clipper-bench/kpca-svm here: build it with bin/build_docker_images.sh kpca-svm" in proc.stderr


def test_clippers_own_frontend_needs_the_rest_transport(images, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "clipper_bench", "run", "-m", "noop", "--engine", "docker", "--transport", "binary",
         "--results_dir", str(tmp_path)], env=images, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "pass --transport rest" in proc.stderr


def test_ctrl_c_removes_every_container(images, tmp_path):
    env = images
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipper_bench", "run", "-m", "noop", *FRONTEND, "-r", "2", "-b", "1", "-d", "30",
         "--warmup", "0", "--idle_s", "0", "--results_dir", str(tmp_path)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    while proc.poll() is None and not list(tmp_path.glob("*/logs/*/client0.log")):  # as long as the run starts
        time.sleep(0.2)
    assert len([c for c in _cluster_containers(env, proc.pid) if c["State"]["Running"]]) == 3  # frontend + 2 replicas
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert _cluster_containers(env, proc.pid) == []
    (exp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (line,) = [json.loads(x) for x in (exp / "runs.ndjson").read_text().splitlines()]
    assert line["status"] == "interrupted"


def _ports_when_written(path: Path, container: str, env: dict, timeout_s: float = 60) -> dict:
    """The ports a frontend container wrote to its ports file (it binds first: no race)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            doc = json.loads(path.read_text())
            assert "error" not in doc, doc
            return doc["ports"]
        time.sleep(0.2)
    logs = subprocess.run(["docker", "logs", container], env=env, capture_output=True, text=True).stdout
    raise AssertionError(f"the frontend container wrote no ports file: {logs[-2000:]}")


def test_engine_clipper_drives_the_frontend_image_already_running_and_leaves_it_clean(images, tmp_path):
    """``--engine clipper`` against a Clipper-compatible frontend started apart, in Docker."""
    env, name = images, f"cb-attached-test-{os.getpid()}"
    ports_dir = tmp_path / "ports"
    ports_dir.mkdir()
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host", "-v", f"{ports_dir}:/ports",
                    "clipper-bench/frontend", "--query_port", "0", "--admin_port", "0", "--rpc_port", "0",
                    "--binary_port", "0", "--ports_file", "/ports/ports.json"],
                   env=env, check=True, capture_output=True, timeout=60)
    try:
        ports = _ports_when_written(ports_dir / "ports.json", name, env)
        done = subprocess.run(
            [sys.executable, "-m", "clipper_bench", "run", "--engine", "clipper", "-m", "noop", "-b", "1", "4",
             "--clipper_address", f"127.0.0.1:{ports['query']}",
             "--clipper_admin_address", f"127.0.0.1:{ports['admin']}",
             "--clipper_rpc_address", f"127.0.0.1:{ports['rpc']}",
             "-d", "1", "--warmup", "0.5", "--idle_s", "0", "--results_dir", str(tmp_path / "res")],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        (experiment,) = [p for p in (tmp_path / "res").iterdir() if p.is_dir()]
        recs = [json.loads(p.read_text()) for p in sorted((experiment / "configs").glob("*.json"))
                if not p.name.endswith(".power_samples.json")]
        assert [r["status"] for r in recs] == ["ok", "ok"]
        assert all(r["settings"]["engine"] == "clipper" and r["summary"]["num_completed"] > 0 for r in recs)
        import requests

        admin = f"http://127.0.0.1:{ports['admin']}/admin"
        assert requests.post(f"{admin}/get_all_applications", json={"verbose": False}, timeout=10).json() == []
        assert requests.post(f"{admin}/get_all_models", json={"verbose": False}, timeout=10).json() == []
        running = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name], env=env,
                                 capture_output=True, text=True).stdout.strip()
        assert running == "true"  # the cluster it was pointed at is left running
    finally:
        subprocess.run(["docker", "rm", "-f", name], env=env, capture_output=True, timeout=60)
