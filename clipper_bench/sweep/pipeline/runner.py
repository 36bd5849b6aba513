"""``clipper-bench pipeline``: for every stage configuration, deploy the pipeline, drive load of
pipeline queries, and record end-to-end numbers with the per-stage breakdown.

The load, statuses, drain, power and files are ``run``'s: the same clients (closed or open loop,
CO-free), the same ``summarize``/``classify`` rules, the same record and ``runs.ndjson`` line
shapes; a record adds ``stages`` (where the time went per stage, the bottleneck named) and the
original's e2e results file adds per-window ``mean_batch_sizes``.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from clipper_admin.exceptions import ClipperException

from ...common.processes import EXPERIMENT_ENV
from ...load.intervals import repeat_stats
from ...load.orchestrate import LoadError, run_clients
from ...load.spec import LoadSpec
from ...load.stats import lateness_stats, summarize, window_metrics
from ...power.sampler import PowerMonitor, SamplerConfig, read_live_watts
from ...power.summary import summarize_power
from ...protocol.transports import Transport
from ...results.records import original_client_metrics
from ...results.status import RunStatus, classify_windows
from ...results.store import EXPERIMENT_FILE, ExperimentStore, atomic_write_json, host_info
from ..plan import detect_gpus, plan_cores, usable_cpus
from ..progress import LivePoller, LiveStats, Progress
from ..rate_search import RateSearch
from ..runner import describe_line
from ..settings import RunSettings
from .analysis import stage_breakdown, window_batch_sizes
from .deploy import PipelineDeployment
from .plan import stage_placements
from .spec import PipelineError, PipelineSpec, StageConfig, config_id, query_model


class PipelineRunner:
    """Runs every configuration of one pipeline experiment and writes its results."""

    def __init__(self, spec: PipelineSpec, settings: RunSettings, command_line: list[str],
                 say: Callable[[str], None] = lambda s: print(s, flush=True), progress: Progress | None = None) -> None:
        self.spec, self.settings, self.command_line, self.say = spec, settings, command_line, say
        self.progress = progress or Progress()
        self.plan = plan_cores(settings, usable_cpus())
        gpu_count = len(detect_gpus()) if any(s.gpus for s in spec.stages) else 0
        self.points = [(config_id(spec, c), c) for c in spec.configurations]
        self.places = {cid: stage_placements(spec, c, self.plan, settings.oversubscribe, gpu_count)
                       for cid, c in self.points}  # every configuration checked before anything starts
        self.store = ExperimentStore(settings.results_dir)
        self.deployment: PipelineDeployment | None = None
        self.not_clean: list[dict[str, Any]] = []

    def run(self) -> Path:
        """Measure every configuration; return the experiment directory."""
        import os

        self.store.create({
            "experiment_id": self.store.experiment_id, "kind": "pipeline", "command_line": self.command_line,
            "pipeline": {"name": self.spec.name, "source": self.spec.source,
                         "stages": [dataclasses.asdict(s) for s in self.spec.stages]},
            "settings": self.settings.to_json(), "core_plan": self.plan.to_json(),
            "configurations": [cid for cid, _ in self.points], "host": host_info(detect_gpus()),
            "started_at": time.time(),
        })
        os.environ[EXPERIMENT_ENV] = self.store.experiment_id
        self.say(f"experiment {self.store.path}: pipeline {self.spec.name}, {len(self.points)} configurations; "
                 f"{self.plan.note}")
        previous = signal.signal(signal.SIGTERM, _interrupted)
        try:
            self._prepare_models()
            self.progress.begin([self.settings.warmup_s + self.settings.duration_s] * len(self.points))
            for k, (cid, config) in enumerate(self.points, 1):
                self.say(f"[{k}/{len(self.points)}] {cid} ...")
                self.progress.config_started(k, cid)
                line = self._run_config(cid, config)
                self.progress.config_ended(line["status"] != RunStatus.FAILED)
                self.say(f"[{k}/{len(self.points)}] {cid}: {describe_line(line) if line['summary_ok'] else line['status'] + ': ' + str(line['reason'])}")
                if line["status"] != RunStatus.OK:
                    self.not_clean.append(line)
                if line["status"] == RunStatus.INTERRUPTED:
                    raise KeyboardInterrupt
        finally:
            self._stop()
            signal.signal(signal.SIGTERM, previous)
        for line in self.not_clean:
            self.say(f"  {line['config_id']}: {line['status']}: {line['reason']}")
        self.say(f"results in {self.store.path}")
        return self.store.path

    def _prepare_models(self) -> None:
        from ...containers.models import get_model_spec
        from ...containers.models.classical import ensure_built, verify_artifact

        for name in sorted({get_model_spec(s.model).name for s in self.spec.stages}):
            if get_model_spec(name).needs_build:
                ensure_built(self.settings.models_dir, name)
                verify_artifact(self.settings.models_dir, name)

    def _stop(self) -> None:
        if self.deployment is not None:
            deployment, self.deployment = self.deployment, None
            deployment.stop()

    def _deploy(self, cid: str, config: dict[str, StageConfig]) -> PipelineDeployment:
        """The running deployment when only batch sizes change and it is healthy, else a fresh one."""
        d = self.deployment
        if d is not None and not self.settings.fresh_deployments and d.serves_config(config) and not d.stage_problem():
            d.reuse_for_config(config, cid)
            return d
        self._stop()
        self.deployment = PipelineDeployment.start(self.spec, config, cid, self.places[cid], self.settings,
                                                   self.plan.frontend_cpus, self.store.logs_dir / cid)
        return self.deployment

    def _run_config(self, cid: str, config: dict[str, StageConfig]) -> dict[str, Any]:
        record: dict[str, Any] = {"config_id": cid, "kind": "pipeline", "node_configs": self._node_configs(cid, config),
                                  "clipper_metrics": None, "client_metrics": [], "summary": None,
                                  "status": RunStatus.FAILED, "reason": None, "error": None, "started_at": time.time()}
        try:
            self._measure(cid, config, record)
            self._repeat(cid, record)
            self._search_rate(cid, config, record)
            if record.get("repeats") or record.get("rate_search"):
                record["faults"] = self.deployment.faults_since(record["started_at"])
            record["status"], record["reason"] = classify_windows(record.get("repeats") or [record["summary"]],
                                                                  record["faults"])
        except KeyboardInterrupt as exc:
            record["status"] = RunStatus.INTERRUPTED
            record["error"] = record["reason"] = f"interrupted ({str(exc) or 'signal SIGINT, Ctrl-C'})"
        except (ClipperException, LoadError, requests.RequestException, OSError) as exc:
            record["error"] = record["reason"] = f"{type(exc).__name__}: {exc}"
        finally:
            if record["status"] != RunStatus.OK:
                self._stop()
        record["ended_at"] = time.time()
        if record.get("summary") is not None and record["status"] != RunStatus.INTERRUPTED:
            record["original_results_file"] = self._write_original(record)
        self.store.write_config(cid, record)
        line = _run_line(record, self.settings)
        self.store.append_run({k: v for k, v in line.items() if k != "summary_ok"})
        return line

    def _node_configs(self, cid: str, config: dict[str, StageConfig]) -> list[dict[str, Any]]:
        """One of the original's node_configs per stage (the nine keys, plus the registry model)."""
        from ...containers.models import get_model_spec
        from ...server.images import model_image

        out = []
        for stage in self.spec.stages:
            places, c = self.places[cid][stage.name], config[stage.name]
            out.append({"name": stage.name, "model": get_model_spec(stage.model).name,
                        "input_type": get_model_spec(stage.model).input_type.api_name,
                        "model_image": model_image(stage.model),
                        "allocated_cpus": sorted({x for p in places for x in p.cpus}),
                        "cpus_per_replica": c.cpus_per_replica, "slo": int(self.settings.slo_ms * 1000),
                        "num_replicas": c.replicas, "gpus": [p.gpu for p in places if p.gpu is not None],
                        "batch_size": c.batch_size})
        return out

    def _specs(self, cid: str, rate: float | None, warmup: float, label: str = "") -> list[LoadSpec]:
        from ...containers.models import get_model_spec

        s, model = self.settings, query_model(self.spec)
        concurrency = (sum(s.concurrency) if s.concurrency else
                       max(c.replicas * c.batch_size for c in self.points_by_id[cid].values()) * (s.batches_in_flight + 1))
        manager = self.deployment.manager
        address = manager.get_binary_addr() if s.transport == Transport.BINARY else manager.get_query_addr()
        prefix = f"{label}." if label else ""
        n = s.clients_for(rate)
        return [LoadSpec(
            client_index=i, transport=s.transport, address=address, app=self.spec.name, model_name=model,
            concurrency=math.ceil(concurrency / n), start_at_wall=0.0, warmup_s=warmup,
            duration_s=s.duration_s, drain_timeout_s=s.drain_timeout_s, drain_max_s=s.drain_max_s,
            slo_s=s.slo_ms / 1000, out_path=str(self.store.configs_dir / f"{prefix}{cid}.client{i}.queries.npz"),
            pool_size=get_model_spec(model).pool_size(s.pool_size), seed=s.seed, cpus=self.plan.client_cpus,
            rate_qps=rate / n if rate else None, arrival=s.arrival,
        ) for i in range(n)]

    @property
    def points_by_id(self) -> dict[str, dict[str, StageConfig]]:
        return dict(self.points)

    def _measure(self, cid: str, config: dict[str, StageConfig], record: dict[str, Any]) -> None:
        """Deploy, drive load with power sampled, and fill the record."""
        s = self.settings
        self.progress.update(LiveStats("deploying"))
        deployment = self._deploy(cid, config)
        reused = deployment.started_for != cid
        warmup = min(s.warmup_s, s.warmup_reused_s) if reused else s.warmup_s
        rate = s.rate_qps[0] if s.rate_qps else None
        specs = self._specs(cid, rate, warmup)
        monitors: list[PowerMonitor] = []

        def start_power(start_at: float) -> None:
            gpus = sorted({p.gpu for ps in self.places[cid].values() for p in ps if p.gpu is not None})
            cfg = SamplerConfig(s.power_interval_ms / 1000, start_at + warmup, start_at + warmup + s.duration_s,
                                str(self.store.configs_dir / f"{cid}.power_samples.json"), tuple(gpus),
                                str(s.powercap_root), {"all": usable_cpus()}, s.power_meters,
                                None if s.power_meter_credentials is None else str(s.power_meter_credentials))
            monitors.append(PowerMonitor(cfg))
            monitors[0].start()

        self.progress.update(LiveStats("measuring"))
        try:
            start_at, clients = self._clients_with_reset(specs, cid, warmup, start_power)
            power_doc = monitors[0].result() if monitors else {"error": "power sampler never started"}
        finally:
            for m in monitors:
                m.stop()
        deployment.check_frontend()
        window = (int((start_at + warmup) * 1e9), int((start_at + warmup + s.duration_s) * 1e9))
        record["deployment"] = {"started_for": deployment.started_for, "reused": reused,
                                "startup_s": round(deployment.startup_s, 3), "replicas": deployment.replica_ids(),
                                "logs": str(deployment.log_dir)}
        record["faults"] = deployment.faults_since(record["started_at"])
        record["window_wall_ns"] = list(window)
        record["summary"] = summarize(clients, window, s.slo_ms, rate)
        record["summary"]["load"] = {"mode": "open" if rate else "closed", "rate_qps": rate,
                                     "arrival": s.arrival if rate else None,
                                     "concurrency": None if rate else specs[0].concurrency * len(specs),
                                     "lateness": lateness_stats(clients, window) if rate else None}
        trace = deployment.trace()
        record["stage_trace_file"] = _save_trace(trace, self.store.configs_dir / f"{cid}.stages.npz")
        record["stages"] = stage_breakdown(trace, (window[0] / 1e9, window[1] / 1e9),
                                           {n: c.replicas for n, c in config.items()})
        record["power"] = summarize_power(power_doc, record["summary"]["num_completed"], {})
        record["clipper_metrics"] = deployment.clipper_metrics()
        originals = [window_metrics(c, window) for c in clients]
        record["client_metrics"] = original_client_metrics([{k: v for k, v in m.items() if k != "all_lats"}
                                                            for m in originals])
        record["_original"] = {"client_metrics": original_client_metrics(originals),
                               "mean_batch_sizes": window_batch_sizes(trace, _bounds(clients[0], window))}
        record["raw_files"] = [Path(sp.out_path).name for sp in specs]

    def _clients_with_reset(self, specs: list[LoadSpec], cid: str, warmup: float,
                            start_power: Callable[[float], None]) -> tuple[float, list]:
        """Run the clients with the live panel's poller beside them; the poller clears the frontend's
        metrics and stage trace as the window begins, as ``run``'s does."""
        s = self.settings
        samples = self.store.configs_dir / f"{cid}.power_samples.json"
        pollers: list[LivePoller] = []

        def on_start(start_at: float) -> None:
            start_power(start_at)

            def phase() -> str:
                now = time.time()
                if now < start_at + warmup:
                    return "warming up"
                return "measuring" if now < start_at + warmup + s.duration_s else "draining"

            manager = self.deployment.manager
            pollers.append(LivePoller(f"http://{manager.get_query_addr()}/metrics", self.spec.name,
                                      lambda: read_live_watts(samples), phase, self.progress.update,
                                      on_measuring=manager.reset_metrics).start())

        try:
            return run_clients(specs, self.store.logs_dir / cid, on_start)
        finally:
            for poller in pollers:
                poller.stop()

    def _window(self, cid: str, rate: float | None, label: str) -> dict[str, Any]:
        """One more window of load on the running deployment (raw data not kept); its summary."""
        s = self.settings
        warmup = min(s.warmup_s, 1.0)
        specs = self._specs(cid, rate, warmup, label)
        start_at, clients = run_clients(specs, self.store.logs_dir / cid / label)
        for spec in specs:
            Path(spec.out_path).unlink(missing_ok=True)
        begin = start_at + warmup
        return summarize(clients, (int(begin * 1e9), int((begin + s.duration_s) * 1e9)), s.slo_ms, rate)

    def _repeat(self, cid: str, record: dict[str, Any]) -> None:
        """``repeats`` > 1 (the planner's validation): more windows on the same deployment; every
        repeat's summary and the mean with a 95% interval of throughput, p50 and p99."""
        s = self.settings
        if s.repeats < 2 or record.get("summary") is None:
            return
        rate = s.rate_qps[0] if s.rate_qps else None
        summaries = [record["summary"]]
        for k in range(2, s.repeats + 1):
            self.progress.update(LiveStats(f"repeat {k} of {s.repeats}"))
            summaries.append(self._window(cid, rate, f"repeat{k}"))
        record["repeats"] = [{k: v for k, v in x.items() if k != "drain"} for x in summaries]
        record["repeat_stats"] = repeat_stats(summaries)

    def _search_rate(self, cid: str, config: dict[str, StageConfig], record: dict[str, Any]) -> None:
        """``--max_rate_under_p99_ms``: probe open-loop rates of pipeline queries on this deployment."""
        s = self.settings
        capacity = (record.get("summary") or {}).get("throughput_qps") or 0.0
        if s.max_rate_under_p99_ms is None or s.rate_qps or capacity <= 0:
            return
        search = RateSearch(s.max_rate_under_p99_ms)

        def probe(rate: float) -> dict[str, Any]:
            self.progress.update(LiveStats(f"searching: {rate:,.1f} q/s offered"))
            return self._window(cid, rate, "rate-search")

        found = search.run(capacity, probe)
        record["rate_search"] = search.to_json(found, capacity, s.arrival)
        self.say(f"  highest rate with p99 <= {s.max_rate_under_p99_ms:g} ms: "
                 + (f"{found:,.1f} q/s" if found else "none") + f" ({len(search.probes)} probes)")

    def _write_original(self, record: dict[str, Any]) -> str:
        """The original e2e driver's ``results-*.json``: node_configs (one per stage), clipper_metrics,
        client_metrics with ``all_lats``, and per-window ``mean_batch_sizes``."""
        original = record.pop("_original", None) or {"client_metrics": record["client_metrics"], "mean_batch_sizes": []}
        name = f"results-{time.strftime('%y%m%d_%H%M%S', time.localtime(record['ended_at']))}-{record['config_id']}.json"
        atomic_write_json(self.store.path / name, {
            "node_configs": record["node_configs"], "clipper_metrics": record["clipper_metrics"],
            "client_metrics": original["client_metrics"], "mean_batch_sizes": original["mean_batch_sizes"],
            "clipper_bench": {"config_id": record["config_id"], "status": record["status"], "reason": record["reason"],
                              "record": f"configs/{record['config_id']}.json"},
        })
        return name


