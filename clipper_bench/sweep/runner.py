"""The experiment runner: for every configuration, deploy, warm up, measure, record, tear down."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from clipper_admin.exceptions import ClipperException

from ..common.processes import EXPERIMENT_ENV
from ..containers.models import get_model_spec, model_option_names
from ..engines.base import Deployment, Engine, StartContext, make_engine
from ..load.intervals import repeat_stats
from ..load.orchestrate import LoadError
from ..load.spec import LoadSpec
from ..load.stats import ClientData, client_cpu_share, lateness_stats, summarize, window_metrics
from ..power.limits import GpuLimits, LimitError, restore_leftovers
from ..power.sampler import SamplerConfig, read_live_watts
from ..power.summary import idle_watts, node_text, summarize_power, trim
from ..protocol.transports import Transport
from ..results.clipper_metrics import model_batch_latency_ms
from ..results.records import ConfigRecord, RunLine, original_client_metrics
from ..results.status import RunStatus, classify_windows
from ..results.store import (
    BASELINES_FILE,
    EXPERIMENT_FILE,
    SWEEP_FILE,
    ExperimentStore,
    ResultsWriteError,
    host_info,
)
from ..server.images import model_image
from ..server.manager import Placement
from .baseline import (
    efficiency_problem,
    resource_key,
    resource_sets,
    run_baseline,
    serving_efficiency,
)
from .calibrate import run_calibration
from .nodes import host_power, nodes_block
from .plan import ConfigPoint, PlanError, detect_gpus, placements, usable_cpus, validate
from .progress import LivePoller, LiveStats, Progress
from .rate_search import RateSearch
from .settings import CLIENT_BUSY_SHARE, RunSettings, resolve_defaults
from .sweep_file import write_sweep_file


class Interrupted(KeyboardInterrupt):
    """SIGTERM arrived; handled exactly like Ctrl-C."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(f"signal {signal.Signals(signum).name}")


