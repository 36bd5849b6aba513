"""NVIDIA GPUs through NVML (nvidia-ml-py): energy counter, instant power, utilisation, clocks.

Energy over a window is best the difference of ``nvmlDeviceGetTotalEnergyConsumption`` (mJ) at its
ends; the sampler also integrates instant power (``NVML_FI_DEV_POWER_INSTANT``; on H100-class GPUs
``nvmlDeviceGetPowerUsage`` is a 1-second average, used only where the field is missing) so the two
can be compared. All vendor errors are translated here into SourceUnavailable with a reason.

The vendor module is ``pynvml`` unless ``CLIPPER_BENCH_NVML_MODULE`` names another module with the
same functions: the tests put a fake NVML there, at the library boundary, and everything above runs.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType

from .source import PowerSource, Reading, SourceUnavailable

MODULE_ENV = "CLIPPER_BENCH_NVML_MODULE"


def load_nvml() -> ModuleType:
    """The NVML binding, initialised; SourceUnavailable when there is no library or no driver."""
    name = os.environ.get(MODULE_ENV, "pynvml")
    try:
        nvml = importlib.import_module(name)
    except ImportError as exc:
        raise SourceUnavailable(f"no NVML binding ({name}): pip install nvidia-ml-py") from exc
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise SourceUnavailable(f"NVML library or driver not found: {exc}") from exc
    return nvml


class NvmlSource(PowerSource):
    """The GPUs a configuration uses, by NVML index."""

    name = "nvml"

    def __init__(self, gpus: Sequence[int]) -> None:
        self.gpus = sorted(set(gpus))  # one channel per GPU, however many replicas share it
        self.nvml: ModuleType | None = None
        self.handles: list = []
        self.has_counter: dict[int, bool] = {}
        self.has_instant: dict[int, bool] = {}

    def open(self) -> None:
        """Open the configuration's GPUs and probe which have an energy counter and instant power;
        SourceUnavailable when there are none, one is missing or NVML fails."""
        if not self.gpus:
            raise SourceUnavailable("no GPU in this configuration")
        nvml = self.nvml = load_nvml()
        try:
            count = nvml.nvmlDeviceGetCount()
            missing = [g for g in self.gpus if g >= count]
            if missing:
                raise SourceUnavailable(f"GPU {missing} not found: NVML sees {count} GPU(s)")
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(g) for g in self.gpus]
        except nvml.NVMLError as exc:
            raise SourceUnavailable(f"NVML could not open the GPUs: {exc}") from exc
        for gpu, handle in zip(self.gpus, self.handles, strict=True):
            self.has_counter[gpu] = self._try(lambda h=handle: nvml.nvmlDeviceGetTotalEnergyConsumption(h)) is not None
            self.has_instant[gpu] = self._instant_mw(handle) is not None
            if not self.has_counter[gpu] and not self.has_instant[gpu] and \
                    self._try(lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h)) is None:
                raise SourceUnavailable(f"GPU {gpu} reports neither an energy counter nor its power")

    def _try(self, call):
        assert self.nvml is not None
        try:
            return call()
        except self.nvml.NVMLError:
            return None

    def _instant_mw(self, handle) -> float | None:
        nvml = self.nvml
        assert nvml is not None
        field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field is None:
            return None
        values = self._try(lambda: nvml.nvmlDeviceGetFieldValues(handle, [field]))
        if not values or values[0].nvmlReturn != 0:
            return None
        return float(values[0].value.uiVal)

    def _energy_and_power(self, gpu: int, h) -> tuple[float | None, float | None]:
        """The energy counter (mJ) and power (mW) of one GPU, as probed at open; SourceUnavailable when
        one that answered at open fails now (a GPU lost, a driver reset): the sampler records the
        source as failed with this reason and its energy as unknown, never as a silent gap."""
        nvml = self.nvml
        assert nvml is not None
        try:
            energy_mj = nvml.nvmlDeviceGetTotalEnergyConsumption(h) if self.has_counter[gpu] else None
        except nvml.NVMLError as exc:
            raise SourceUnavailable(f"GPU {gpu}: energy counter read failed: {exc}") from exc
        if self.has_instant[gpu]:
            power_mw = self._instant_mw(h)
            if power_mw is None:
                raise SourceUnavailable(f"GPU {gpu}: instant power read failed")
        else:
            try:
                power_mw = nvml.nvmlDeviceGetPowerUsage(h)
            except nvml.NVMLError as exc:
                if not self.has_counter[gpu]:
                    raise SourceUnavailable(f"GPU {gpu}: power read failed: {exc}") from exc
                power_mw = None  # only the counter was ever relied on
        return energy_mj, power_mw

    def read(self) -> list[Reading]:
        """One reading per GPU: energy counter and power where available, plus utilisation, memory,
        SM clock, power limit and temperature. SourceUnavailable when an energy or power reading that
        worked at open fails (see :meth:`_energy_and_power`)."""
        nvml = self.nvml
        assert nvml is not None
        out = []
        for gpu, h in zip(self.gpus, self.handles, strict=True):
            energy_mj, power_mw = self._energy_and_power(gpu, h)
            extra = {}
            util = self._try(lambda h=h: nvml.nvmlDeviceGetUtilizationRates(h))
            if util is not None:
                extra["util_pct"] = float(util.gpu)
            mem = self._try(lambda h=h: nvml.nvmlDeviceGetMemoryInfo(h))
            if mem is not None:
                extra["mem_used_mib"] = mem.used / 2**20
            clock = self._try(lambda h=h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))
            if clock is not None:
                extra["sm_clock_mhz"] = float(clock)
            limit = self._try(lambda h=h: nvml.nvmlDeviceGetPowerManagementLimit(h))
            if limit is not None:
                extra["power_limit_w"] = limit / 1000
            temp = self._try(lambda h=h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
            if temp is not None:
                extra["temp_c"] = float(temp)
            out.append(Reading(
                f"gpu{gpu}",
                energy_j=None if energy_mj is None else energy_mj / 1e3,
                power_w=None if power_mw is None else power_mw / 1e3,
                extra=extra,
            ))
        return out

    def close(self) -> None:
        """Shut NVML down if it was opened (its errors are ignored)."""
        if self.nvml is not None:
            self._try(self.nvml.nvmlShutdown)
