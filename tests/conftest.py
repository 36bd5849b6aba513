"""Shared fixtures: a running local engine, and a check that no process of ours outlives a test."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from clipper_bench.server.manager import LocalContainerManager

REPO = Path(__file__).resolve().parents[1]


def _become_subreaper() -> None:
    """Make this test process the reaper of every orphan among its descendants (Linux
    PR_SET_CHILD_SUBREAPER), so that a process a test leaks stays in this process's tree."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_become_subreaper()


def our_processes() -> set[int]:
    """PIDs of live clipper-bench processes that this test session started: they all title
    themselves so, and (this process being their subreaper) they stay among its descendants even
    when their parent is gone. Processes of other runs on the machine are never counted."""
    pids = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if cmd.startswith(("clipper-bench frontend", "clipper-bench replica", "clipper-bench sampler")) \
                or cmd.startswith("clipper-bench loadgen") or "clipper_bench.load.client" in cmd \
                or "clipper_bench.server.frontend" in cmd or "clipper_bench container" in cmd:
            pids.add(proc.pid)
    return pids


def wait_until_gone(pids: set[int], timeout_s: float = 10.0) -> set[int]:
    """Wait for ``pids`` to exit; return those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = pids & our_processes()
        if not alive:
            return set()
        time.sleep(0.1)
    return pids & our_processes()


@pytest.fixture
def manager_factory(tmp_path: Path, no_leftover_processes: None) -> Iterator:
    """Make LocalContainerManagers whose frontends bind ports the OS picks (read them from the
    manager once started); every one is stopped after the test, and the test fails if any of their
    processes outlives it."""
    made: list[LocalContainerManager] = []

    def make(**kwargs) -> LocalContainerManager:
        kwargs.setdefault("log_dir", tmp_path / f"logs{len(made)}")
        manager = LocalContainerManager(query_port=0, admin_port=0, rpc_port=0, binary_port=0, **kwargs)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.stop_all()


@pytest.fixture
def no_leftover_processes() -> Iterator[None]:
    """Fail the test if it leaves a process of ours behind."""
    before = our_processes()
    yield
    left = wait_until_gone(our_processes() - before)
    assert not left, f"processes left behind: {left}"


@pytest.fixture(autouse=True)
def _quiet_clipper_admin() -> None:
    import logging

    logging.getLogger("clipper_admin").setLevel(logging.WARNING)


os.environ.setdefault("PYTHONUNBUFFERED", "1")
