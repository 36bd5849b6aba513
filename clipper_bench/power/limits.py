"""GPU power-limit and clock-limit settings for a configuration, restored whatever happens.

As GPyJoules did, a sweep can hold each GPU at a power limit (``--gpu_power_limits W ...``) or lock
its SM clock (``--gpu_clocks MHZ ...``). :class:`GpuLimits` is a context manager: it reads the
values it finds, sets the asked ones, and on every way out (the configuration ends, fails, a replica
crashes, Ctrl-C or SIGTERM, which the runner turns into KeyboardInterrupt) puts the power limit back
and releases the clock lock. Only a SIGKILL of the driver can skip that; ``nvidia-smi -rgc`` and
``nvidia-smi -pl <default>`` undo it by hand.

:func:`check_permission` runs before anything is deployed, so a user without the right to change
limits gets one clear error instead of a sweep that fails at its first limited configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def __enter__(self) -> GpuLimits:
        if self.power_limit_w is None and self.clock_mhz is None:
            return self
        nvml = self.nvml = _nvml()
        try:
            for gpu in self.gpus:
                h = nvml.nvmlDeviceGetHandleByIndex(gpu)
                if self.power_limit_w is not None:
                    self.found_mw[gpu] = nvml.nvmlDeviceGetPowerManagementLimit(h)
                    nvml.nvmlDeviceSetPowerManagementLimit(h, int(self.power_limit_w * 1000))
                if self.clock_mhz is not None:
                    self.clock_locked.append(gpu)
                    nvml.nvmlDeviceSetGpuLockedClocks(h, int(self.clock_mhz), int(self.clock_mhz))
        except BaseException:
            self.restore()
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
        self.found_mw.clear()
        self.clock_locked.clear()
        nvml.nvmlShutdown()
        self.nvml = None
        return problems

    def __exit__(self, *exc_info) -> None:
        problems = self.restore()
        if problems and exc_info[0] is None:
            raise LimitError("; ".join(problems))