class ExperimentRunner:
    """Runs every configuration of one experiment and writes its results."""

    def __init__(
        self,
        settings: RunSettings,
        command_line: list[str],
        say: Callable[[str], None] = lambda s: print(s, flush=True),
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings = resolve_defaults(settings)  # idempotent: the CLI has resolved them
        self.command_line = command_line
        self.say = say
        self.progress = progress or Progress()
        self.spec = get_model_spec(settings.model_name)
        self.gpu_names = detect_gpus() if settings.model_gpus else []
        self.plan, self.points = validate(settings, usable_cpus(), self.gpu_names)
        for line in restore_leftovers():  # a killed run's limits, whatever this run's flags (no state file: no-op)
            self.say(line)
        self.resumed = find_resumable(settings) if settings.resume else None
        self.store = ExperimentStore(settings.results_dir, self.resumed)
        self.baselines: dict[tuple[str, int, int], dict[str, Any]] = {}  # (device, cores, batch size)
        self.idle_w: dict[str, float] = {}
        self.engine: Engine = make_engine(settings)
        self.deployment: Deployment | None = None
        self.not_clean: list[dict[str, Any]] = []  # runs.ndjson lines of configurations not recorded ok
        self.closed_loop_clients = 1  # -n auto: raised to 2 once one client was busy (see _more_clients)

    def _load_previous(self) -> set[str]:
        """What a resumed experiment already has: configurations recorded ok, idle power, baselines."""
        experiment = json.loads((self.store.path / EXPERIMENT_FILE).read_text())
        self.idle_w = (experiment.get("idle_power") or {}).get("watts") or {}
        baselines = self.store.path / BASELINES_FILE
        if baselines.exists():
            for line in baselines.read_text().splitlines():
                rec = json.loads(line)
                ncores = rec.get("num_cpus", rec.get("cpus_per_replica") or 0)  # files before num_cpus: per replica
                self.baselines[(rec["device"], ncores, rec["batch_size"])] = rec
        last: dict[str, str] = {}
        for line in self.store.runs():
            last[line["config_id"]] = line["status"]
        self.store.update_experiment({"resumed_at": [*experiment.get("resumed_at", []), time.time()]})
        done = set()
        for cid in (cid for cid, status in last.items() if status == RunStatus.OK):
            problem = self.store.missing_files(cid)  # the files are the truth, not the runs.ndjson line
            if problem:
                self.say(f"{cid}: recorded ok in runs.ndjson, but {problem}: measuring it again")
            else:
                done.add(cid)
        return done

    def _prepare_models(self) -> None:
        if self.spec.needs_build:
            from ..containers.models.classical import ensure_built, read_manifest, verify_artifact

            if self.spec.name not in read_manifest(self.settings.models_dir)["models"]:
                self.say(f"building {self.spec.name} into {self.settings.models_dir} (first use) ...")
            ensure_built(self.settings.models_dir, self.spec.name)
            verify_artifact(self.settings.models_dir, self.spec.name)  # once, before anything deploys

    def _sampler_config(self, start: float, duration: float, out: Path, gpus, groups) -> SamplerConfig:
        s = self.settings
        return SamplerConfig(
            interval_s=s.power_interval_ms / 1000, start_wall=start, end_wall=start + duration,
            out_path=str(out), gpus=tuple(gpus), powercap_root=str(s.powercap_root), cpu_groups=groups,
            power_meters=s.power_meters, power_meter_credentials=_path_or_none(s.power_meter_credentials),
        )

    def _measure_idle(self) -> None:
        """Idle power of the sources this experiment uses, once, before anything is deployed."""
        s = self.settings
        gpus = sorted(set(s.model_gpus))

        def config() -> SamplerConfig:
            return self._sampler_config(time.time() + 0.5, s.idle_s, self.store.path / "idle_power_samples.json",
                                        gpus, {"all": usable_cpus()})

        sources = self.engine.idle_monitor(config()).probe()  # on a cluster this first call takes seconds
        if not any(v == "ok" for v in sources.values()):
            reason = "; ".join(f"{k}: {v}" for k, v in sources.items())
            self.store.update_experiment({"idle_power": {"duration_s": 0, "watts": {}, "sources": sources,
                                                         "skipped": "no GPU or RAPL energy source"}})
            self.say(f"idle power: skipped, nothing here measures watts ({reason})")
            return
        self.say(f"measuring idle power for {s.idle_s:g} s ...")
        monitor = self.engine.idle_monitor(config())  # the window timed from now
        try:
            monitor.start()
            doc = monitor.result()
        finally:
            monitor.stop()
        self.idle_w = idle_watts(doc)
        status = doc.get("status", {"sampler": doc.get("error")})
        self.store.update_experiment({"idle_power": {"duration_s": s.idle_s, "watts": self.idle_w, "sources": status}})
        self.say("idle: " + (", ".join(f"{k} {v:.1f} W" for k, v in self.idle_w.items()) or
                             "no power source available (" + "; ".join(f"{k}: {v}" for k, v in status.items()) + ")"))

    def _run_baselines(self) -> None:
        """Raw speed per batch size with the resources the replicas will have: one baseline per
        distinct device and core count among the sweep's resource sets (see ``resource_sets``)."""
        s = self.settings
        wanted: dict[tuple[str, int], Placement] = {}
        for point in self.points:
            for resources in resource_sets(placements(point, self.plan, s.model_gpus, s.oversubscribe)):
                wanted.setdefault(resource_key(resources), resources)
        for (device, ncores), place in wanted.items():
            if any((device, ncores, b) in self.baselines for b in s.batch_sizes):
                continue  # a resumed experiment measured it
            self.say(f"baseline of {s.model_name} on {device} ({place.describe()}), "
                     f"batch sizes {list(s.batch_sizes)}, {s.baseline_s:g} s each ...")
            records = run_baseline(s, place, s.batch_sizes, self.store.logs_dir / "baseline", f"{device}-c{ncores}")
            for rec in records:
                rec["num_cpus"] = ncores
                self.store.append_line(BASELINES_FILE, rec)
                self.baselines[(device, ncores, rec["batch_size"])] = rec
                lat = rec["batch_latency_ms"]
                self.say(f"  baseline b={rec['batch_size']}: {rec['throughput_qps']:.1f} q/s, "
                         f"batch p50 {lat['p50']:.2f} ms")

    def _efficiency(self, point: ConfigPoint, places: list[Placement], record: ConfigRecord) -> None:
        """The record's baselines, serving efficiency, and the problem when that cannot be a result."""
        sets = resource_sets(places)
        raws = [self.baselines.get((*resource_key(r), point.batch_size)) for r in sets]
        record["baseline"] = raws[0] if raws else None
        record["baselines"] = raws
        record["baseline_units"] = len(sets)
        value = serving_efficiency((record["summary"] or {}).get("throughput_qps"),
                                   [r and r["throughput_qps"] for r in raws])
        problem = efficiency_problem(value)
        record["serving_efficiency"] = None if problem else value
        record["serving_efficiency_problem"] = problem
        if problem:
            record["serving_efficiency_measured"] = value

    def _create_experiment(self) -> set[str]:
        """A new experiment's experiment.json and sweep.yaml (and the note on GPUs left unused);
        nothing is measured yet."""
        self.store.create({
            "experiment_id": self.store.experiment_id,
            "command_line": self.command_line,
            "settings": self.settings.to_json(),
            "core_plan": self.plan.to_json(),
            "configurations": [p.config_id for p in self.points],
            "host": host_info(self.gpu_names or detect_gpus()),
            "started_at": time.time(),
        })
        write_sweep_file(self.store.path / SWEEP_FILE, self.settings)
        gpu_note = self._unused_gpus_note()
        if gpu_note:
            self.say(gpu_note)
            self.store.update_experiment({"unused_gpus": gpu_note})
        return set()

    def run(self, baseline_only: bool = False) -> Path:
        """Run the sweep (or only the baselines); return the experiment directory."""
        s = self.settings
        done = self._load_previous() if self.resumed else self._create_experiment()
        os.environ[EXPERIMENT_ENV] = self.store.experiment_id  # every process started from here carries it
        self.say(f"experiment {self.store.path}: {len(self.points)} configurations; {self.plan.note}"
                 + (f"; resuming, {len(done)} already measured" if self.resumed else ""))
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            self._prepare_models()
            if s.calibrate:  # the sleep model's known capacity first (sweep/calibrate.py)
                run_calibration(self, ExperimentRunner)
            if s.idle_s > 0 and not baseline_only and not self.idle_w:
                self._measure_idle()
            if s.baseline and not self.baselines:
                self._run_baselines()
            self.progress.begin([0.0 if p.config_id in done else s.warmup_s + s.duration_s for p in self.points])
            for k, point in enumerate([] if baseline_only else self.points, 1):
                if point.config_id in done:
                    self.say(f"[{k}/{len(self.points)}] {point.config_id}: already measured, skipped")
                    continue
                self.say(f"[{k}/{len(self.points)}] {point.config_id} ...")
                self.progress.config_started(k, point.config_id)
                line = self._run_point(point)
                status = RunStatus(line["status"])
                self.progress.config_ended(status is not RunStatus.FAILED)
                if status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
                    self.say(f"[{k}/{len(self.points)}] {point.config_id}: {status}: {line['reason']}")
                else:
                    self.say(f"[{k}/{len(self.points)}] {point.config_id}: {describe_line(line)}")
                if not status.clean:
                    self.not_clean.append(line)
                if status is RunStatus.INTERRUPTED:
                    raise KeyboardInterrupt
        finally:
            self._stop_deployment()
            self.engine.close()
            signal.signal(signal.SIGTERM, previous)
        if self.not_clean:
            self.say(f"{len(self.not_clean)} of {len(self.points)} configurations are not clean measurements "
                     "(rerun them with --resume):")
            for line in self.not_clean:
                self.say(f"  {line['config_id']}: {line['status']}: {line['reason']}")
        self.say(f"results in {self.store.path}")
        return self.store.path

    def _unused_gpus_note(self) -> str | None:
        """One line when the machine has GPUs that a GPU model will not use because -g was not given."""
        if self.settings.model_gpus or not self.spec.uses_gpu:
            return None
        seen = detect_gpus()
        if not seen:
            return None
        listed = ", ".join(f"{i}: {name}" for i, name in enumerate(seen))
        return (f"note: this machine has {len(seen)} GPU(s) ({listed}), but -g/--model_gpus was not given, "
                f"so {self.settings.model_name} runs on CPU cores only; pass -g 0 to put replica 1 on GPU 0 "
                "(one GPU index per replica, e.g. -g 0 0 for two replicas sharing it)")

    def _node_config(self, point: ConfigPoint, places: list[Placement]) -> dict[str, Any]:
        return {
            "name": point.model_name,
            "model": self.spec.name,  # the registered model, where the name typed is an alias (svm)
            "input_type": self.spec.input_type.api_name,
            "model_image": model_image(point.model_name),
            "allocated_cpus": sorted({c for p in places for c in p.cpus}),
            "cpus_per_replica": point.cpus_per_replica,
            "slo": int(self.settings.slo_ms * 1000),
            "num_replicas": point.num_replicas,
            "gpus": [p.gpu for p in places if p.gpu is not None],
            "batch_size": point.batch_size,
        }

    def _run_point(self, point: ConfigPoint) -> dict[str, Any]:
        s = self.settings
        places = placements(point, self.plan, s.model_gpus, s.oversubscribe)
        concurrency = s.concurrency_for(point.num_replicas, point.batch_size, point.concurrency)
        record: ConfigRecord = {
            "config_id": point.config_id,
            "node_configs": [self._node_config(point, places)],
            "clipper_metrics": None,
            "client_metrics": [],
            "summary": None,
            "settings": {
                "engine": s.engine, "transport": s.transport, "concurrency": concurrency, "rate_qps": point.rate_qps,
                "framework": s.framework, "precision": s.precision, "weights": s.weights,
                "overlap_batches": s.overlap_batches,
                "cuda_graphs": s.cuda_graphs,
                "batches_in_flight": s.batches_in_flight,
                "num_clients": self._clients(point), "num_clients_auto": not s.num_clients, "warmup_s": s.warmup_s, "duration_s": s.duration_s,
                # every model's own options, each the value run with where this model reads it
                **{name: getattr(s, name) if name in self.spec.option_names else None
                   for name in model_option_names()},
                "placements": [{"cpus": list(p.cpus), "gpu": p.gpu} for p in places],
            },
            "status": RunStatus.FAILED,
            "reason": None,
            "error": None,
            "started_at": time.time(),
            "logs": str(self.store.logs_dir / point.config_id),
        }
        record["settings"]["gpu_power_limit_w"] = point.gpu_power_limit_w
        record["settings"]["gpu_clock_mhz"] = point.gpu_clock_mhz
        original_metrics: list[dict[str, Any]] = []
        limits = GpuLimits([p.gpu for p in places if p.gpu is not None], point.gpu_power_limit_w, point.gpu_clock_mhz)
        try:
            with limits:
                original_metrics = self._measure(point, places, concurrency, record)
                if self._more_clients(point, record):
                    original_metrics = self._measure(point, places, concurrency, record)
                self._extra_windows(point, concurrency, record)
            record["status"], record["reason"] = classify_windows(
                record.get("repeats") or [record["summary"]], record["faults"],
                model_batch_latency_ms(record["clipper_metrics"], point.model_name))
        except KeyboardInterrupt as exc:
            record["status"] = RunStatus.INTERRUPTED
            record["error"] = record["reason"] = f"interrupted ({str(exc) or 'signal SIGINT, Ctrl-C'})"
        except (ClipperException, LoadError, LimitError, requests.RequestException, OSError) as exc:
            record["error"] = record["reason"] = f"{type(exc).__name__}: {exc}"
        finally:
            if record["status"] is not RunStatus.OK:  # the next configuration starts on a fresh engine
                self._stop_deployment()
            if limits.restore_problems:
                record["gpu_limits"] = {"restore_problems": limits.restore_problems}
                self.say("  GPU limits NOT restored: " + "; ".join(limits.restore_problems))
        self._efficiency(point, places, record)
        record["ended_at"] = time.time()
        return self._write_results(point, record, original_metrics)

    def _write_results(self, point: ConfigPoint, record: ConfigRecord, original_metrics: list) -> dict[str, Any]:
        """Write the configuration's original-format file, record and runs.ndjson line; return the line.
        A write that fails (a full disk) does not stop the smaller ones after it: without its record
        the line is still appended if it fits, ``failed`` with the reason (so ``--resume`` measures it
        again), and then ResultsWriteError says exactly what of this configuration was lost."""
        lost: ResultsWriteError | None = None
        try:
            if record["status"] in (RunStatus.OK, RunStatus.DEGRADED, RunStatus.NO_ANSWERS, RunStatus.OVERLOADED):
                record["original_results_file"] = self.store.write_original_results(record, original_metrics)
            self.store.write_config(point.config_id, record)
        except ResultsWriteError as exc:
            lost = exc
        line = self._run_line(point, record)
        if lost is not None:
            line["status"], line["reason"] = RunStatus.FAILED, (
                f"measured {line['status']}, but its files could not be written: {lost.path.name}: "
                f"{os.strerror(lost.errno) if lost.errno else lost}")
            line["error"] = line["reason"]
        try:
            self.store.append_run(line)
        except ResultsWriteError as exc:
            raise ResultsWriteError(exc.path, OSError(exc.errno, os.strerror(exc.errno or 0)),
                                    f"configuration {point.config_id} ({record['status']}) is lost: "
                                    + ("neither its record nor " if lost else "its record was written, but not ")
                                    + "its runs.ndjson line") from None
        if lost is not None:
            raise ResultsWriteError(lost.path, OSError(lost.errno, os.strerror(lost.errno or 0)),
                                    f"configuration {point.config_id} ({record['status']}) has no record; its "
                                    "runs.ndjson line says so (failed)")
        return line

    def _run_line(self, point: ConfigPoint, record: dict[str, Any]) -> dict[str, Any]:
        """The configuration's runs.ndjson line (a RunLine, as the dict written)."""
        summary = record["summary"] or {}
        return RunLine(
            config_id=point.config_id,
            model_name=point.model_name,
            engine=self.settings.engine,
            transport=self.settings.transport,
            framework=self.settings.framework,
            precision=self.settings.precision,
            batch_size=point.batch_size,
            num_replicas=point.num_replicas,
            cpus_per_replica=point.cpus_per_replica,
            gpus=record["node_configs"][0]["gpus"],
            gpu_power_limit_w=point.gpu_power_limit_w,
            gpu_clock_mhz=point.gpu_clock_mhz,
            concurrency=record["settings"]["concurrency"],
            duration_s=self.settings.duration_s,
            num_completed=summary.get("num_completed"),
            num_errors=summary.get("num_errors"),
            num_defaults=summary.get("num_defaults"),
            num_unanswered=summary.get("num_unanswered"),
            throughput_qps=summary.get("throughput_qps"),
            goodput=summary.get("goodput"),
            goodput_qps=summary.get("goodput_qps"),
            max_rate_qps=(record.get("rate_search") or {}).get("max_rate_qps"),
            repeat_stats=record.get("repeat_stats"),
            latency_ms=summary.get("latency_ms"),
            serving_efficiency=record["serving_efficiency"],
            serving_efficiency_problem=record.get("serving_efficiency_problem"),
            baseline_units=record["baseline_units"],
            load=summary.get("load"),
            stability=summary.get("stability") and {
                k: summary["stability"][k] for k in ("stable", "measured_s", "max_duration_s")
            },
            power=_power_line(record.get("power")),
            faults=[f["what"] for f in record.get("faults") or []],
            partial=record.get("partial"),
            status=record["status"],
            reason=record["reason"],
            error=record["error"],
        ).to_json()

    def _stop_deployment(self) -> None:
        if self.deployment is not None:
            deployment, self.deployment = self.deployment, None
            deployment.stop()

    def _deployment_for(self, point: ConfigPoint, places: list[Placement]) -> Deployment:
        """The running deployment when ``point`` differs from the last only in batch size, else a new one."""
        s = self.settings
        if self.deployment is not None and not s.fresh_deployments and self.deployment.serves(point):
            problem = self.deployment.unhealthy(point)
            if problem is None:
                self.deployment.reuse_for(point)
                return self.deployment
            self.say(f"  the running deployment is not healthy ({problem}): starting a fresh one")
        self._stop_deployment()
        log_dir = self.store.logs_dir / point.config_id
        self.deployment = self.engine.start(point, places, StartContext(
            plan=self.plan, input_type=self.spec.input_type.api_name, input_elements=self.spec.input_size,
            log_dir=log_dir, experiment_dir=self.store.path,
        ))
        return self.deployment

    def _measure(self, point: ConfigPoint, places: list[Placement], concurrency: int,
                 record: dict) -> list[dict[str, Any]]:
        """Deploy (or reuse), warm up, measure and fill ``record``; return the original driver's
        ``client_metrics`` with ``all_lats`` for its results file."""
        s = self.settings
        self.progress.update(LiveStats("deploying"))
        deployment = self._deployment_for(point, places)
        record["deployment"] = deployment.describe(point)
        # a reused deployment has run every batch size already: its warm-up only refills the queue
        warmup = min(s.warmup_s, s.warmup_reused_s) if record["deployment"]["reused"] else s.warmup_s
        record["settings"]["warmup_s"] = warmup
        specs = self._load_specs(point, deployment.manager, concurrency, warmup)
        record["settings"]["num_clients"] = len(specs)
        start_at, clients, power_doc = self._run_load(point, places, deployment.manager, specs, warmup, record)
        deployment.check_frontend()
        record["faults"] = deployment.faults_since(record["started_at"])
        window = self._window(start_at, warmup)
        window, stability = self._stability(clients, window)
        if stability and stability["stable"]:
            power_doc = trim(power_doc, window[1] / 1e9)
        record["window_wall_ns"] = list(window)
        record["summary"] = summarize(clients, window, s.slo_ms, point.rate_qps)
        record["summary"]["load"] = {
            "mode": "open" if point.rate_qps else "closed",
            "rate_qps": point.rate_qps, "arrival": s.arrival if point.rate_qps else None,
            "concurrency": None if point.rate_qps else concurrency,
            "lateness": lateness_stats(clients, window) if point.rate_qps else None,
            "client_cpu_share": client_cpu_share([sp.out_path for sp in specs]),
        }
        record["summary"]["stability"] = stability
        record["power"] = summarize_power(power_doc, record["summary"]["num_completed"], self.idle_w)
        samples_path = self._samples_path(point)
        record["power_samples_file"] = samples_path.name if samples_path.exists() else None
        original = [window_metrics(c, window) for c in clients]
        record["client_metrics"] = original_client_metrics([{k: v for k, v in m.items() if k != "all_lats"}
                                                            for m in original])  # one client: its dict
        record["raw_files"] = [Path(sp.out_path).name for sp in specs]
        record["clipper_metrics"] = deployment.clipper_metrics()
        if any(c.site for c in clients):  # clients on a Ray cluster's nodes
            record["clients"] = [c.site for c in clients]
        if "hosts" in power_doc:  # power sampled on every host of a Ray cluster
            record["power"]["hosts"] = host_power(power_doc)
        if record["deployment"].get("ray_nodes"):
            record["nodes"] = nodes_block(record)
        return original

    def _load_only(self, point: ConfigPoint, concurrency: int, warmup: float, label: str) -> dict[str, Any]:
        """One more window of load on the running deployment (no power sampling, raw data not kept);
        its summary."""
        s = self.settings
        specs = [dataclasses.replace(spec, out_path=str(Path(spec.out_path).with_name(f"{label}.{Path(spec.out_path).name}")))
                 for spec in self._load_specs(point, self.deployment.manager, concurrency, warmup)]
        try:
            start_at, clients = self.deployment.run_clients(specs, self.store.logs_dir / point.config_id / label)
        finally:  # also on Ctrl-C or SIGTERM: the clients are reaped by now, their files final
            for spec in specs:
                Path(spec.out_path).unlink(missing_ok=True)
                Path(f"{spec.out_path}.tmp.npz").unlink(missing_ok=True)  # a client killed while saving
        window = self._window(start_at, warmup)
        return summarize(clients, window, s.slo_ms, point.rate_qps)

    def _clients(self, point: ConfigPoint) -> int:
        """Load client processes for ``point``: ``-n``, or what -n auto has chosen so far."""
        n = self.settings.clients_for(point.rate_qps)
        return n if self.settings.num_clients or point.rate_qps else max(n, self.closed_loop_clients)

    def _more_clients(self, point: ConfigPoint, record: ConfigRecord) -> bool:
        """-n auto on a closed loop: when the one client was busy over CLIENT_BUSY_SHARE of a core
        and the clients have cores of their own (where a second one can run beside it rather than
        take the frontend's), use two from this configuration on and say to measure it again. The
        first window's figures stay in the record under ``load.one_client``."""
        s, summary = self.settings, record.get("summary") or {}
        share = (summary.get("load") or {}).get("client_cpu_share")
        if (s.num_clients or point.rate_qps or share is None or share < CLIENT_BUSY_SHARE
                or self.closed_loop_clients > 1 or len(self.plan.client_cpus) < 2):
            return False
        self.closed_loop_clients = 2
        self.say(f"  the load client was busy {share:.0%} of a core: measuring again with 2 clients (-n auto)")
        one = {"client_cpu_share": share, "throughput_qps": summary.get("throughput_qps"),
               "p99_latency_ms": summary.get("p99_latency_ms")}
        record["load_one_client"] = one
        return True

    def _extra_windows(self, point: ConfigPoint, concurrency: int, record: ConfigRecord) -> None:
        """``--repeats`` and ``--max_rate_under_p99_ms`` on the running deployment; faults and the
        frontend's health are read again after them, as they count toward the status too."""
        self._repeat(point, concurrency, record)
        self._search_rate(point, record)
        if record.get("repeats") or record.get("rate_search"):
            self.deployment.check_frontend()
            record["faults"] = self.deployment.faults_since(record["started_at"])

    def _repeat(self, point: ConfigPoint, concurrency: int, record: ConfigRecord) -> None:
        """``--repeats N``: N - 1 more windows on the same deployment; every repeat's summary and the
        mean with a 95% interval of throughput, p50 and p99 go in the record."""
        s = self.settings
        if s.repeats < 2 or record.get("summary") is None:
            return
        summaries = [record["summary"]]
        for k in range(2, s.repeats + 1):
            self.progress.update(LiveStats(f"repeat {k} of {s.repeats}"))
            summaries.append(self._load_only(point, concurrency, min(s.warmup_s, s.warmup_reused_s), f"repeat{k}"))
            # recorded as each finishes: an interrupt during the next keeps every completed one
            record["repeats"] = [{key: v for key, v in x.items() if key != "drain"} for x in summaries]
            record["repeat_stats"] = repeat_stats(summaries)

    def _search_rate(self, point: ConfigPoint, record: ConfigRecord) -> None:
        """``--max_rate_under_p99_ms``: probe open-loop rates on this deployment (see rate_search)."""
        s = self.settings
        capacity = (record.get("summary") or {}).get("throughput_qps") or 0.0
        if s.max_rate_under_p99_ms is None or point.rate_qps or capacity <= 0 or self.deployment is None:
            return
        search = RateSearch(s.max_rate_under_p99_ms)

        def probe(rate: float) -> dict[str, Any]:
            self.progress.update(LiveStats(f"searching: {rate:,.1f} q/s offered"))
            return self._load_only(dataclasses.replace(point, rate_qps=rate), 0, min(s.warmup_s, 1.0), "rate-search")

        found = search.run(capacity, probe)
        record["rate_search"] = search.to_json(found, capacity, s.arrival)
        self.say(f"  highest rate with p99 <= {s.max_rate_under_p99_ms:g} ms: "
                 + (f"{found:,.1f} q/s" if found else "none") + f" ({len(search.probes)} probes)")

    def _window(self, start_at: float, warmup: float) -> tuple[int, int]:
        """The measurement window (wall-clock ns) of load that started at ``start_at`` with ``warmup``."""
        begin = start_at + warmup
        return int(begin * 1e9), int((begin + self.settings.duration_s) * 1e9)

    def _samples_path(self, point: ConfigPoint) -> Path:
        return self.store.configs_dir / f"{point.config_id}.power_samples.json"

    def _load_specs(self, point: ConfigPoint, manager: Any, concurrency: int, warmup: float) -> list[LoadSpec]:
        """One load spec per client process, the load split evenly between them."""
        s = self.settings
        name = point.model_name
        address = {Transport.BINARY: manager.get_binary_addr, Transport.SHM: manager.get_binary_addr,
                   Transport.RAY_HANDLE: lambda: manager.get_handle_addr()}.get(s.transport, manager.get_query_addr)()
        n = self._clients(point)
        per_client = math.ceil(concurrency / n)
        return [
            LoadSpec(
                client_index=i, transport=s.transport, address=address, app=name, model_name=name,
                concurrency=per_client, start_at_wall=0.0, warmup_s=warmup, duration_s=s.duration_s,
                drain_timeout_s=s.drain_timeout_s, drain_max_s=s.drain_max_s, slo_s=s.slo_ms / 1000,
                out_path=str(self.store.raw_path(point.config_id, i)),
                pool_size=self.spec.pool_size(s.pool_size), seed=s.seed, cpus=self.plan.client_cpus,
                rate_qps=point.rate_qps / n if point.rate_qps else None, arrival=s.arrival,
                stable_window_s=s.stable_window_s if s.stable else None, stable_tolerance=s.stable_tolerance,
            )
            for i in range(n)
        ]

    def _run_load(self, point: ConfigPoint, places: list[Placement], manager: Any, specs: list[LoadSpec],
                  warmup: float, record: dict) -> tuple[float, list, dict]:
        """Run the clients with power sampling and the live panel's poller beside them; return the
        load's start time, the clients' data and the sampler's document."""
        s = self.settings
        groups = {f"replica{i + 1}": list(p.cpus) for i, p in enumerate(places)}
        groups["frontend"] = list(self.plan.frontend_cpus) or usable_cpus()
        samples_path = self._samples_path(point)
        monitors: list[Any] = []  # PowerMonitor or ClusterPowerMonitor: the deployment says
        pollers: list[LivePoller] = []
        started: list[float] = []

        def phase(start_at: float) -> str:
            now = time.time()
            if now < start_at + warmup:
                return "warming up"
            return "measuring" if now < start_at + warmup + s.duration_s else "draining"

        def start_power(start_at: float) -> None:
            started.append(start_at)
            gpus = sorted({p.gpu for p in places if p.gpu is not None})  # once each, however many replicas share one
            monitors.append(self.deployment.power_monitor(self._sampler_config(start_at + warmup, s.duration_s,
                                                                               samples_path, gpus, groups)))
            monitors[0].start()
            pollers.append(LivePoller(
                f"http://{manager.get_query_addr()}/metrics", point.model_name,
                lambda: read_live_watts(samples_path), lambda: phase(start_at), self.progress.update,
                on_measuring=getattr(manager, "reset_metrics", None),
            ).start())

        self.progress.update(LiveStats("starting load clients"))
        try:
            start_at, clients = self.deployment.run_clients(specs, self.store.logs_dir / point.config_id,
                                                            on_start=start_power)
            power_doc = monitors[0].result() if monitors else {"error": "power sampler never started"}
        except KeyboardInterrupt:
            self._record_partial(record, specs, started[0] + warmup if started else None)
            raise
        finally:
            for poller in pollers:
                poller.stop()
            for m in monitors:
                m.stop()
        return start_at, clients, power_doc

    def _stability(self, clients: list, window: tuple[int, int]) -> tuple[tuple[int, int], dict | None]:
        """With ``--stable``: the window cut where every client agreed the numbers had settled
        (the first one to stop), and the stability block of the summary."""
        s = self.settings
        if not s.stable:
            return window, None
        stops = [c.stopped_wall_ns for c in clients]
        became_stable = all(t is not None for t in stops)
        if became_stable:
            window = (window[0], min(stops))
        return window, {
            "stable": became_stable, "window_s": s.stable_window_s, "tolerance": s.stable_tolerance,
            "measured_s": (window[1] - window[0]) / 1e9, "max_duration_s": s.duration_s,
            "windows": [c.stable_windows for c in clients],
        }

    @staticmethod
    def _record_partial(record: dict, specs: list[LoadSpec], window_start: float | None) -> None:
        """Interrupted: summarise what the clients measured up to now (they save on SIGTERM)."""
        now = time.time()
        if window_start is None or now <= window_start:
            record["partial"] = "interrupted before the measurement window began"
            return
        window = (int(window_start * 1e9), int(now * 1e9))
        clients = []
        for spec in specs:
            try:
                clients.append(ClientData.from_npz(spec.out_path))
            except (OSError, ValueError):
                continue
        if not clients:
            record["partial"] = "interrupted; the clients saved no data"
            return
        record["window_wall_ns"] = list(window)
        record["summary"] = summarize(clients, window)
        record["raw_files"] = [Path(sp.out_path).name for sp in specs if Path(sp.out_path).exists()]
        record["partial"] = f"interrupted after {(window[1] - window[0]) / 1e9:.1f} s of the measurement window"


def find_resumable(settings: RunSettings) -> str:
    """The latest experiment in the results directory run with the same settings."""
    def comparable(stored: Any) -> Any:
        """Settings as compared: paths resolved, and no results_dir (the experiment lies in the one
        given, however it was spelled: relative, absolute, through a link)."""
        if not isinstance(stored, dict):
            return stored
        out = {k: v for k, v in stored.items() if k != "results_dir"}
        for key in ("models_dir", "powercap_root", "weights"):
            if isinstance(out.get(key), str):
                out[key] = str(Path(out[key]).resolve())
        return out

    wanted = comparable(json.loads(json.dumps(settings.to_json())))  # as stored: tuples become lists
    candidates = []
    for path in Path(settings.results_dir).resolve().glob("*/experiment.json"):
        try:
            candidates.append((path.stat().st_mtime, path))
        except OSError:
            continue
    for _, path in sorted(candidates, reverse=True):
        try:
            if comparable(json.loads(path.read_text()).get("settings")) == wanted:
                return path.parent.name
        except (OSError, ValueError):
            continue
    raise PlanError(
        f"--resume found no experiment in {settings.results_dir} run with these settings; "
        "run the same command without --resume to start one"
    )


def _path_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)


