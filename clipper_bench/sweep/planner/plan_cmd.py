"""What ``clipper-bench plan`` does: profiles in, the cheapest plan and its coarse baseline out, each
written as a pipeline file; with ``--validate``, both deployed fresh and measured under the target
arrivals, predicted beside measured."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from ...containers.models.flags import own_options_from_args
from ...load.arrivals import schedule_ns
from ...protocol.transports import Transport
from ..pipeline.spec import PipelineSpec, StageConfig, config_id, load_pipeline, parse_pipeline
from ..plan import plan_cores, usable_cpus
from ..settings import RunSettings, resolve_defaults
from .profiles import ProfileError, load_profiles
from .search import SearchResult, StageChoice, Target, search


def run_plan(args: argparse.Namespace) -> int:
    """Plan for each bound in ``--slo_p99_ms`` (one plan file each), say it, write it, and validate it
    when asked; the exit status (1 when any bound has no plan or a validated plan misses it)."""
    from ..cli_args import quiet_cluster_logs

    quiet_cluster_logs()
    spec = _spec(args)
    profiles = load_profiles(args.experiments)
    if not profiles:
        raise ProfileError(f"no ok closed-loop run configurations in {', '.join(map(str, args.experiments))}: "
                           "profile each model with `clipper-bench run -m MODEL -b 1 4 16 ...` first")
    slos = slo_list(args.slo_p99_ms)
    status, lines = 0, []
    for slo in slos:
        one = per_slo_args(args, spec.name, slo, len(slos) > 1)
        if len(slos) > 1:
            print(f"-- p99 bound {slo:g} ms (plan file {one.out})")
        code, cost = _plan_one(spec, profiles, one)
        status, lines = max(status, code), [*lines, f"{slo:g} ms: {cost}"]
    if len(slos) > 1:
        print("cost against the p99 bound: " + "; ".join(lines)
              + f" (`clipper-bench report {args.results_dir}` draws it)")
    return status


def slo_list(value: float | tuple[float, ...] | list[float]) -> list[float]:
    """``--slo_p99_ms`` as a list of bounds (a single number, as older callers pass, is one bound)."""
    return [float(v) for v in value] if isinstance(value, (tuple, list)) else [float(value)]


def per_slo_args(args: argparse.Namespace, name: str, slo: float, several: bool) -> argparse.Namespace:
    """``args`` for one bound: with several bounds, each gets ``plan-<name>-slo<MS>.yaml`` (or --out
    with ``-slo<MS>`` before its suffix) and its validations under ``<results_dir>/slo<MS>``."""
    one = argparse.Namespace(**vars(args))
    one.slo_p99_ms = slo
    if not several:
        one.out = args.out or args.results_dir / f"plan-{name}.yaml"
        return one
    tag = f"slo{slo:g}"
    one.out = (args.out.with_name(f"{args.out.stem}-{tag}{args.out.suffix or '.yaml'}") if args.out
               else args.results_dir / f"plan-{name}-{tag}.yaml")
    one.results_dir = args.results_dir / tag
    return one


def _plan_one(spec: PipelineSpec, profiles: list, args: argparse.Namespace) -> tuple[int, str]:
    """Plan for one bound, write its plan file, validate when asked; (exit status, the cost in words)."""
    target = _target(args)
    best = search(spec, profiles, target)
    coarse = search(spec, profiles, target, coarse=True) if len(spec.stages) > 1 else None
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = plan_document(spec, best, coarse, args)
    if best.plan is None:
        _write(out, doc)
        what = f"stage {best.limiting_stage} limits it" if best.limiting_stage else "the cores limit it"
        print(f"no plan meets p99 <= {args.slo_p99_ms:g} ms at {args.rate:g} q/s with up to {args.max_replicas} "
              f"replicas per stage: {what} ({best.cheaper['why'] if best.cheaper else 'no plan'}); "
              f"plan file {out}")
        return 1, "no plan"
    print(describe(spec, best, "plan", args))
    if coarse is not None and coarse.plan is not None:
        print(describe(spec, coarse, "coarse baseline (every stage the same replicas)", args))
    if args.validate:
        doc["validation"] = _validate_both(spec, best, coarse, doc, args)
    _write(out, doc)
    print(f"plan file {out} (deploy it with `clipper-bench pipeline {out} --rate {args.rate:g} --arrival {args.arrival}`)")
    measured = (doc.get("validation") or {}).get("plan")
    cost = doc["planner"]["plan"]["cost"]
    words = f"{cost['cores']} core{'s' * (cost['cores'] != 1)} + {cost['gpus']} GPU replica{'s' * (cost['gpus'] != 1)}" + (
        "" if measured is None else " (measured within it)" if measured["meets_slo"] else " (measured: MISSES it)")
    return (0 if measured is None or measured["meets_slo"] else 1), words


def _validate_both(spec: PipelineSpec, best: SearchResult, coarse: SearchResult | None, doc: dict,
                   args: argparse.Namespace) -> dict[str, Any]:
    """Measure the plan, then its coarse baseline unless it is the plan itself; each compared in a line."""
    validation: dict[str, Any] = {"plan": validate(spec, best.plan, args, "plan")}
    print(compare_line("plan", doc["planner"]["plan"]["predicted"], validation["plan"]))
    if coarse is not None and coarse.plan is not None and _config(coarse.plan) == _config(best.plan):
        validation["coarse_is_plan"] = True
        print("coarse baseline: the plan itself (every stage already has the same replica count)")
    elif coarse is not None and coarse.plan is not None:
        validation["coarse"] = validate(spec, coarse.plan, args, "coarse")
        print(compare_line("coarse baseline", doc["planner"]["coarse"]["predicted"], validation["coarse"]))
    return validation


def _spec(args: argparse.Namespace) -> PipelineSpec:
    if args.pipeline:
        return load_pipeline(args.pipeline)
    options = {k: v for k, v in own_options_from_args(args).items() if v is not None}
    return parse_pipeline({"name": args.model_name, "stages": {_stage_name(args.model_name): {
        "model": args.model_name, "options": options}}}, f"-m {args.model_name}")


def _stage_name(model: str) -> str:
    return model.replace("_", "-")


def _target(args: argparse.Namespace) -> Target:
    """The arrivals the validation's single client will send (same generator, same seed)."""
    horizon = args.warmup_s + args.duration_s
    arrivals = schedule_ns(args.rate, horizon, args.arrival, seed=0) / 1e9
    settings = resolve_defaults(RunSettings(model_name="noop", model_cpus=tuple(args.model_cpus) if args.model_cpus else None))
    cores = len(plan_cores(settings, usable_cpus()).model_cpus)
    return Target(args.rate, arrivals, (args.warmup_s, horizon), args.slo_p99_ms * (1 - args.headroom),
                  args.minimize, cores, args.oversubscribe, args.max_replicas, args.hop_ms / 1000,
                  args.max_utilisation)


