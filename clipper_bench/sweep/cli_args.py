"""Command-line flags of ``run`` (the original driver's, plus ours) and ``serve``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from ..common.cli_types import finite_float, port
from .settings import RunSettings, resolve_defaults


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The original image_driver_1 flags, then clipper-bench's own, in groups by concern."""
    from ..containers.models.flags import add_model_option_flags

    _add_sweep_flags(p.add_argument_group("sweep (the original driver's flags first)"))
    _add_load_flags(p.add_argument_group("load"))
    _add_engine_flags(p.add_argument_group("engine"))
    _add_power_flags(p.add_argument_group("power and GPU settings"))
    models = p.add_argument_group("models")
    add_model_option_flags(models)
    _add_model_run_flags(models)
    _add_output_flags(p.add_argument_group("output"))


def _add_sweep_flags(g: argparse._ArgumentGroup) -> None:
    from ..containers.models import model_names

    g.add_argument("-m", "--model_name", required=True, metavar="MODEL",
                   help=f"model to benchmark: {', '.join(model_names())}")
    g.add_argument("-d", "--duration", "--duration_seconds", dest="duration", type=finite_float, default=120.0,
                   help="seconds each configuration is measured (default 120)")
    g.add_argument("-b", "--batch_sizes", type=int, nargs="+", default=[2], help="batch sizes to sweep (default 2)")
    g.add_argument("-r", "--num_replicas", type=int, nargs="+", default=[1], help="replica counts to sweep (default 1)")
    g.add_argument("-c", "--model_cpus", type=int, nargs="+", default=None,
                   help="cores the replicas may use (default: all but the frontend's and load generator's)")
    g.add_argument("-p", "--cpus_per_replica_nums", type=int, nargs="+", default=[1],
                   help="cores per replica to sweep (default 1)")
    g.add_argument("-g", "--model_gpus", type=int, nargs="+", default=[],
                   help="GPU indices; replica i gets the i-th (default: CPU only)")
    g.add_argument("-n", "--num_clients", type=int, default=1, help="load-generating client processes (default 1)")
    g.add_argument("--oversubscribe", action="store_true",
                   help="allow more replica cores than there are free cores (replicas then share cores)")
    g.add_argument("--resume", action="store_true",
                   help="continue the latest experiment in --results_dir run with the same settings: "
                        "configurations recorded ok are skipped, the rest (degraded, no_answers, failed, "
                        "interrupted, missing) run")
    g.add_argument("--fresh_deployments", action="store_true",
                   help="restart the frontend and replicas for every configuration, as the original driver "
                        "did (default: keep them while only the batch size changes)")
    g.add_argument("--warmup_reused", type=finite_float, default=1.0,
                   help="warm-up of a configuration that reuses the running replicas, which have already "
                        "run every batch size of the sweep (default 1 s; at most --warmup)")


def _add_load_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--warmup", type=finite_float, default=5.0, help="seconds of load before measuring (default 5)")
    g.add_argument("--concurrency", type=int, default=None,
                   help="outstanding queries in all (default (batches in flight + 1) x replicas x batch size)")
    g.add_argument("--rate", type=finite_float, default=None, metavar="QPS",
                   help="open loop: send at this total rate (split over the clients) instead of keeping "
                        "--concurrency queries outstanding; latency then counts from each query's scheduled time")
    g.add_argument("--arrival", choices=["constant", "poisson"], default="constant",
                   help="open-loop arrival process (default constant)")
    g.add_argument("--stable", action="store_true",
                   help="stop measuring once the last three windows agree on throughput and p99 "
                        "(--duration is then the maximum)")
    g.add_argument("--stable_window_s", type=finite_float, default=5.0, help="window of --stable (default 5 s)")
    g.add_argument("--stable_tolerance", type=finite_float, default=0.1,
                   help="how far (max/min - 1) three windows may differ and still agree (default 0.1)")
    g.add_argument("--drain_timeout_s", type=finite_float, default=10.0,
                   help="after the window, wait for answers still out until none has come for this long or "
                        "for twice the longest latency seen, whichever is longer (default 10)")
    g.add_argument("--transport", choices=["auto", "binary", "shm", "rest"], default="auto",
                   help="query path: binary (raw tensors over ZeroMQ), shm (inputs in shared memory, "
                        "descriptors over ZeroMQ; --engine local) or rest (Clipper's JSON API); default auto: "
                        "shm for inputs of 64 KiB or more (the images) on --engine local, binary otherwise")
    g.add_argument("--slo_ms", type=finite_float, default=500.0, help="application latency SLO in ms (default 500)")


