"""GPU power-limit and clock-limit settings for a configuration, restored whatever happens.

As GPyJoules did, a sweep can hold each GPU at a power limit (``--gpu_power_limits W ...``) or lock
its SM clock (``--gpu_clocks MHZ ...``). :class:`GpuLimits` is a context manager: it reads the
values it finds, sets the asked ones, and on every way out (the configuration ends, fails, a replica
crashes, Ctrl-C or SIGTERM, which the runner turns into KeyboardInterrupt) puts the power limit back
and releases the clock lock. Before it changes anything it writes the values it found to a state
file (``$CLIPPER_BENCH_STATE_DIR``, default ``~/.local/state/clipper-bench/gpu-limits.json``); a
driver killed with SIGKILL cannot restore, so the next run, whatever its flags (with or without
``-g``), does it from that file first (:func:`restore_leftovers`), to the values found before the
first change, and says so. The state file is the truth: it names the run that wrote it by pid *and*
that process's start time, so a pid the system has since given to another process does not pass
for the run being alive. Every failed restore is reported: as a LimitError after a clean
configuration, in the record's ``gpu_limits.restore_problems`` otherwise, and it is marked in the
state file, so that the next run restores it and says the earlier run could not (not that it was
killed). NVML errors while setting become LimitError, which fails only that configuration; its
message says whether what had been changed was put back.

:func:`check_permission` runs before anything is deployed, so a user without the right to change
limits gets one clear error instead of a sweep that fails at its first limited configuration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from .nvml import load_nvml
from .source import SourceUnavailable


class LimitError(RuntimeError):
    """A limit that cannot be set here; the message says why and what to do."""


def _nvml() -> ModuleType:
    try:
        return load_nvml()
    except SourceUnavailable as exc:
        raise LimitError(f"GPU limits need NVML: {exc}") from exc


def state_path() -> Path:
    """Where the values found before a change are kept until they are restored."""
    root = os.environ.get("CLIPPER_BENCH_STATE_DIR") or Path.home() / ".local" / "state" / "clipper-bench"
    return Path(root) / "gpu-limits.json"


def _read_state() -> dict:
    try:
        return json.loads(state_path().read_text())
    except (OSError, ValueError):
        return {"pid": None, "gpus": {}}


def _write_state(state: dict) -> None:
    path = state_path()
    if not state["gpus"]:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def process_start(pid: int | None) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None if it is not running:
    with the pid, it names one process for ever, where a pid alone is reused."""
    if not pid:
        return None
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(text.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _owner_running(state: dict) -> bool:
    """Whether the run that wrote ``state`` is still running: its pid with the same start time (a
    state file of an older version, without the start time: its pid running)."""
    pid = state.get("pid")
    started = process_start(pid)
    if started is None:
        return False
    return state.get("pid_start") is None or started == state["pid_start"]


def restore_leftovers() -> list[str]:
    """Restore limits a run left set (its state file names them: it was killed, or could not restore
    them itself); return what was done and what failed, one line each. Nothing to do (and NVML
    untouched) when there is no state file or the run that wrote it is still running."""
    state = _read_state()
    if not state["gpus"] or _owner_running(state):
        return []
    pid = state.get("pid")
    why = {g: (f"left by run pid {pid}, which could not restore it: {v['restore_failed']}" if v.get("restore_failed")
               else f"left by run pid {pid}, which was killed") for g, v in state["gpus"].items()}
    limits = GpuLimits([])
    try:
        limits.nvml = _nvml()
    except LimitError as exc:
        return [f"NOT restored: GPU {g}: {exc} ({why[g]}; state in {state_path()})" for g in state["gpus"]]
    limits.found_mw = {int(g): v["power_limit_mw"] for g, v in state["gpus"].items() if v.get("power_limit_mw")}
    limits.clock_locked = [int(g) for g, v in state["gpus"].items() if v.get("clock_locked")]
    done = [(g, f"GPU {g}: power limit restored to {mw / 1000:g} W") for g, mw in limits.found_mw.items()]
    done += [(g, f"GPU {g}: clock lock released") for g in limits.clock_locked]
    problems = limits.restore()
    failed = {p.split(":")[0] for p in problems}
    return [f"{line} ({why[str(g)]})" for g, line in done
            if line.split(":")[0] not in failed] + [f"NOT restored: {p}" for p in problems]


def check_permission(gpus: Sequence[int], power_limits_w: Sequence[float], clocks_mhz: Sequence[int]) -> None:
    """Raise LimitError, before anything runs, if the limits cannot be set on these GPUs."""
    if not power_limits_w and not clocks_mhz:
        return
    if not gpus:
        raise LimitError("--gpu_power_limits and --gpu_clocks need GPUs: pass -g/--model_gpus")
    nvml = _nvml()
    try:
        for gpu in gpus:
            h = nvml.nvmlDeviceGetHandleByIndex(gpu)
            if power_limits_w:
                lo_mw, hi_mw = nvml.nvmlDeviceGetPowerManagementLimitConstraints(h)
                bad = [w for w in power_limits_w if not lo_mw <= w * 1000 <= hi_mw]
                if bad:
                    raise LimitError(
                        f"GPU {gpu} accepts power limits from {lo_mw / 1000:g} to {hi_mw / 1000:g} W; "
                        f"{bad} is outside"
                    )
                current = nvml.nvmlDeviceGetPowerManagementLimit(h)
                nvml.nvmlDeviceSetPowerManagementLimit(h, current)  # a no-op that needs the permission
            if clocks_mhz:
                nvml.nvmlDeviceResetGpuLockedClocks(h)  # needs the permission; no lock is expected here
    except nvml.NVMLError as exc:
        raise LimitError(
            f"cannot change GPU limits ({exc}): run the driver as root (sudo), or drop "
            "--gpu_power_limits/--gpu_clocks"
        ) from exc
    finally:
        nvml.nvmlShutdown()


class GpuLimits:
    """Holds ``gpus`` at a power limit and/or a locked SM clock inside a ``with`` block."""

    def __init__(self, gpus: Sequence[int], power_limit_w: float | None = None, clock_mhz: int | None = None) -> None:
        self.gpus = list(gpus)
        self.power_limit_w = power_limit_w
        self.clock_mhz = clock_mhz
        self.found_mw: dict[int, int] = {}
        self.clock_locked: list[int] = []
        self.nvml: ModuleType | None = None
        self.restore_problems: list[str] = []  # what restore could not put back

    def __enter__(self) -> GpuLimits:
        if self.power_limit_w is None and self.clock_mhz is None:
            return self
        nvml = self.nvml = _nvml()
        state = _read_state()
        try:
            for gpu in self.gpus:
                h = nvml.nvmlDeviceGetHandleByIndex(gpu)
                kept = state["gpus"].setdefault(str(gpu), {})
                if self.power_limit_w is not None:
                    # the value found before this run's first change, not a limit it left set
                    self.found_mw[gpu] = kept.setdefault("power_limit_mw", nvml.nvmlDeviceGetPowerManagementLimit(h))
                if self.clock_mhz is not None:
                    kept["clock_locked"] = True
                    self.clock_locked.append(gpu)
                kept.pop("restore_failed", None)  # this run owns it now, and restores it
                state["pid"], state["pid_start"] = os.getpid(), process_start(os.getpid())
                _write_state(state)  # before anything changes
                if self.power_limit_w is not None:
                    nvml.nvmlDeviceSetPowerManagementLimit(h, int(self.power_limit_w * 1000))
                if self.clock_mhz is not None:
                    nvml.nvmlDeviceSetGpuLockedClocks(h, int(self.clock_mhz), int(self.clock_mhz))
        except BaseException as exc:
            self.restore_problems = self.restore()
            if isinstance(exc, nvml.NVMLError):
                if self.restore_problems:  # the runner lists them as NOT restored: never say "put back" too
                    raise LimitError(f"setting GPU limits failed ({exc}), and putting back what was found failed "
                                     "too (see the restore problems)") from exc
                raise LimitError(f"setting GPU limits failed ({exc}); what had been changed was put back") from exc
            raise
        return self

    def restore(self) -> list[str]:
        """Put back what was found; return the problems met (also tried for every GPU)."""
        problems = []
        nvml = self.nvml
        if nvml is None:
            return problems
        for gpu, mw in self.found_mw.items():
            try:
                nvml.nvmlDeviceSetPowerManagementLimit(nvml.nvmlDeviceGetHandleByIndex(gpu), mw)
            except nvml.NVMLError as exc:
                problems.append(f"GPU {gpu}: power limit not restored to {mw / 1000:g} W: {exc}")
        for gpu in self.clock_locked:
            try:
                nvml.nvmlDeviceResetGpuLockedClocks(nvml.nvmlDeviceGetHandleByIndex(gpu))
            except nvml.NVMLError as exc:
                problems.append(f"GPU {gpu}: clock lock not released: {exc}")
        state = _read_state()
        failed = {p.split(":")[0] for p in problems}  # "GPU <n>"
        for gpu in {*self.found_mw, *self.clock_locked}:
            if f"GPU {gpu}" in failed:  # kept for the next run, which is told this run could not restore it
                state["gpus"].setdefault(str(gpu), {})["restore_failed"] = "; ".join(
                    p for p in problems if p.startswith(f"GPU {gpu}:"))
            else:  # put back: nothing left to restore for this GPU
                state["gpus"].pop(str(gpu), None)
        _write_state(state)
        self.found_mw.clear()
        self.clock_locked.clear()
        nvml.nvmlShutdown()
        self.nvml = None
        return problems

    def __exit__(self, *exc_info) -> None:
        self.restore_problems = self.restore()
        if self.restore_problems and exc_info[0] is None:
            raise LimitError("; ".join(self.restore_problems))