def _config(plan: dict[str, StageChoice]) -> dict[str, StageConfig]:
    return {n: StageConfig(c.replicas, c.batch_size, c.cpus_per_replica) for n, c in plan.items()}


def plan_spec(spec: PipelineSpec, plan: dict[str, StageChoice]) -> PipelineSpec:
    """``spec`` with the one configuration ``plan`` chose."""
    return dataclasses.replace(spec, configurations=(_config(plan),))


def plan_document(spec: PipelineSpec, best: SearchResult, coarse: SearchResult | None, args: argparse.Namespace) -> dict:
    """The plan file: a pipeline file `pipeline` deploys as is, with the planner's inputs, prediction
    and search beside it (keys the pipeline reader ignores)."""
    doc: dict[str, Any] = {"name": spec.name, "stages": {}}
    for s in spec.stages:
        c = best.plan[s.name] if best.plan else None
        body: dict[str, Any] = {"model": s.model, **({"input": s.input} if s.input else {})}
        if c is not None:
            body |= {"replicas": [c.replicas], "batch_sizes": [c.batch_size], "cpus_per_replica": [c.cpus_per_replica]}
        doc["stages"][s.name] = body | ({"gpus": list(s.gpus[:c.replicas])} if s.gpus and c else {}) | (
            {"options": dict(s.options)} if s.options else {})
    doc["planner"] = {"inputs": plan_args_json(args), "plan": _summary(spec, best, args),
                      "coarse": _summary(spec, coarse, args) if coarse is not None else None}
    return doc


