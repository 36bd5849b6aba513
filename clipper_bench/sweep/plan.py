"""Planning an experiment: which cores serve what, and the configurations to run.

The original driver hard-coded the cores of one 32-core machine. Here the plan starts from the cores
this process may use. With four or more, the frontend and the load generator get cores of their own
(two each from eight on: a Python thread and ZeroMQ's I/O thread) and the replicas the rest; with fewer, everything shares and the experiment says so. Replica ``i``
with ``c`` cores per replica gets ``model_cpus[i*c:(i+1)*c]`` and GPU ``model_gpus[i]``.
"""

from __future__ import annotations

import shutil
import subprocess

from ..containers.models import get_model_spec
from ..engines import engine_class

# what engines are handed lives below the sweep (engines/point.py); the sweep's callers find it here too
from ..engines.point import ConfigPoint as ConfigPoint
from ..engines.point import CorePlan as CorePlan
from ..engines.point import PlanError as PlanError
from ..engines.point import placements as placements
from ..engines.point import ranges_text
from ..engines.point import usable_cpus as usable_cpus
from .settings import RunSettings, check_declared, resolve_defaults

MIN_CORES_TO_RESERVE = 4
CORES_FOR_TWO_PER_PROCESS = 8  # from here on the frontend and each client get two cores


def detect_gpus() -> list[str]:
    """Names of the NVIDIA GPUs here, index order; empty when there are none or no driver."""
    from ..power.nvml import load_nvml
    from ..power.source import SourceUnavailable

    try:
        nvml = load_nvml()
    except SourceUnavailable:
        nvml = None
    if nvml is not None:
        try:
            names = []
            for i in range(nvml.nvmlDeviceGetCount()):
                name = nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i))
                names.append(name.decode() if isinstance(name, bytes) else name)
            return names
        except nvml.NVMLError:
            pass
        finally:
            nvml.nvmlShutdown()
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            return [line.split(":", 1)[1].split("(")[0].strip() for line in out.stdout.splitlines() if line.startswith("GPU ")]
        except (OSError, subprocess.SubprocessError):
            return []
    return []


