"""Running several client processes together: start, wait until all are ready, go, collect."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..common.pinning import CPUS_ENV, format_cpu_list
from ..common.processes import ChildProcess, python_module_argv, reap, spawn
from ..protocol.shm import remove_regions_of
from .spec import LoadSpec
from .stats import ClientData

READY_TIMEOUT_S = 60.0
START_MARGIN_S = 0.2


class LoadError(RuntimeError):
    """A client process failed; the message names its log."""


def _spawn_client(spec: LoadSpec, work_dir: Path, children: list[ChildProcess]) -> Path:
    """Write the client's spec, start its process (appended to ``children`` at once, so it is reaped
    whatever happens next) and return the spec's path (its ``.ready`` file appears when it is ready)."""
    path = work_dir / f"client{spec.client_index}.spec.json"
    Path(f"{path}.ready").unlink(missing_ok=True)
    spec.save(path)
    env = dict(os.environ)
    env.pop(CPUS_ENV, None)
    if spec.cpus:
        env[CPUS_ENV] = format_cpu_list(spec.cpus)
    children.append(spawn(
        f"client#{spec.client_index}", python_module_argv("clipper_bench.load.client", str(path)),
        work_dir / f"client{spec.client_index}.log", env=env, stdin_pipe=True,
    ))
    return path


def run_clients(
    specs: Sequence[LoadSpec], work_dir: Path, on_start: Callable[[float], None] | None = None
) -> tuple[float, list[ClientData]]:
    """Run one process per spec; return the common start time (wall clock) and their raw data.

    ``on_start(start_at)`` is called once the start time is fixed (to start power sampling).
    Every client is reaped on return, on error and on KeyboardInterrupt.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    children: list[ChildProcess] = []
    try:
        spec_paths = [_spawn_client(spec, work_dir, children) for spec in specs]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(Path(f"{p}.ready").exists() for p in spec_paths):
            for child in children:
                if not child.alive():
                    raise LoadError(f"load client exited at start-up; see {child.log_path}: {child.log_tail(1)}")
            if time.monotonic() > deadline:
                raise LoadError(f"load clients not ready within {READY_TIMEOUT_S:.0f} s; see {work_dir}")
            time.sleep(0.01)
        start_at = time.time() + START_MARGIN_S
        for child in children:
            assert child.popen.stdin is not None
            child.popen.stdin.write(f"{start_at!r}\n".encode())
            child.popen.stdin.close()
        if on_start is not None:
            on_start(start_at)
        spec0 = specs[0]
        wait_s = START_MARGIN_S + spec0.warmup_s + spec0.duration_s + spec0.drain_max_s + 30.0
        end = time.monotonic() + wait_s
        for child in children:
            remaining = max(end - time.monotonic(), 0.1)
            try:
                code = child.popen.wait(remaining)
            except subprocess.TimeoutExpired as exc:
                raise LoadError(f"{child.name} did not finish in time; see {child.log_path}") from exc
            if code != 0:
                raise LoadError(f"{child.name} failed (exit {code}); see {child.log_path}: {child.log_tail(1)}")
        return start_at, [ClientData.from_npz(spec.out_path) for spec in specs]
    finally:
        reap(children, timeout_s=2.0)
        # --transport shm: regions of clients that were killed before they could remove them
        remove_regions_of([c.pid for c in children])
