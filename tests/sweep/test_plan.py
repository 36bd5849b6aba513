"""Planning cores and configurations for the machine at hand."""

import pytest

from clipper_bench.server.manager import Placement
from clipper_bench.sweep.plan import (
    ConfigPoint,
    PlanError,
    configurations,
    placements,
    plan_cores,
    validate,
)
from clipper_bench.sweep.settings import RunSettings


def test_many_cores_give_frontend_and_each_client_two_of_their_own():
    plan = plan_cores(RunSettings("noop"), list(range(16)))
    assert plan.frontend_cpus == (0, 1) and plan.client_cpus == (2, 3)
    assert plan.model_cpus == tuple(range(4, 16))
    two_clients = plan_cores(RunSettings("noop", num_clients=2), list(range(16)))
    assert two_clients.client_cpus == (2, 3, 4, 5) and two_clients.model_cpus == tuple(range(6, 16))


def test_four_to_seven_cores_give_frontend_and_client_one_each():
    plan = plan_cores(RunSettings("noop", num_clients=2), list(range(6)))
    assert plan.frontend_cpus == (0,) and plan.client_cpus == (1,) and plan.model_cpus == (2, 3, 4, 5)


def test_few_cores_are_shared_and_the_plan_says_so():
    plan = plan_cores(RunSettings("noop"), [0, 1])
    assert plan.frontend_cpus == () and plan.model_cpus == (0, 1)
    assert "share" in plan.note


def test_replicas_get_consecutive_cores_and_their_own_gpu():
    plan = plan_cores(RunSettings("noop", model_cpus=(4, 5, 6, 7)), list(range(8)))
    got = placements(ConfigPoint("vgg", 2, 2, 8), plan, (0, 1), oversubscribe=False)
    assert got == [Placement((4, 5), 0), Placement((6, 7), 1)]


def test_sweep_order_is_replicas_then_cores_then_batch():
    points = configurations(RunSettings("noop", batch_sizes=(1, 4), num_replicas=(1, 2), cpus_per_replica_nums=(1,)))
    assert [p.config_id for p in points] == ["noop-r1-c1-b1", "noop-r1-c1-b4", "noop-r2-c1-b1", "noop-r2-c1-b4"]


def test_oversubscription_needs_to_be_asked_for():
    settings = RunSettings("noop", num_replicas=(3,))
    with pytest.raises(PlanError, match="--oversubscribe"):
        validate(settings, [0, 1], [])
    plan, _ = validate(RunSettings("noop", num_replicas=(3,), oversubscribe=True), [0, 1], [])
    assert [p.cpus for p in placements(ConfigPoint("noop", 3, 1, 1), plan, (), True)] == [(0,), (1,), (0,)]


def test_gpus_must_exist_and_cover_every_replica():
    with pytest.raises(PlanError, match="no NVIDIA GPU"):
        validate(RunSettings("noop", model_gpus=(0,)), [0, 1], [])
    with pytest.raises(PlanError, match="list one GPU per replica"):
        validate(RunSettings("noop", model_gpus=(0,), num_replicas=(2,)), [0, 1], ["H100"])
    validate(RunSettings("noop", model_gpus=(0,)), [0, 1], ["H100"])


def test_auto_transport_is_shm_for_images_binary_for_small_inputs_and_rest_for_clippers_frontend():
    from clipper_bench.sweep.settings import resolve_defaults

    assert resolve_defaults(RunSettings("noop-image", transport="auto")).transport == "shm"
    assert resolve_defaults(RunSettings("noop", transport="auto")).transport == "binary"
    assert resolve_defaults(RunSettings("noop", transport="auto", engine="docker")).transport == "rest"
    gpu = resolve_defaults(RunSettings("vgg", model_gpus=(0,), overlap_batches="auto", cuda_graphs="auto"))
    cpu = resolve_defaults(RunSettings("vgg", overlap_batches="auto", cuda_graphs="auto"))
    assert (gpu.overlap_batches, gpu.cuda_graphs, cpu.overlap_batches, cpu.cuda_graphs) == ("on", "on", "off", "off")
    assert (gpu.batches_in_flight, cpu.batches_in_flight) == (3, 2)  # measured on an H200 (issue 29)
    assert resolve_defaults(RunSettings("vgg", model_gpus=(0,), batches_in_flight=1)).batches_in_flight == 1


