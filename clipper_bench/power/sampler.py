"""The sampling process: reads every source each interval during a window, writes the samples.

It runs in its own process (spawned), so a source that hangs or crashes cannot take the run with
it: the parent gets a file with what was sampled and each source's status, or a recorded error.
The loop's sleep subtracts the time the reads took, so samples stay on the interval grid.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..common.processes import die_with_parent, set_title
from .cpu import CpuSource
from .meters import KINDS, node_source_classes, node_sources
from .nvml import NvmlSource
from .rapl import RaplSource
from .source import SCOPE_NODE, PowerSource, SourceUnavailable

# The sampling interval's bounds. NVML's power reading is updated every 1/6 to 1 s, depending on the
# product (NVML reference; on Ampere and newer nvmlDeviceGetPowerUsage is a 1 s average), and RAPL's
# energy counter about every millisecond, so sampling faster than 10 ms only repeats readings and
# keeps a core busy. A counter must be read before it wraps: a 32-bit RAPL counter (4,295 J) wraps
# in 10.7 s at 400 W, hence at most 10 s.
MIN_INTERVAL_S = 0.01
MAX_INTERVAL_S = 10.0


@dataclass(frozen=True)
class SamplerConfig:
    """What to sample, how often, when, and where the samples go; an interval outside
    ``MIN_INTERVAL_S``-``MAX_INTERVAL_S`` is a ValueError (the sampler would spin, or miss wraps)."""

    interval_s: float
    start_wall: float
    end_wall: float
    out_path: str
    gpus: tuple[int, ...] = ()
    powercap_root: str = "/sys/class/powercap"
    cpu_groups: dict[str, list[int]] = field(default_factory=dict)
    # --power_meter's values (meters.py), and the file its BMCs' credentials are in (never the credentials)
    power_meters: tuple[str, ...] = ()
    power_meter_credentials: str | None = None

    def __post_init__(self) -> None:
        if not MIN_INTERVAL_S <= self.interval_s <= MAX_INTERVAL_S:
            raise ValueError(f"power sampling interval must be {MIN_INTERVAL_S * 1000:g} to "
                             f"{MAX_INTERVAL_S * 1000:g} ms, got {self.interval_s * 1000:g} ms")


# every power source; a new one is one more here (a whole-machine one: one more in meters.KINDS)
COMPONENT_CLASSES = (NvmlSource, RaplSource, CpuSource)
SOURCE_CLASSES = (*COMPONENT_CLASSES, *(kind.cls for kind in KINDS.values()))  # built-ins only


def _sources(cfg: SamplerConfig) -> list[PowerSource]:
    return [NvmlSource(cfg.gpus), RaplSource(Path(cfg.powercap_root)), CpuSource(cfg.cpu_groups),
            *node_sources(cfg.power_meters, cfg.power_meter_credentials, cfg.interval_s)]


def energy_source_names() -> tuple[str, ...]:
    """The sources whose channels measure energy or power (as each source declares)."""
    classes = (*COMPONENT_CLASSES, *node_source_classes())  # plug-in sources (entry points) too
    return tuple(cls.name for cls in classes if cls.measures_energy)


LIVE_EVERY_S = 1.0
WRITE_FAILED_EXIT = 3  # the sampler's exit status when its samples file could not be written


def _write_live(path: Path, now: float, series: dict[str, dict[str, list]], channels: dict[str, dict]) -> None:
    """Watts per channel over the last second, for the driver's live display and Prometheus
    (``<out>.live.json``); ``node`` lists the whole-machine channels, which contain the others."""
    watts = {}
    for channel, s in series.items():
        if s["power_w"] and s["power_w"][-1] is not None:
            watts[channel] = s["power_w"][-1]
            continue
        t, e = s["t"], s["energy_j"]
        k = next((i for i in range(len(t) - 1, -1, -1) if t[-1] - t[i] >= LIVE_EVERY_S), 0)
        if e and e[-1] is not None and e[k] is not None and t[-1] > t[k]:
            watts[channel] = (e[-1] - e[k]) / (t[-1] - t[k])
    node = sorted(c for c, meta in channels.items() if meta["scope"] == SCOPE_NODE)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps({"t": now, "watts": watts, "node": node}))
        os.replace(tmp, path)
    except OSError:  # only for the live display (a full disk): the samples go on
        tmp.unlink(missing_ok=True)


def read_live_watts(out_path: str | Path) -> float | None:
    """Total watts of the GPU and RAPL channels the running sampler saw last, or None (a whole-machine
    meter's channels are left out: they contain the others)."""
    try:
        live = json.loads(Path(f"{out_path}.live.json").read_text())
        watts = {k: v for k, v in live["watts"].items() if k not in set(live.get("node") or [])}
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None
    return sum(watts.values()) if watts else None


def probe_energy_sources(cfg: SamplerConfig) -> dict[str, str]:
    """Open and close the sources that measure energy: ``{name: "ok" | "unavailable: <reason>"}``."""
    status = {}
    for source in (s for s in _sources(cfg) if s.measures_energy):
        try:
            source.open()
            status[source.name] = "ok"
        except SourceUnavailable as exc:
            status[source.name] = f"unavailable: {exc}"
        except Exception as exc:  # noqa: BLE001 - reported, like the sampler does
            status[source.name] = f"error: {type(exc).__name__}: {exc}"
        finally:
            try:
                source.close()
            except Exception:  # noqa: BLE001 - a source that failed to open may fail to close
                pass
    return status


def _open_sources(cfg: SamplerConfig, opened: list[PowerSource]) -> dict[str, str]:
    """Open every source where it can be, adding the open ones to ``opened`` (as they open: the
    caller closes them on every way out); each source's status."""
    status: dict[str, str] = {}
    for source in _sources(cfg):
        try:
            source.open()
            status[source.name] = "ok"
            opened.append(source)
        except SourceUnavailable as exc:
            status[source.name] = f"unavailable: {exc}"
        except Exception as exc:  # a source that fails in an unexpected way is recorded, not fatal
            status[source.name] = f"error: {type(exc).__name__}: {exc}"
            _close(source)
    return status


def sample(cfg: SamplerConfig, ready: Any = None) -> dict[str, Any]:
    """Open the sources, sample them over the window, write and return the samples document: the
    config, each source's status and ``source_info``, each channel's series, and ``channels``: which
    source read each channel and its scope (``component`` channels add up; ``node`` ones contain them)."""
    opened: list[PowerSource] = []
    live_path = Path(f"{cfg.out_path}.live.json")
    doc: dict[str, Any] = {"config": asdict(cfg), "status": {}, "series": {}, "channels": {}, "source_info": {}}
    try:  # every source is closed on every way out: a meter's command is a process to end
        doc["status"] = _open_sources(cfg, opened)
        if ready is not None:
            ready.set()
        delay = cfg.start_wall - time.time()
        if delay > 0:
            time.sleep(delay)
        _sample_until_end(cfg, opened, doc, live_path)
    finally:  # also when stopped: the live file is for the display of a running window only
        live_path.unlink(missing_ok=True)
        for source in opened:
            _close(source)
    for source in opened:
        doc["source_info"][source.name] = source.info()
    tmp = f"{cfg.out_path}.tmp"
    try:
        Path(tmp).write_text(json.dumps(doc))
        os.replace(tmp, cfg.out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return doc


def _close(source: PowerSource) -> None:
    try:
        source.close()
    except Exception:  # noqa: BLE001 - closing only; the samples are what matter
        pass


def _append(doc: dict[str, Any], source: PowerSource, readings: list, now: float) -> None:
    """Add one read's readings to the document's series (a reading's own time where it has one)."""
    for r in readings:
        s = doc["series"].get(r.channel)
        if s is None:
            s = doc["series"][r.channel] = {"t": [], "energy_j": [], "power_w": []}
            doc["channels"][r.channel] = {"source": source.name,  # CPU use: neither a part's energy nor the node's
                                          "scope": source.scope if source.measures_energy else "none"}
        s["t"].append(now if r.t is None else r.t)
        s["energy_j"].append(r.energy_j)
        s["power_w"].append(r.power_w)
        if r.stamp is not None:
            s.setdefault("stamp", []).append(r.stamp)
        for key, value in r.extra.items():
            s.setdefault(key, []).append(value)


def _sample_until_end(cfg: SamplerConfig, opened: list, doc: dict[str, Any], live_path: Path) -> None:
    """Read every open source each interval until the window's end (a source that fails is closed,
    its reason recorded, and the others go on)."""
    next_t, live_at = time.time(), 0.0
    status = doc["status"]
    while True:
        now = time.time()
        for source in list(opened):
            try:
                readings = source.read()
            except Exception as exc:  # noqa: BLE001 - recorded with its reason; the other sources go on
                reason = str(exc) if isinstance(exc, SourceUnavailable) else f"{type(exc).__name__}: {exc}"
                status[source.name] = f"failed {max(now - cfg.start_wall, 0.0):.1f} s into the window: {reason}"
                opened.remove(source)
                doc["source_info"][source.name] = source.info()
                _close(source)
                continue
            _append(doc, source, readings, now)
        if now - live_at >= LIVE_EVERY_S:
            live_at = now
            _write_live(live_path, now, doc["series"], doc["channels"])
        if now >= cfg.end_wall:
            break
        next_t += cfg.interval_s
        time.sleep(max(0.0, min(next_t, cfg.end_wall) - time.time()))


def _sampler_process(cfg: SamplerConfig, ready: Any, parent_pid: int) -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # runs sample's cleanup
    die_with_parent(parent_pid)  # SIGTERM when the driver dies, even while stopped (common/processes.py)
    set_title(f"clipper-bench sampler -> {Path(cfg.out_path).name}")
    try:
        sample(cfg, ready)
    except OSError:  # its samples could not be written (a full disk): the parent says so, no traceback
        sys.exit(WRITE_FAILED_EXIT)


class PowerMonitor:
    """Runs :func:`sample` in a spawned process; :meth:`result` never raises for the sampler's faults."""

    def __init__(self, cfg: SamplerConfig) -> None:
        self.cfg = cfg
        ctx = mp.get_context("spawn")
        self._ready = ctx.Event()
        self._process = ctx.Process(target=_sampler_process, args=(cfg, self._ready, os.getpid()), daemon=True)

    def probe(self) -> dict[str, str]:
        """The energy sources this sampler would read (see :func:`probe_energy_sources`)."""
        return probe_energy_sources(self.cfg)

    def start(self, ready_timeout_s: float = 30.0) -> None:
        """Start the sampler process; wait up to ``ready_timeout_s`` for it to open its sources."""
        self._process.start()
        self._ready.wait(ready_timeout_s)

    def result(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """The samples document, or ``{"error": ...}`` when the sampler did not deliver one."""
        remaining = max(self.cfg.end_wall - time.time(), 0.0) + timeout_s
        self._process.join(remaining)
        if self._process.is_alive():
            self.stop()
            return {"error": f"power sampler did not finish within {timeout_s:.0f} s of the window's end"}
        if self._process.exitcode == WRITE_FAILED_EXIT:
            return {"error": f"power sampler failed: it could not write {self.cfg.out_path}"}
        if self._process.exitcode != 0 or not Path(self.cfg.out_path).exists():
            return {"error": f"power sampler failed (exit code {self._process.exitcode})"}
        return json.loads(Path(self.cfg.out_path).read_text())

    def stop(self) -> None:
        """Stop the sampler now (on errors and interrupts); reaps it."""
        if self._process.is_alive():
            self._process.terminate()
            try:
                os.kill(self._process.pid, signal.SIGCONT)  # a stopped sampler acts on SIGTERM once continued
            except (ProcessLookupError, TypeError):
                pass
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