def _save_trace(trace: dict[str, Any], path: Path) -> str:
    """Every stage pass as raw columns (``np.load``, no pickle): query id, stage, and the queued, sent
    and answered times in wall-clock ns (-1: never sent), batch size, replica and status."""
    import numpy as np

    offset = trace["anchor_wall"] - trace["anchor_perf"]

    def wall_ns(values: list) -> np.ndarray:
        return np.asarray([-1 if v is None else int((v + offset) * 1e9) for v in values], dtype=np.int64)

    np.savez(path, query_id=np.asarray(trace["query_id"], dtype=np.int64), stage=np.asarray(trace["stage"], dtype=str),
             queued_wall_ns=wall_ns(trace["queued_at"]), sent_wall_ns=wall_ns(trace["sent_at"]),
             done_wall_ns=wall_ns(trace["done_at"]), batch_size=np.asarray(trace["batch_size"], dtype=np.int32),
             replica=np.asarray(trace["replica"], dtype=np.int32), status=np.asarray(trace["status"], dtype=np.int8))
    return path.name


def _bounds(client: Any, window: tuple[int, int], every: int = 50) -> list[float]:
    """The wall-clock edges (s) of the original's windows of ``every`` answers inside ``window``."""
    import numpy as np

    done = np.sort(client.done_wall_ns[(client.status == 0) & (client.done_wall_ns >= window[0])
                                       & (client.done_wall_ns < window[1])])
    return [window[0] / 1e9, *(done[every - 1::every] / 1e9).tolist()]


