"""GPU power-limit and clock-limit settings for a configuration, restored whatever happens.

As GPyJoules did, a sweep can hold each GPU at a power limit (``--gpu_power_limits W ...``) or lock
its SM clock (``--gpu_clocks MHZ ...``). :class:`GpuLimits` is a context manager: it reads the
values it finds, sets the asked ones, and on every way out (the configuration ends, fails, a replica
crashes, Ctrl-C or SIGTERM, which the runner turns into KeyboardInterrupt) puts the power limit back
and releases the clock lock. Before it changes anything it writes the values it found to a state
file (``$CLIPPER_BENCH_STATE_DIR``, default ``~/.local/state/clipper-bench/gpu-limits.json``); a
driver killed with SIGKILL cannot restore, so the next run does it from that file first
(:func:`restore_leftovers`), to the values found before the first change, and says so. Every
failed restore is reported: as a LimitError after a clean configuration, in the record's
``gpu_limits.restore_problems`` otherwise. NVML errors while setting become LimitError, which fails
only that configuration.

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


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def restore_leftovers() -> list[str]:
    """Restore limits a killed run left set (its state file names them); return what was done and
    what failed, one line each. Nothing to do (and NVML untouched) when there is no state file."""
    state = _read_state()
    if not state["gpus"] or _pid_alive(state.get("pid")):
        return []
    limits = GpuLimits([])
    limits.nvml = _nvml()
    limits.found_mw = {int(g): v["power_limit_mw"] for g, v in state["gpus"].items() if v.get("power_limit_mw")}
    limits.clock_locked = [int(g) for g, v in state["gpus"].items() if v.get("clock_locked")]
    done = [f"GPU {g}: power limit restored to {mw / 1000:g} W" for g, mw in limits.found_mw.items()]
    done += [f"GPU {g}: clock lock released" for g in limits.clock_locked]
    problems = limits.restore()
    failed = {p.split(":")[0] for p in problems}
    return [f"{line} (left by run pid {state.get('pid')}, which was killed)" for line in done
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
                state["pid"] = os.getpid()
                _write_state(state)  # before anything changes
                if self.power_limit_w is not None:
                    nvml.nvmlDeviceSetPowerManagementLimit(h, int(self.power_limit_w * 1000))
                if self.clock_mhz is not None:
                    nvml.nvmlDeviceSetGpuLockedClocks(h, int(self.clock_mhz), int(self.clock_mhz))
        except BaseException as exc:
            self.restore_problems = self.restore()
            if isinstance(exc, nvml.NVMLError):
                raise LimitError(f"setting GPU limits failed ({exc}); they were put back") from exc
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
        if not problems:  # all put back: the state file has nothing left to restore for these GPUs
            state = _read_state()
            for gpu in {*self.found_mw, *self.clock_locked}:
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