def plan_cores(settings: RunSettings, available: list[int]) -> CorePlan:
    """Decide which cores the frontend, the clients and the replicas use."""
    if settings.model_cpus is not None:
        missing = sorted(set(settings.model_cpus) - set(available))
        if missing:
            raise PlanError(
                f"--model_cpus asks for cores {missing} that this machine does not let us use "
                f"(usable: {ranges_text(available)}); pick from those"
            )
        if len(set(settings.model_cpus)) != len(settings.model_cpus):
            raise PlanError("--model_cpus lists a core twice; list each core once")
        rest = [c for c in available if c not in settings.model_cpus]
        if len(rest) >= 2:
            return CorePlan((rest[0],), tuple(rest[1:]), tuple(settings.model_cpus),
                            "frontend and load generator on cores apart from the replicas")
        return CorePlan((), (), tuple(settings.model_cpus),
                        "too few cores left: frontend and load generator share cores with the replicas")
    if len(available) >= MIN_CORES_TO_RESERVE:
        # Each engine and client process runs a Python thread and ZeroMQ's I/O thread: on one core
        # they take turns at every message. With 8 or more cores, give each of them two.
        per_process = 2 if len(available) >= CORES_FOR_TWO_PER_PROCESS else 1
        n_client = min(per_process * max(settings.num_clients, 1), max(per_process, len(available) // 4))
        return CorePlan(
            tuple(available[:per_process]),
            tuple(available[per_process:per_process + n_client]),
            tuple(available[per_process + n_client:]),
            "frontend and load generator on cores apart from the replicas",
        )
    return CorePlan(
        (), (), tuple(available),
        f"only {len(available)} cores: frontend, load generator and replicas share them",
    )


def configurations(settings: RunSettings) -> list[ConfigPoint]:
    """Every configuration, in the original's order: replicas, then cores per replica, then batch;
    GPU power limits and clocks, when swept, vary outside the batch size; offered rates or
    concurrencies, when swept, inside it (one deployment serves them all)."""
    return [
        ConfigPoint(settings.model_name, r, c, b, pl, clk, rate, conc)
        for r in settings.num_replicas
        for c in settings.cpus_per_replica_nums
        for pl in (settings.gpu_power_limits_w or (None,))
        for clk in (settings.gpu_clocks_mhz or (None,))
        for b in settings.batch_sizes
        for rate in (settings.rate_qps or (None,))
        for conc in (settings.concurrency or (None,))
    ]


def validate(settings: RunSettings, available: list[int], gpu_names: list[str]) -> tuple[CorePlan, list[ConfigPoint]]:
    """Check every setting against this machine before anything starts; raise PlanError if wrong."""
    settings = resolve_defaults(settings)
    check_numbers(settings)
    _check_machine(settings, gpu_names)
    plan = plan_cores(settings, available)
    points = configurations(settings)
    for point in points:
        placements(point, plan, settings.model_gpus, settings.oversubscribe)
    return plan, points


def check_numbers(settings: RunSettings) -> None:
    """Values that are wrong on any machine, before anything is written or started: each field's
    declared range and check, then how fields combine. PlanError says which flag, its limit, the fix."""
    problem = check_declared(settings)
    if problem:
        raise PlanError(problem)
    if settings.rate_qps:
        if settings.concurrency:
            raise PlanError("--rate (open loop) and --concurrency (closed loop) exclude each other: pass one")
    if settings.cuda_graphs == "on" and (not settings.model_gpus or settings.framework != "torch"
                                         or not get_model_spec(settings.model_name).uses_gpu):
        raise PlanError("--cuda_graphs on captures torch image models (vgg, inception) on a GPU: "
                        "pass -g/--model_gpus and --framework torch, or drop --cuda_graphs")


def _check_machine(settings: RunSettings, gpu_names: list[str]) -> None:
    """What this machine (its GPUs, Docker, Ray, permissions) must offer the settings."""
    if settings.model_gpus:
        missing = [g for g in settings.model_gpus if g < 0 or g >= len(gpu_names)]
        if missing:
            have = f"GPUs 0-{len(gpu_names) - 1}" if gpu_names else "no NVIDIA GPU"
            raise PlanError(f"--model_gpus asks for GPU {missing} but this machine has {have}; "
                            "drop -g to run on the CPU")
        if max(settings.num_replicas) > len(settings.model_gpus):
            raise PlanError(
                f"{max(settings.num_replicas)} replicas need {max(settings.num_replicas)} GPUs, "
                f"--model_gpus gives {len(settings.model_gpus)}; list one GPU per replica"
            )
    engine_class(settings.engine).validate(settings)
    if settings.gpu_clocks_mhz and settings.model_gpus:
        _check_gpu_clocks(settings.gpu_clocks_mhz, settings.model_gpus)
    if settings.gpu_power_limits_w or settings.gpu_clocks_mhz:
        from ..power.limits import LimitError, check_permission

        try:
            check_permission(settings.model_gpus, settings.gpu_power_limits_w, settings.gpu_clocks_mhz)
        except LimitError as exc:
            raise PlanError(str(exc)) from None


def _check_gpu_clocks(clocks_mhz: tuple[int, ...], gpus: tuple[int, ...]) -> None:
    """Every --gpu_clocks value within the SM clocks each GPU of -g supports (NVML's lowest supported
    graphics clock to its highest SM clock): NVML would otherwise clamp a lock silently and the record
    would name a clock that never ran. Where NVML cannot say, the permission check decides."""
    from ..power.nvml import load_nvml
    from ..power.source import SourceUnavailable

    try:
        nvml = load_nvml()
    except SourceUnavailable:
        return
    try:
        supported = {gpu: _supported_sm_clocks(nvml, nvml.nvmlDeviceGetHandleByIndex(gpu)) for gpu in sorted(set(gpus))}
    except (nvml.NVMLError, AttributeError, ValueError):
        return  # an NVML without these queries (or a fake one): check_permission still runs
    finally:
        nvml.nvmlShutdown()
    for gpu, (lo, hi) in supported.items():
        bad = [c for c in clocks_mhz if not lo <= c <= hi]
        if bad:
            raise PlanError(f"--gpu_clocks {bad[0]} MHz is outside the SM clocks GPU {gpu} supports "
                            f"({lo} to {hi} MHz); pass clocks in that range")


def _supported_sm_clocks(nvml, handle) -> tuple[int, int]:
    """The lowest graphics clock any memory clock allows and the highest SM clock, in MHz."""
    graphics = [c for mem in nvml.nvmlDeviceGetSupportedMemoryClocks(handle)
                for c in nvml.nvmlDeviceGetSupportedGraphicsClocks(handle, mem)]
    return min(graphics), nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)