def _add_engine_flags(g: argparse._ArgumentGroup) -> None:
    from .engines import engine_names

    g.add_argument("--engine", choices=engine_names(), default="local",
                   help="serving engine: local processes (default) or Docker containers through clipper_admin's "
                        "DockerContainerManager, each replica pinned (see --query_frontend_image)")
    g.add_argument("--query_frontend_image", default="clipper/query_frontend:0.4.1",
                   help="--engine docker: the query frontend image (default Clipper 0.4.1's; clipper-bench/frontend "
                        "is clipper-bench's own, which needs no registry and serves the binary path)")
    g.add_argument("--mgmt_frontend_image", default="clipper/management_frontend:0.4.1",
                   help="--engine docker: the management frontend image (unused with clipper-bench/frontend)")
    g.add_argument("--ray_address", default=None,
                   help="--engine ray: join this existing Ray cluster (host:port of its head; default: start a "
                        "local Ray on 127.0.0.1 for the run)")
    g.add_argument("--ray_ingress", choices=["http", "handle"], default="http",
                   help="--engine ray: load through Serve's HTTP proxy (Clipper's JSON) or deployment handles")
    g.add_argument("--docker_host_network", action="store_true",
                   help="--engine docker: run every container on the host's network (all traffic on 127.0.0.1) "
                        "instead of a network of its own")
    g.add_argument("--host", default="127.0.0.1", help="address the frontends bind to (default 127.0.0.1)")
    g.add_argument("--batches_in_flight", type=int, default=2, choices=[1, 2, 3, 4],
                   help="batches each replica is sent before it answers: 2 (default) so the next batch crosses "
                        "the socket while the model computes; 1 is Clipper's own behaviour")
    g.add_argument("--replica_start_timeout_s", type=finite_float, default=120.0,
                   help="a replica that has not connected this long after it started fails its "
                        "configuration (default 120)")
    g.add_argument("--replica_timeout_s", type=finite_float, default=30.0,
                   help="the frontend forgets an idle replica silent this long, a busy one after 10x "
                        "(default 30; dead local replicas are noticed within 0.2 s anyway)")
    g.add_argument("--replica_hang_s", type=finite_float, default=3.0,
                   help="a replica holding a batch is declared hung, recorded as a fault and killed after "
                        "10x its model's slowest time per query x the batch's size, but never sooner than "
                        "this (default 3 s)")


def _add_power_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--power_interval_ms", type=finite_float, default=100.0,
                   help="how often GPU power, RAPL energy and CPU use are sampled (default 100)")
    g.add_argument("--powercap_root", type=Path, default=Path("/sys/class/powercap"),
                   help="root of the powercap sysfs tree for RAPL (default /sys/class/powercap)")
    g.add_argument("--idle_s", type=finite_float, default=5.0,
                   help="seconds of idle power measured before the first configuration (0 to skip; default 5)")
    g.add_argument("--gpu_power_limits", type=finite_float, nargs="+", default=[], metavar="W",
                   help="sweep GPU power limits (watts); set before each configuration, restored after (needs root)")
    g.add_argument("--gpu_clocks", type=int, nargs="+", default=[], metavar="MHZ",
                   help="sweep locked GPU SM clocks (MHz); released after each configuration (needs root)")


def _add_model_run_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--sleep_ms", type=finite_float, default=10.0, help="batch time of the 'sleep' model in ms (default 10)")
    g.add_argument("--baseline", action="store_true",
                   help="first measure the model's raw in-process speed per batch size (pinned like replica 1); "
                        "records then carry serving_efficiency")
    g.add_argument("--baseline_s", type=finite_float, default=10.0, help="seconds of each baseline measurement (default 10)")


def _add_output_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--results_dir", type=Path, default=Path("results"), help="where experiments go (default results/)")


def settings_from_args(args: argparse.Namespace) -> RunSettings:
    """The run's settings, with every ``auto`` flag resolved (see settings.resolve_defaults)."""
    return resolve_defaults(_settings_as_given(args))


