"""Every numeric flag of ``run`` has a declared range, shown in --help; a value outside it (or NaN or
infinity) is refused before anything is written or started, in one line naming the flag, the
limit and the fix, with exit status 2 (issue 28, items 9-13)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
import types

import pytest

from clipper_bench.common.cli_types import finite_float, whole_number
from clipper_bench.sweep.settings import (
    MODEL_FIELD_RANGES,
    RunSettings,
    check_declared,
    declared_fields,
)
from tests.conftest import REPO

NUMERIC_TYPES = (finite_float, whole_number)


def _numeric_flags() -> list[tuple[str, tuple[str, ...], object, bool]]:
    """(field, its flag names, its Range, whether it takes floats) for every numeric declared flag,
    then the model flags whose ranges the settings declare (--seed)."""
    out = []
    for f in declared_fields():
        kind = f.metadata["argparse"].get("type")
        if kind in NUMERIC_TYPES:
            out.append((f.name, f.metadata["names"], f.metadata["range"], kind is finite_float))
    for name, (flag, limits) in MODEL_FIELD_RANGES.items():
        out.append((name, (flag,), limits, False))
    return out


def _outside(limits, floats: bool) -> list[str]:
    """Values just outside the range on both sides, and what is not a number at all."""
    if floats:
        below = limits.lo if limits.lo_open else (limits.lo / 2 if limits.lo > 0 else -1.0)
        return [repr(below), repr(limits.hi * 2), "nan", "inf", "-inf"]
    return [str(int(limits.lo) - 1), str(int(limits.hi) + 1), "2.5", "nan"]


CASES = [(name, names, value) for name, names, limits, floats in _numeric_flags()
         for value in _outside(limits, floats)]


def test_every_numeric_flag_declares_a_range_with_an_upper_bound_shown_in_help():
    from clipper_bench.cli import build_parser

    flags = _numeric_flags()
    numbers = {f.name for f in declared_fields() if re.search(r"\b(int|float)\b", str(f.type))}
    assert numbers == {name for name, *_ in flags} - set(MODEL_FIELD_RANGES)  # the walk covers them all
    help_text = " ".join(build_parser()._defaults["subcommands"]["run"].format_help().split())
    for name, names, limits, _ in flags:
        assert limits is not None, f"{names[-1]} has no declared range"
        assert math.isfinite(limits.hi) and limits.hi > limits.lo, name
        assert " ".join(limits.help().split()) in help_text, f"{names[-1]}'s range is not in --help"


class _MustNotRun:
    def __init__(self, *args, **kwargs) -> None:
        raise AssertionError("a value outside its range reached the runner")


@pytest.mark.parametrize("field, names, value", CASES, ids=[f"{c[1][-1]}={c[2]}" for c in CASES])
def test_a_value_outside_the_range_is_one_line_and_exit_2_before_anything(tmp_path, monkeypatch, capsys,
                                                                          field, names, value):
    """The real command line, in this process (a subprocess per case would take minutes): the parser,
    the declared checks, the plan's checks; the runner is never reached."""
    from clipper_bench.cli import main

    monkeypatch.setattr("clipper_bench.sweep.runner.ExperimentRunner", _MustNotRun)
    results = tmp_path / "results"
    try:
        code = main(["run", "-m", "noop", names[-1], value, "--results_dir", str(results)])
    except SystemExit as exc:  # argparse's refusal of a value that is not a number
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert any(n in lines[0] for n in names), lines[0]
    assert "Traceback" not in err and not results.exists()


@pytest.mark.parametrize("args, fragment", [
    (["--metrics_port", "70000"], "--metrics_port must be at most 65535, got 70000"),
    (["--metrics_port", "-1"], "--metrics_port must be 0 or more, got -1"),
    (["--slo_ms", "1e12"], "--slo_ms must be at most 86400000 ms"),
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--gpu_clocks", "99999999"], "--gpu_clocks must be at most 5000 MHz"),
    (["--power_interval_ms", "1e-6"], "--power_interval_ms must be at least 10 ms"),
    (["--concurrency", "1e7"], "--concurrency must be at most 65536, got 10000000"),
    (["--rate", "1e12"], "--rate must be at most 1000000 q/s"),
    (["--warmup", "nan"], "argument --warmup: must be a finite number"),
])
def test_the_real_command_refuses_in_one_line(tmp_path, no_leftover_processes, args, fragment):
    results = tmp_path / "results"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "clipper_bench", "run", "-m", "noop", *args,
                           "--results_dir", str(results)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "pass" in lines[0] or "--help" in lines[0]  # the fix
    assert not results.exists()
    assert time.monotonic() - started < 30  # refused at once, not after a deployment