def _run_line(record: dict[str, Any], settings: RunSettings) -> dict[str, Any]:
    """The configuration's runs.ndjson line (run's headline fields, and the pipeline's stages)."""
    summary = record.get("summary") or {}
    stages = record.get("stages") or {}
    return {
        "config_id": record["config_id"], "kind": "pipeline", "model_name": record["config_id"].split("-")[0],
        "engine": settings.engine, "transport": settings.transport,
        "stages": [{k: n[k] for k in ("name", "model", "num_replicas", "batch_size", "cpus_per_replica", "gpus")}
                   for n in record["node_configs"]],
        "duration_s": settings.duration_s, "num_completed": summary.get("num_completed"),
        "num_errors": summary.get("num_errors"), "num_defaults": summary.get("num_defaults"),
        "num_unanswered": summary.get("num_unanswered"), "throughput_qps": summary.get("throughput_qps"),
        "goodput": summary.get("goodput"), "goodput_qps": summary.get("goodput_qps"),
        "latency_ms": summary.get("latency_ms"), "load": summary.get("load"),
        "bottleneck": stages.get("bottleneck"),
        "max_rate_qps": (record.get("rate_search") or {}).get("max_rate_qps"),
        "repeat_stats": record.get("repeat_stats"),
        "serving_efficiency": None, "power": None if not record.get("power") else {
            "joules_per_query": record["power"].get("joules_per_query"), "avg_w": record["power"].get("avg_w"),
            **{k: record["power"][k] for k in ("node_power_mean_w", "node_energy_per_query_j", "node_problem")
               if k in record["power"]}},
        "faults": [f["what"] for f in record.get("faults") or []],
        "status": record["status"], "reason": record["reason"], "error": record["error"],
        "summary_ok": record.get("summary") is not None,
    }


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


__all__ = ["PipelineError", "PipelineRunner", "EXPERIMENT_FILE"]
