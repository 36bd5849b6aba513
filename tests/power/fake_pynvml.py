"""A fake NVML binding, for tests: the same functions as pynvml, driven by a JSON state file.

Selected with CLIPPER_BENCH_NVML_MODULE=tests.power.fake_pynvml; the state file is named by
FAKE_NVML_STATE and holds {"missing": bool, "gpus": [{"watts": float, "counter": bool,
"instant": bool, "power_limit_w": float, "min_limit_w": float, "max_limit_w": float,
"lost_at": float}], "t0": float}; from ``lost_at`` (wall clock) on, the GPU's energy and power
reads fail as a GPU that fell off the bus does.
Energy grows at each GPU's watts from t0 (wall clock), so every process sees the same GPU.
Setting limits or clocks writes them back to the state file, so a test can see what was left set.
"""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace

NVML_FI_DEV_POWER_INSTANT = 186
NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0
NVML_SUCCESS = 0


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_NoPermission(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


def _path() -> str:
    return os.environ["FAKE_NVML_STATE"]


def _state() -> dict:
    with open(_path()) as f:
        return json.load(f)


def _save(state: dict) -> None:
    tmp = _path() + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, _path())


def nvmlInit() -> None:
    if _state().get("missing"):
        raise NVMLError("NVML Shared Library Not Found")


def nvmlShutdown() -> None:
    pass


def nvmlDeviceGetCount() -> int:
    return len(_state()["gpus"])


def nvmlDeviceGetHandleByIndex(i: int) -> int:
    if i >= nvmlDeviceGetCount():
        raise NVMLError("Invalid Argument")
    return i


def nvmlDeviceGetName(h: int) -> str:
    return "Fake H100"


def _gpu(h: int) -> dict:
    return _state()["gpus"][h]


def _check_lost(gpu: dict) -> None:
    if gpu.get("lost_at") is not None and time.time() >= gpu["lost_at"]:
        raise NVMLError_GpuIsLost("GPU is lost")


def nvmlDeviceGetTotalEnergyConsumption(h: int) -> int:
    gpu = _gpu(h)
    _check_lost(gpu)
    if not gpu.get("counter", True):
        raise NVMLError_NotSupported("Not Supported")
    return int((time.time() - _state()["t0"]) * gpu["watts"] * 1000)


def nvmlDeviceGetFieldValues(h: int, fields: list[int]) -> list:
    gpu = _gpu(h)
    _check_lost(gpu)
    ok = gpu.get("instant", True)
    return [SimpleNamespace(nvmlReturn=0 if ok else 3, value=SimpleNamespace(uiVal=int(gpu["watts"] * 1000)))
            for _ in fields]


def nvmlDeviceGetPowerUsage(h: int) -> int:
    gpu = _gpu(h)
    _check_lost(gpu)
    return int(gpu["watts"] * 1000)


def nvmlDeviceGetUtilizationRates(h: int):
    return SimpleNamespace(gpu=87, memory=40)


def nvmlDeviceGetMemoryInfo(h: int):
    return SimpleNamespace(used=3 * 2**30, total=80 * 2**30, free=77 * 2**30)


def nvmlDeviceGetClockInfo(h: int, kind: int) -> int:
    return _gpu(h).get("locked_clock_mhz") or 1980


def nvmlDeviceGetTemperature(h: int, kind: int) -> int:
    return 41


def nvmlDeviceGetPowerManagementLimit(h: int) -> int:
    gpu = _gpu(h)
    if "power_limit_w" not in gpu:
        raise NVMLError_NotSupported("Not Supported")
    return int(gpu["power_limit_w"] * 1000)


def nvmlDeviceGetPowerManagementLimitConstraints(h: int) -> tuple[int, int]:
    gpu = _gpu(h)
    return int(gpu["min_limit_w"] * 1000), int(gpu["max_limit_w"] * 1000)


def nvmlDeviceSetPowerManagementLimit(h: int, limit_mw: int) -> None:
    state = _state()
    if not state.get("may_set", True):
        raise NVMLError_NoPermission("Insufficient Permissions")
    state["gpus"][h]["power_limit_w"] = limit_mw / 1000
    _save(state)


def nvmlDeviceSetGpuLockedClocks(h: int, min_mhz: int, max_mhz: int) -> None:
    state = _state()
    if not state.get("may_set", True):
        raise NVMLError_NoPermission("Insufficient Permissions")
    state["gpus"][h]["locked_clock_mhz"] = max_mhz
    _save(state)


def nvmlDeviceResetGpuLockedClocks(h: int) -> None:
    state = _state()
    if not state.get("may_set", True):
        raise NVMLError_NoPermission("Insufficient Permissions")
    state["gpus"][h]["locked_clock_mhz"] = None
    _save(state)


def write_state(path, gpus, missing=False, may_set=True) -> None:
    """Create a state file (used by the tests)."""
    with open(path, "w") as f:
        json.dump({"missing": missing, "may_set": may_set, "t0": time.time(), "gpus": gpus}, f)