def test_in_range_values_pass_the_checks():
    assert check_declared(RunSettings("noop")) is None
    edges = RunSettings("noop", duration_s=0.1, metrics_port=0, slo_ms=86_400_000.0, seed=2**32 - 1,
                        gpu_clocks_mhz=(100, 5000), power_interval_ms=10_000.0, concurrency=(65_536,),
                        rate_qps=(0.001,), batches_in_flight=4, num_clients=256)
    assert check_declared(RunSettings("noop", num_clients=0)) is None  # auto
    assert check_declared(edges) is None


@pytest.mark.parametrize("overrides, fragment", [
    ({"rate_qps": (500_000.0,), "num_clients": 1}, "one client sends at most 100000 q/s: pass -n 5 or more"),
    ({"rate_qps": (20_000.0,), "duration_s": 86_400.0, "num_clients": 1}, "one client holds at most 50000000"),
    ({"rate_qps": (1_000_000.0,), "duration_s": 86_400.0, "num_clients": 10}, "lower --rate, --warmup or -d"),
])
def test_a_rate_beyond_what_the_clients_can_send_or_hold_names_the_clients_needed(overrides, fragment):
    problem = check_declared(RunSettings("noop", **overrides))
    assert problem and problem.startswith("--rate ") and fragment in problem
    fixed = {**overrides, "num_clients": 5} if "pass -n 5" in fragment else None
    if fixed:
        assert check_declared(RunSettings("noop", **fixed)) is None


def test_auto_clients_start_as_many_as_an_open_loop_rate_needs_and_one_for_a_closed_loop():
    auto = RunSettings("noop", rate_qps=(500_000.0,))
    assert check_declared(auto) is None and auto.clients_for(500_000.0) == 5 and auto.clients_for(1_000.0) == 1
    assert RunSettings("noop").clients_for(None) == 1
    assert RunSettings("noop", num_clients=3).clients_for(None) == 3  # -n given: always that
    long = RunSettings("noop", rate_qps=(20_000.0,), duration_s=86_400.0, warmup_s=0.0)
    assert long.clients_for(20_000.0) == 35  # 1.7e9 queries over the day, 50e6 each
    beyond = check_declared(RunSettings("noop", rate_qps=(1e6,), duration_s=86_400.0))  # 1,728 clients
    assert beyond and "lower --rate, --warmup or -d" in beyond


def test_the_sampler_refuses_an_interval_that_would_spin_or_miss_a_counter_wrap(tmp_path):
    from clipper_bench.power.sampler import SamplerConfig

    for interval_s in (1e-9, 0.001, 11.0, math.nan):
        with pytest.raises(ValueError, match="power sampling interval must be 10 to 10000 ms"):
            SamplerConfig(interval_s=interval_s, start_wall=0.0, end_wall=1.0, out_path=str(tmp_path / "s"))
    SamplerConfig(interval_s=0.01, start_wall=0.0, end_wall=1.0, out_path=str(tmp_path / "s"))


def _fake_nvml() -> types.SimpleNamespace:
    """An NVML whose GPUs support SM clocks from 345 to 1980 MHz (an H100's range)."""
    return types.SimpleNamespace(
        NVMLError=RuntimeError, NVML_CLOCK_SM=1, nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetSupportedMemoryClocks=lambda h: [2619, 1593],
        nvmlDeviceGetSupportedGraphicsClocks=lambda h, mem: [1980, 1200, 345] if mem == 2619 else [1200, 600],
        nvmlDeviceGetMaxClockInfo=lambda h, kind: 1980,
    )


def test_gpu_clocks_are_checked_against_what_the_gpu_supports(monkeypatch):
    from clipper_bench.sweep import plan

    monkeypatch.setattr("clipper_bench.power.nvml.load_nvml", _fake_nvml)
    plan._check_gpu_clocks((345, 1980), (0, 0))
    with pytest.raises(plan.PlanError, match=r"--gpu_clocks 2500 MHz is outside the SM clocks GPU 0 supports "
                                             r"\(345 to 1980 MHz\); pass clocks in that range"):
        plan._check_gpu_clocks((1200, 2500), (0,))