def test_every_engine_in_the_registry_is_offered_and_implements_the_interface():
    import subprocess
    import sys

    from clipper_bench.engines import ENGINES, engine_class
    from clipper_bench.engines.base import Engine

    for name in ENGINES:
        cls = engine_class(name)
        assert issubclass(cls, Engine) and cls.name == name and not getattr(cls, "__abstractmethods__", None)
    help_text = subprocess.run([sys.executable, "-m", "clipper_bench", "run", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    assert "--engine {" + ",".join(ENGINES) + "}" in help_text


def test_the_command_line_is_generated_from_the_settings_declarations_with_their_defaults():
    import argparse

    from clipper_bench.sweep.cli_args import add_run_flags, settings_from_args
    from clipper_bench.sweep.settings import GROUPS, declared_fields, resolve_defaults

    parser = argparse.ArgumentParser()
    add_run_flags(parser)
    from_cli = settings_from_args(parser.parse_args(["-m", "noop"]))
    assert from_cli == resolve_defaults(RunSettings("noop"))  # one default per field, the declared one
    declared = {f.name for f in declared_fields()}
    model_flags = {"framework", "precision", "overlap_batches", "cuda_graphs", "weights", "models_dir", "seed"}
    import dataclasses

    assert {f.name for f in dataclasses.fields(RunSettings)} - declared - model_flags == {"pool_size"}
    assert all(f.metadata["group"] in GROUPS and f.metadata["help"] for f in declared_fields())
    changed = settings_from_args(parser.parse_args(["-m", "noop", "-d", "3", "-b", "1", "4", "--rate", "50",
                                                    "--replica_hang_s", "9", "--gpu_clocks", "1500"]))
    assert (changed.duration_s, changed.batch_sizes, changed.rate_qps, changed.replica_hang_min_s,
            changed.gpu_clocks_mhz) == (3.0, (1, 4), (50.0,), 9.0, (1500,))


def _parsed_settings(argv):
    from clipper_bench.cli import build_parser
    from clipper_bench.sweep.cli_args import settings_from_args
    from clipper_bench.sweep.sweep_file import apply_config_file, config_path

    parser = build_parser()
    if config_path(argv):
        apply_config_file(parser._defaults["subcommands"]["run"], config_path(argv))
    return settings_from_args(parser.parse_args(argv))


def test_a_sweep_file_gives_the_same_settings_as_the_same_flags_and_flags_override_it(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("model_name: sleep\nsleep_ms: 5\nnum_replicas: [1, 2]\nbatch_sizes: [1, 8]\n"
                     "duration: 3\nrate: [50, 100]\narrival: poisson\nstable: true\n")
    flags = ["run", "-m", "sleep", "--sleep_ms", "5", "-r", "1", "2", "-b", "1", "8", "-d", "3",
             "--rate", "50", "100", "--arrival", "poisson", "--stable"]
    assert _parsed_settings(["run", "--config", str(sweep)]) == _parsed_settings(flags)
    overridden = _parsed_settings(["run", "--config", str(sweep), "-b", "4", "--arrival", "constant"])
    assert overridden.batch_sizes == (4,) and overridden.arrival == "constant" and overridden.rate_qps == (50.0, 100.0)


def test_the_written_sweep_file_reproduces_the_sweep(tmp_path):
    from clipper_bench.sweep.sweep_file import write_sweep_file

    original = _parsed_settings(["run", "-m", "noop", "-b", "1", "4", "--concurrency", "2", "8", "-d", "2",
                                 "--slo_ms", "50", "--framework", "keras", "--seed", "3"])
    write_sweep_file(tmp_path / "sweep.yaml", original)
    assert _parsed_settings(["run", "--config", str(tmp_path / "sweep.yaml")]) == original


@pytest.mark.parametrize("text, fragment", [
    ("batch_sizes: [0", "is not valid YAML"),
    ("model_name: noop\nbatchsize: 3\n", "unknown key 'batchsize'"),
    ("model_name: noop\ntransport: fast\n", "'transport' must be one of"),
    ("model_name: noop\nduration: 3 s\n", "'duration': must be a number, got '3 s'"),
    ("- just\n- a list\n", "must map flags to values"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_key(tmp_path, text, fragment):
    import subprocess
    import sys

    (tmp_path / "s.yaml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "clipper_bench", "run", "--config", str(tmp_path / "s.yaml"),
                           "--results_dir", str(tmp_path / "res")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert fragment in proc.stderr and not (tmp_path / "res").exists()