def _settings_as_given(args: argparse.Namespace) -> RunSettings:
    return RunSettings(
        model_name=args.model_name,
        duration_s=args.duration,
        batch_sizes=tuple(args.batch_sizes),
        num_replicas=tuple(args.num_replicas),
        model_cpus=tuple(args.model_cpus) if args.model_cpus is not None else None,
        cpus_per_replica_nums=tuple(args.cpus_per_replica_nums),
        model_gpus=tuple(args.model_gpus),
        num_clients=args.num_clients,
        engine=args.engine,
        results_dir=args.results_dir,
        warmup_s=args.warmup,
        warmup_reused_s=getattr(args, "warmup_reused", 1.0),
        concurrency=args.concurrency,
        transport=args.transport,  # "auto", and Ray's ingress, resolved by the engine (resolve_defaults)
        slo_ms=args.slo_ms,
        sleep_ms=args.sleep_ms,
        host=args.host,
        oversubscribe=args.oversubscribe,
        framework=args.framework,
        precision=args.precision,
        overlap_batches=args.overlap_batches,
        cuda_graphs=args.cuda_graphs,
        weights=args.weights,
        models_dir=Path(args.models_dir),
        baseline=getattr(args, "baseline", False),
        baseline_s=getattr(args, "baseline_s", 10.0),
        seed=args.seed,
        batches_in_flight=args.batches_in_flight,
        power_interval_ms=args.power_interval_ms,
        powercap_root=args.powercap_root,
        idle_s=args.idle_s,
        gpu_power_limits_w=tuple(getattr(args, "gpu_power_limits", [])),
        gpu_clocks_mhz=tuple(getattr(args, "gpu_clocks", [])),
        rate_qps=args.rate,
        drain_timeout_s=args.drain_timeout_s,
        replica_hang_min_s=getattr(args, "replica_hang_s", 3.0),
        stable=args.stable,
        resume=getattr(args, "resume", False),
        fresh_deployments=getattr(args, "fresh_deployments", False),
        docker_host_network=getattr(args, "docker_host_network", False),
        ray_address=getattr(args, "ray_address", None),
        ray_ingress=getattr(args, "ray_ingress", "http"),
        query_frontend_image=getattr(args, "query_frontend_image", "clipper/query_frontend:0.4.1"),
        mgmt_frontend_image=getattr(args, "mgmt_frontend_image", "clipper/management_frontend:0.4.1"),
        replica_start_timeout_s=getattr(args, "replica_start_timeout_s", 120.0),
        replica_timeout_s=getattr(args, "replica_timeout_s", 30.0),
        stable_window_s=args.stable_window_s,
        stable_tolerance=args.stable_tolerance,
        arrival=args.arrival,
    )


def quiet_cluster_logs() -> None:
    """clipper_admin and the manager log every step at INFO; the runner prints its own summary."""
    import logging

    for name in ("clipper_admin", "clipper_bench.manager"):
        logging.getLogger(name).setLevel(logging.WARNING)


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="sweep batch sizes x replicas for one model and record the results",
        description="Deploy a model for every (replicas x cores per replica x batch size), drive load, "
                    "and write one record per configuration.",
    )
    add_run_flags(p)
    p.set_defaults(func=cmd_run)


def check_results_dir(path: Path) -> None:
    from ..common.errors import UsageError

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"results directory {path} is not writable ({exc.strerror}); pass --results_dir DIR") from None


def cmd_run(args: argparse.Namespace) -> int:
    """Exit 0 when every configuration was recorded ``ok``, 1 when any was not (failed, no answers or
    degraded: the run's last lines and the records say why)."""
    not_clean = _run_experiment(settings_from_args(args), baseline_only=False)
    return 1 if not_clean else 0


