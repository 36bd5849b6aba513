"""Pinning a replica to its cores before any thread pool starts."""

from __future__ import annotations

import os
from collections.abc import Sequence

CPUS_ENV = "CLIPPER_BENCH_CPUS"
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)


def parse_cpu_list(text: str) -> list[int]:
    """Parse ``"0,2-4"`` into ``[0, 2, 3, 4]``."""
    cpus: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    return cpus


def format_cpu_list(cpus: Sequence[int]) -> str:
    """Format ``[0, 2, 3]`` as ``"0,2,3"`` (no ranges; :func:`parse_cpu_list` reads it back)."""
    return ",".join(str(c) for c in cpus)


def pin_current_process(cpus: Sequence[int]) -> None:
    """Bind this process to ``cpus`` and size the usual thread pools to match.

    Call it before numpy or a framework is imported: threads started later inherit the mask, and
    the thread-count variables are read when the pools start.
    """
    os.sched_setaffinity(0, set(cpus))
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(len(cpus))


def pin_from_environment() -> list[int] | None:
    """Pin to the cores in ``CLIPPER_BENCH_CPUS`` when it is set; return them."""
    text = os.environ.get(CPUS_ENV, "").strip()
    if not text:
        return None
    cpus = parse_cpu_list(text)
    pin_current_process(cpus)
    return cpus


def pin_all_threads(cpus: Sequence[int]) -> None:
    """Pin every thread of this process, not only the caller, to ``cpus`` (``sched_setaffinity`` on
    one thread pins only that thread, so each of ``/proc/self/task``): for processes that started
    their threads before they could be pinned, such as Ray's workers."""
    os.sched_setaffinity(0, set(cpus))
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), set(cpus))
        except OSError:  # the thread ended meanwhile
            pass