def _summary(spec: PipelineSpec, result: SearchResult, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"evaluated": result.evaluated, "simulated": result.simulated,
                           "search_s": round(result.seconds, 3), "notes": result.notes,
                           "next_cheaper_fails": (result.cheaper or {}).get("why")}
    if result.plan is None:
        return out | {"found": False, "limiting_stage": result.limiting_stage}
    p = result.predicted
    extrapolated = [n for n, c in result.plan.items() if c.profile.service_s(c.batch_size, c.replicas)[1]]
    joules = [c.joules_per_query() for c in result.plan.values()]
    out |= {"found": True, "config_id": config_id(spec, plan_spec(spec, result.plan).configurations[0]),
            "stages": {n: _stage_summary(c, p, n) for n, c in result.plan.items()},
            "cost": {"cores": sum(c.replicas * c.cpus_per_replica for c in result.plan.values()),
                     "gpus": sum(c.replicas for c in result.plan.values() if c.gpu),
                     "replicas": sum(c.replicas for c in result.plan.values())},
            "predicted": {"p50_ms": p.percentile_ms(50), "p99_ms": p.percentile_ms(99),
                          "throughput_qps": float(p.latencies_s.size / p.window_s),
                          "goodput": p.goodput(args.slo_p99_ms / 1000),
                          "joules_per_query": sum(joules) if all(j is not None for j in joules) else None},
            "extrapolated_stages": extrapolated,
            "extrapolated_replicas": [f"{n}: {c.profile.replica_note(c.replicas)}" for n, c in result.plan.items()
                                      if c.profile.replica_note(c.replicas)]}
    return out


def _stage_summary(c: StageChoice, p: Any, name: str) -> dict[str, Any]:
    """One stage of a plan as the plan file keeps it."""
    return {"replicas": c.replicas, "batch_size": c.batch_size, "cpus_per_replica": c.cpus_per_replica,
            "gpu": c.gpu, "gpu_power_limit_w": c.profile.gpu_power_limit_w,
            "replicas_profiled": c.profile.measured_replicas,
            "service_ms": round(1000 * c.service_s(max(p.mean_batch[name], 1.0)), 3),  # at the batch it forms
            "predicted_utilisation": round(p.utilisation[name], 3),
            "predicted_mean_batch": round(p.mean_batch[name], 2)}


def describe(spec: PipelineSpec, result: SearchResult, label: str, args: argparse.Namespace) -> str:
    """One paragraph: the plan per stage, its prediction, and why the next cheaper one fails."""
    s = _summary(spec, result, args)
    stages = ", ".join(f"{n} {c['replicas']}x{c['cpus_per_replica']} cores b{c['batch_size']}"
                       + (" GPU" if c["gpu"] else "") for n, c in s["stages"].items())
    p = s["predicted"]
    text = (f"{label}: {stages}; predicted p50 {p['p50_ms']:,.1f} ms, p99 {p['p99_ms']:,.1f} ms, "
            f"{p['throughput_qps']:,.1f} q/s, goodput {p['goodput']:.3f}"
            + (f", {1000 * p['joules_per_query']:.1f} mJ/query" if p["joules_per_query"] else "")
            + f" ({s['evaluated']:,} plans considered, {s['simulated']} simulated, {s['search_s']:.2f} s)")
    if s["extrapolated_replicas"]:
        text += "; extrapolated: " + ", ".join(s["extrapolated_replicas"])
    if s["next_cheaper_fails"]:
        text += f"; the next cheaper plan fails: {s['next_cheaper_fails']}"
    return text


def validate(spec: PipelineSpec, plan: dict[str, StageChoice], args: argparse.Namespace, label: str) -> dict[str, Any]:
    """Deploy ``plan`` fresh, measure it ``--repeats`` times under the target arrivals, and return the
    measured numbers (means with 95% intervals) beside the predicted ones."""
    from ..pipeline.runner import PipelineRunner
    from ..pipeline.spec import query_model

    settings = resolve_defaults(RunSettings(
        model_name=query_model(spec), duration_s=args.duration_s, warmup_s=args.warmup_s, rate_qps=(args.rate,),
        arrival=args.arrival, slo_ms=max(10 * args.slo_p99_ms, 1000.0), repeats=args.repeats, idle_s=0.0,
        transport=Transport.BINARY.value,
        oversubscribe=args.oversubscribe, model_cpus=tuple(args.model_cpus) if args.model_cpus else None,
        results_dir=args.results_dir / f"validate-{label}", drain_timeout_s=2.0))
    runner = PipelineRunner(plan_spec(spec, plan), settings, ["clipper-bench", "plan", "--validate"])
    return measured_against_predicted(runner.run(), args.slo_p99_ms)