def _run_experiment(settings: RunSettings, baseline_only: bool) -> list[str]:
    """Validate, then run; every problem a user can fix becomes one UsageError line.
    Returns the ``runs.ndjson`` lines of configurations not recorded ``ok``."""
    from ..common.errors import UsageError
    from ..containers.models import UnknownModelError
    from ..containers.models.classical import ModelNotBuiltError
    from ..results.store import ResultsWriteError
    from .baseline import BaselineError
    from .plan import PlanError
    from .progress import make_progress
    from .runner import ExperimentRunner

    check_results_dir(settings.results_dir)
    quiet_cluster_logs()
    progress = make_progress()
    try:
        try:
            runner = ExperimentRunner(settings, ["clipper-bench", *sys.argv[1:]], say=progress.message,
                                      progress=progress)
        except (UnknownModelError, PlanError) as exc:
            raise UsageError(str(exc)) from None
        try:
            runner.run(baseline_only=baseline_only)
        except (BaselineError, ModelNotBuiltError, ResultsWriteError) as exc:
            raise UsageError(str(exc)) from None
    finally:
        progress.close()
    return runner.not_clean


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="start the local engine alone and keep it running until Ctrl-C",
        description="Start the local Clipper-compatible engine; optionally deploy a model and link an app of the same name.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--query_port", type=port, default=1337)
    p.add_argument("--admin_port", type=port, default=1338)
    p.add_argument("--rpc_port", type=port, default=7000)
    p.add_argument("--binary_port", type=port, default=1339)
    p.add_argument("-m", "--model_name", default=None, help="also deploy this model, with an app of the same name")
    p.add_argument("-r", "--num_replicas", type=int, default=1)
    p.add_argument("-b", "--batch_size", type=int, default=-1)
    p.add_argument("--slo_ms", type=finite_float, default=500.0)
    p.add_argument("--sleep_ms", type=finite_float, default=10.0)
    p.add_argument("--log_dir", type=Path, default=None, help="where process logs go (default: a temporary directory)")
    p.set_defaults(func=cmd_serve)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    from clipper_admin import ClipperConnection
    from clipper_admin.exceptions import ClipperException

    from ..common.errors import UsageError
    from ..containers.models import UnknownModelError, get_model_spec
    from ..engine.manager import IMAGE_PREFIX, LocalContainerManager

    spec = None
    if args.model_name:
        try:
            spec = get_model_spec(args.model_name)
        except UnknownModelError as exc:
            raise UsageError(str(exc)) from None
    manager = LocalContainerManager(
        host=args.host, query_port=args.query_port, admin_port=args.admin_port,
        rpc_port=args.rpc_port, binary_port=args.binary_port, log_dir=args.log_dir,
        container_args=["--sleep_ms", repr(args.sleep_ms)],
    )
    signal.signal(signal.SIGTERM, _interrupt)  # also during start-up: stop at once, reap everything
    conn = ClipperConnection(manager)
    try:
        try:
            conn.start_clipper()
            if spec is not None:
                name = spec.name
                conn.register_application(name, spec.input_type.api_name, "TIMEOUT", int(args.slo_ms * 1000))
                conn.deploy_model(name, "1", spec.input_type.api_name, f"{IMAGE_PREFIX}{name}",
                                  num_replicas=args.num_replicas, batch_size=args.batch_size)
                conn.link_model_to_app(name, name)
                manager.set_input_size(name, "1", spec.input_size)
        except ClipperException as exc:
            raise UsageError(f"could not start the engine: {exc.msg if hasattr(exc, 'msg') else exc}") from None
        print(f"query frontend   http://{manager.get_query_addr()}  (POST /<app>/predict, GET /metrics)")
        print(f"admin frontend   http://{manager.get_admin_addr()}  (clipper_admin, /admin/...)")
        print(f"container RPC    tcp://{manager.host}:{manager.rpc_port}")
        print(f"binary queries   tcp://{manager.get_binary_addr()}")
        print(f"logs             {manager.log_dir}")
        if spec is not None:
            print(f"app '{spec.name}' serves model '{spec.name}' with {args.num_replicas} replica(s); try:")
            example = ",".join(["0.5"] * spec.input_size) if spec.input_size <= 16 else "..."
            print(f"  curl -s -X POST -d '{{\"input\": [{example}]}}' http://{manager.get_query_addr()}/{spec.name}/predict")
        print("Ctrl-C to stop", flush=True)
        while True:
            time.sleep(0.5)
            if manager.frontend is None or not manager.frontend.alive():
                raise UsageError(f"the frontend exited; see {manager.log_dir / 'frontend.log'}")
    except KeyboardInterrupt:
        pass
    finally:
        manager.stop_all()
        print("stopped", flush=True)
    return 0


