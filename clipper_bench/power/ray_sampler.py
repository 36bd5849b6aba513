"""Power on every host of a Ray cluster: one sampler actor per host, as :class:`PowerMonitor` is one
sampler process here.

A *host* is a machine (see :mod:`common.ray_cluster`): Ray nodes that share one are sampled once,
so RAPL and the GPUs of a machine are never counted twice. Each host's sampler runs
:func:`sampler.sample` inside a Ray actor on one of its nodes, over the window moved onto that
host's clock; its samples come back moved onto the driver's clock.

The merged document has the shape :func:`summary.summarize_power` reads. With more than one host,
every channel and source is suffixed ``@<host label>`` (``gpu0@node2``, ``rapl@node1``) and
``hosts`` says which label is which machine and which Ray nodes run there; :func:`host_docs` splits
the document back per host for the record's per-host power blocks.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..common.ray_cluster import RemoteClock, clock_offset_ns, host_id, on_node
from .sampler import SamplerConfig, probe_energy_sources, sample


@dataclass(frozen=True)
class HostPlan:
    """What to sample on one host: its label, one of its nodes, its GPUs and core groups."""

    label: str
    host_id: str
    node_ids: tuple[str, ...]
    gpus: tuple[int, ...] = ()
    cpu_groups: dict[str, list[int]] = dataclasses.field(default_factory=dict)


class PowerSamplerActor(RemoteClock):
    """A power sampler inside a Ray worker on one host."""

    def probe(self, cfg_json: str) -> dict[str, str]:
        """:func:`probe_energy_sources` on this host."""
        return probe_energy_sources(SamplerConfig(**json.loads(cfg_json)))

    def sample(self, cfg_json: str) -> dict[str, Any]:
        """:func:`sample` on this host; the samples document."""
        cfg = SamplerConfig(**json.loads(cfg_json))
        if cfg.out_path:
            return sample(cfg)
        with tempfile.TemporaryDirectory(prefix="clipper-bench-power-") as tmp:
            return sample(dataclasses.replace(cfg, out_path=str(Path(tmp) / "samples.json")))


def start_sampler_actors(hosts: list[HostPlan]) -> list[Any]:
    """One sampler actor per host, on its first node; they live as long as the driver's Ray session
    (start them once, before the first window: starting an actor takes seconds on a busy host)."""
    import ray

    cls = ray.remote(num_cpus=0, max_concurrency=4)(PowerSamplerActor)
    return [cls.options(scheduling_strategy=on_node(h.node_ids[0])).remote() for h in hosts]


class ClusterPowerMonitor:
    """:class:`PowerMonitor`'s contract (probe, start, result, stop) over every host of a cluster,
    through one sampler actor per host (:func:`start_sampler_actors`)."""

    def __init__(self, cfg: SamplerConfig, hosts: list[HostPlan], actors: list[Any]) -> None:
        import ray

        self.ray, self.cfg, self.hosts, self.actors = ray, cfg, hosts, actors
        self.offsets_ns = [clock_offset_ns(a)[0] for a in actors]
        self._pending: list[Any] = []

    def _host_cfg(self, k: int) -> str:
        host, shift = self.hosts[k], self.offsets_ns[k] / 1e9
        # the driver's own host writes where the driver reads live watts; other hosts in a temp dir
        out = self.cfg.out_path if len(self.hosts) == 1 and host.host_id == host_id() else ""
        cfg = dataclasses.replace(self.cfg, start_wall=self.cfg.start_wall + shift, end_wall=self.cfg.end_wall + shift,
                                  out_path=out, gpus=host.gpus, cpu_groups=host.cpu_groups,
                                  power_meters=self.cfg.power_meters if k == self._meter_host() else ())
        return json.dumps(asdict(cfg))

    def _meter_host(self) -> int:
        """The host that reads ``--power_meter`` (once, not on every host): the driver's, else the first."""
        here = host_id()
        return next((k for k, h in enumerate(self.hosts) if h.host_id == here), 0)

    def probe(self) -> dict[str, str]:
        """Every host's energy sources, ``name`` or ``name@label`` -> "ok" | "unavailable: why"."""
        found = self.ray.get([a.probe.remote(self._host_cfg(k)) for k, a in enumerate(self.actors)])
        return {self._name(name, k): v for k, status in enumerate(found) for name, v in status.items()}

    def start(self, ready_timeout_s: float = 30.0) -> None:
        """Start sampling on every host."""
        self._pending = [a.sample.remote(self._host_cfg(k)) for k, a in enumerate(self.actors)]

    def result(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """The merged samples document, or ``{"error": ...}`` when a host's sampler failed."""
        remaining = max(self.cfg.end_wall - time.time(), 0.0) + timeout_s
        try:
            docs = self.ray.get(self._pending, timeout=remaining)
        except self.ray.exceptions.GetTimeoutError:
            return {"error": f"a host's power sampler did not finish within {timeout_s:.0f} s of the window's end"}
        except self.ray.exceptions.RayError as exc:
            return {"error": f"a host's power sampler failed: {type(exc).__name__}"}
        finally:
            self._pending = []
        return self._merge(docs)

    def _merge(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        status: dict[str, str] = {}
        series: dict[str, Any] = {}
        channels: dict[str, Any] = {}
        info: dict[str, Any] = {}
        for k, doc in enumerate(docs):
            shift = self.offsets_ns[k] / 1e9
            status.update({self._name(name, k): v for name, v in doc["status"].items()})
            for channel, s in doc["series"].items():
                series[self._name(channel, k)] = {**s, "t": [t - shift for t in s["t"]]}
            for channel, meta in doc.get("channels", {}).items():
                channels[self._name(channel, k)] = {**meta, "source": self._name(meta["source"], k)}
            info.update({self._name(name, k): v for name, v in doc.get("source_info", {}).items()})
        hosts = {h.label: {"host_id": h.host_id, "node_ids": list(h.node_ids), "clock_offset_ns": off,
                           "gpus": list(h.gpus)} for h, off in zip(self.hosts, self.offsets_ns, strict=True)}
        return {"config": asdict(self.cfg), "status": status, "series": series, "channels": channels,
                "source_info": info, "hosts": hosts}

    def _name(self, name: str, k: int) -> str:
        return name if len(self.hosts) == 1 else f"{name}@{self.hosts[k].label}"

    def stop(self) -> None:
        """Forget the window (a host's sampler ends by itself at the window's end; the actors stay
        for the next window and go with the Ray session)."""
        self._pending = []


def host_docs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A merged document split per host label (one host: the document itself under its label)."""
    hosts = doc.get("hosts") or {}
    if "error" in doc or len(hosts) <= 1:
        return {label: doc for label in hosts}
    out = {}
    for label in hosts:
        suffix = f"@{label}"
        out[label] = {**doc, "status": {k[: -len(suffix)]: v for k, v in doc["status"].items() if k.endswith(suffix)},
                      "series": {k[: -len(suffix)]: v for k, v in doc["series"].items() if k.endswith(suffix)}}
        if "channels" in doc:  # samples from before it have none: their channels are known by name
            out[label]["channels"] = {k[: -len(suffix)]: {**v, "source": v["source"].removesuffix(suffix)}
                                      for k, v in doc["channels"].items() if k.endswith(suffix)}
    return out