def measured_against_predicted(exp: Path, slo_ms: float) -> dict[str, Any]:
    """The validation's record: status, the repeats' means and 95% intervals, goodput, energy, and
    each stage's measured service time, mean batch and utilisation (first window)."""
    import json

    (line,) = [json.loads(x) for x in (exp / "runs.ndjson").read_text().splitlines()][-1:]
    stats = line.get("repeat_stats") or {}
    p99 = (stats.get("p99_ms") or {}).get("mean", (line.get("latency_ms") or {}).get("p99"))
    try:
        record = json.loads((exp / "configs" / f"{line['config_id']}.json").read_text())
    except (OSError, ValueError):
        record = {}
    return {"experiment": str(exp), "status": line["status"], "reason": line["reason"],
            "p50_ms": stats.get("p50_ms"), "p99_ms": stats.get("p99_ms"), "throughput_qps": stats.get("throughput_qps"),
            "goodput": _goodput(exp, record, slo_ms),
            "joules_per_query": (line.get("power") or {}).get("joules_per_query"),
            "stages": _measured_stages(record),
            "meets_slo": line["status"] == "ok" and p99 is not None and p99 <= slo_ms}


def _measured_stages(record: dict[str, Any]) -> dict[str, Any]:
    """Per stage, from the frontend's trace of the first window: mean service time per batch (ms),
    mean batch formed, and the share of the window its replicas held a batch."""
    stages = (record.get("stages") or {}).get("stages") or {}
    return {n: {"service_ms": (v.get("service_ms") or {}).get("mean"), "mean_batch": v.get("mean_batch_size"),
                "utilisation": v.get("utilisation")} for n, v in stages.items()}


def _goodput(exp: Path, record: dict[str, Any], slo_ms: float) -> float | None:
    """The share of the first window's queries answered successfully within the p99 bound (the
    validation's application SLO is set well above the bound so that no query is cut off by it)."""
    from ...load.stats import ClientData

    window = record.get("window_wall_ns")
    if not window:
        return None
    clients = [ClientData.from_npz(str(exp / "configs" / f)) for f in record.get("raw_files") or []]
    good = sent = 0
    for c in clients:
        m = c.measured(tuple(window))
        lat_ms = (c.done_wall_ns[m] - c.start_wall_ns[m]) / 1e6
        good += int(((c.status[m] == 0) & (lat_ms <= slo_ms)).sum())
        sent += int(m.sum())
    return good / sent if sent else None


def compare_line(label: str, predicted: dict[str, Any], measured: dict[str, Any]) -> str:
    """``plan: p99 predicted 41.2 ms, measured 43.0 ms (95% 41.9-44.1, +4%); ...``."""
    def ci(stat: dict | None) -> str:
        if not stat or stat.get("mean") is None:
            return "not measured"
        low, high = stat.get("ci95_low"), stat.get("ci95_high")
        band = f" (95% {low:,.1f}-{high:,.1f})" if low is not None and high is not None else ""
        return f"{stat['mean']:,.1f}{band}"

    p99 = (measured.get("p99_ms") or {}).get("mean")
    error = f", {100 * (predicted['p99_ms'] - p99) / p99:+.0f}% off" if p99 else ""
    return (f"{label}: {measured['status']}; p99 predicted {predicted['p99_ms']:,.1f} ms, measured "
            f"{ci(measured.get('p99_ms'))} ms{error}; throughput predicted {predicted['throughput_qps']:,.1f}, "
            f"measured {ci(measured.get('throughput_qps'))} q/s; goodput predicted {predicted['goodput']:.3f}, "
            f"measured {measured['goodput'] if measured['goodput'] is None else format(measured['goodput'], '.3f')}"
            + ("" if measured["meets_slo"] else " -- the measured plan MISSES the SLO"))


def _write(path: Path, doc: dict) -> None:
    """The plan file, written aside and renamed (an interrupt leaves the old file or none)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plan_args_json(args: argparse.Namespace) -> dict[str, Any]:
    """The plan's inputs as the plan file records them."""
    keys = ("model_name", "pipeline", "rate", "arrival", "slo_p99_ms", "minimize", "max_replicas",
            "hop_ms", "headroom", "max_utilisation", "duration_s", "warmup_s", "repeats")
    return ({k: getattr(args, k) for k in keys} | own_options_from_args(args)
            | {"experiments": [str(e) for e in args.experiments]})