def add_baseline_parser(sub: argparse._SubParsersAction) -> None:
    """The ``baseline`` command: only the flags that choose the model, its placement and the time."""
    from ..containers.models import model_names
    from ..containers.models.flags import add_model_option_flags

    p = sub.add_parser(
        "baseline",
        help="measure a model's raw in-process throughput and latency per batch size (no serving)",
        description="Run the model in one process pinned like replica 1 (its cores, its GPU) and time "
                    "batches. Writes baselines.ndjson in a new experiment directory.",
    )
    p.add_argument("-m", "--model_name", required=True, metavar="MODEL",
                   help=f"model to measure: {', '.join(model_names())}")
    p.add_argument("-b", "--batch_sizes", type=int, nargs="+", default=[2], help="batch sizes (default 2)")
    p.add_argument("-c", "--model_cpus", type=int, nargs="+", default=None,
                   help="cores replica 1 would get from (default: all but the frontend's and load generator's)")
    p.add_argument("-p", "--cpus_per_replica_nums", type=int, nargs="+", default=[1],
                   help="cores of the process (default 1)")
    p.add_argument("-g", "--model_gpus", type=int, nargs="+", default=[],
                   help="GPU index of the process (default: CPU only)")
    p.add_argument("--baseline_s", type=finite_float, default=10.0,
                   help="seconds measured per batch size (default 10)")
    p.add_argument("--results_dir", type=Path, default=Path("results"), help="where experiments go (default results/)")
    p.add_argument("--sleep_ms", type=finite_float, default=10.0, help="batch time of the 'sleep' model in ms (default 10)")
    add_model_option_flags(p)
    p.set_defaults(func=cmd_baseline)


def cmd_baseline(args: argparse.Namespace) -> int:
    """Measure the model in-process only: the run's settings with every other flag at its default."""
    run = argparse.ArgumentParser(add_help=False)
    add_run_flags(run)
    full = run.parse_args(["-m", args.model_name])
    for key, value in vars(args).items():
        setattr(full, key, value)
    full.baseline = True
    full.idle_s = 0.0  # nothing is served: no idle power to compare with
    _run_experiment(settings_from_args(full), baseline_only=True)
    return 0


def add_build_parser(sub: argparse._SubParsersAction) -> None:
    from ..containers.models.classical import ClassicalBuildSettings

    d = ClassicalBuildSettings()
    p = sub.add_parser(
        "build-models",
        help="train kpca-svm and lgbm on generated data and write them with a manifest",
        description="Train the classical models on seeded generated data; write the artifacts and "
                    "manifest.json (library versions, seeds, sizes, shapes) into the models directory. "
                    "run does this on first use with the defaults.",
    )
    p.add_argument("--models_dir", type=Path, default=Path("models"))
    p.add_argument("--models", nargs="+", choices=["kpca-svm", "lgbm"], default=["kpca-svm", "lgbm"])
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--kpca_train_rows", type=int, default=d.kpca_train_rows,
                   help=f"rows the kernel PCA keeps; its cost per query grows with them (default {d.kpca_train_rows})")
    p.add_argument("--kpca_components", type=int, default=d.kpca_components)
    p.add_argument("--lgbm_train_rows", type=int, default=d.lgbm_train_rows)
    p.add_argument("--lgbm_trees", type=int, default=d.lgbm_trees)
    p.add_argument("--lgbm_leaves", type=int, default=d.lgbm_leaves)
    p.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from ..common.errors import UsageError
    from ..containers.models.classical import ClassicalBuildSettings, build_models

    for flag in ("kpca_train_rows", "kpca_components", "lgbm_train_rows", "lgbm_trees", "lgbm_leaves"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be at least 1")
    if args.kpca_components > args.kpca_train_rows:
        raise UsageError("--kpca_components cannot exceed --kpca_train_rows")
    settings = ClassicalBuildSettings(
        seed=args.seed, kpca_train_rows=args.kpca_train_rows, kpca_components=args.kpca_components,
        lgbm_train_rows=args.lgbm_train_rows, lgbm_trees=args.lgbm_trees, lgbm_leaves=args.lgbm_leaves,
    )
    check_results_dir(args.models_dir)
    manifest = build_models(args.models_dir, settings, args.models)
    for name in args.models:
        entry = manifest["models"][name]
        print(f"{name}: {args.models_dir / entry['artifact']} (trained in {entry['fit_seconds']:.1f} s, "
              f"train accuracy {entry['train_accuracy']:.3f})")
    print(f"manifest: {args.models_dir / 'manifest.json'}")
    return 0