NODE_LINE_KEYS = ("node_source", "node_power_mean_w", "node_idle_w", "node_energy_per_query_j",
                  "node_energy_per_query_above_idle_j", "node_readings", "node_update_interval_s", "node_problem",
                  "cross_check")


def _power_line(power: dict[str, Any] | None) -> dict[str, Any] | None:
    """The power numbers a runs.ndjson line carries (the full block is in the config record)."""
    if power is None:
        return None
    return {
        "joules": power["joules"],
        "avg_w": power.get("avg_w"),
        "joules_per_query": power["joules_per_query"],
        "joules_per_query_above_idle": power["joules_per_query_above_idle"],
        "energy_channels": power.get("energy_channels", []),
        "sources": power.get("sources", {}),
        **{k: power[k] for k in NODE_LINE_KEYS if k in power},  # with --power_meter: the whole machine's
    }


def describe_line(line: dict[str, Any]) -> str:
    """One human line for a finished configuration. Any number may be None (a window with nothing
    in it: no query sent, or a window too short to have a length): it then says so, never raises."""
    lat = line["latency_ms"]
    if lat["p50"] is None:
        latency = "no successful answers"
    else:
        latency = f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms"
    qps = line["throughput_qps"]
    text = (f"{'no throughput (empty window)' if qps is None else f'{qps:.1f} q/s'}, {latency}, "
            f"{line['num_errors']} errors, {line['num_defaults']} SLO defaults")
    if line.get("num_unanswered"):
        text += f", {line['num_unanswered']} unanswered"
    if line["serving_efficiency"] is not None:
        text += f", serving efficiency {line['serving_efficiency']:.3g}"  # noop's 0.004 is not 0.00
    elif line.get("serving_efficiency_problem"):
        text += f", serving efficiency NOT a result ({line['serving_efficiency_problem']})"
    load = line.get("load") or {}
    if load.get("mode") == "open" and load.get("lateness"):
        late = load["lateness"]
        text += f", offered {load['rate_qps']:g} q/s {load['arrival']}"
        if late["kept_up"] is False:  # None: no query was due in the window, nothing to judge
            text += f" (generator could NOT keep up: {100 * late['share_over_1ms']:.1f}% sent >1 ms late)"
    stability = line.get("stability")
    if stability:
        text += (f", stable after {stability['measured_s']:.0f} s" if stability["stable"]
                 else f", NOT stable within {stability['max_duration_s']:g} s")
    power = line.get("power") or {}
    if power.get("avg_w") is not None:
        text += f", {power['avg_w']:.0f} W"
        if power.get("joules_per_query") is not None:
            text += f", {power['joules_per_query'] * 1000:.2f} mJ/query"
    text += node_text(power)
    if line["status"] != RunStatus.OK:
        text = f"{str(line['status']).upper()}: {line['reason']}; measured: {text}"
    return text
