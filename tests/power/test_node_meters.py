"""Whole-machine power sources (--power_meter): a wall meter command, a Redfish service, ipmitool,
each through its real client code against a served endpoint or a fake command, in the real sampler
process; and the node figures beside the GPU's, never added to them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from clipper_bench.power import wall_meter
from clipper_bench.power.ipmi import IpmiSource, parse_power_reading
from clipper_bench.power.meters import FORMS, node_sources, parse_meter
from clipper_bench.power.node_energy import MIN_READINGS, integrate
from clipper_bench.power.redfish_bmc import RedfishSource
from clipper_bench.power.sampler import PowerMonitor, SamplerConfig, sample
from clipper_bench.power.source import SourceUnavailable
from clipper_bench.power.summary import idle_watts, summarize_power
from tests.conftest import REPO
from tests.power.fake_bmc import (
    PASSWORD,
    USER,
    RedfishService,
    energy_between,
    write_ipmitool,
    write_meter,
)
from tests.power.test_power import run_window


def window(tmp_path: Path, seconds: float, meters: list[str], interval_s: float = 0.05, lead_s: float = 0.3,
           **kwargs) -> SamplerConfig:
    start = time.time() + lead_s
    return SamplerConfig(interval_s=interval_s, start_wall=start, end_wall=start + seconds,
                         out_path=str(tmp_path / "samples.json"), powercap_root=str(tmp_path / "none"),
                         power_meters=tuple(meters), **kwargs)


def meter_cmd(tmp_path: Path, tick_s: float, skew_s: float = 0.0) -> str:
    return f"meter:{sys.executable} {write_meter(tmp_path)} {tick_s} {skew_s} {tmp_path / 'meter.pid'}"


def gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether ``pid`` has ended (a zombie left to this test process, their subreaper, has)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def bmc_env(monkeypatch):
    monkeypatch.setenv("CLIPPER_BENCH_REDFISH_USER", USER)
    monkeypatch.setenv("CLIPPER_BENCH_REDFISH_PASSWORD", PASSWORD)


# -- the forms --------------------------------------------------------------------------------

def test_meter_forms_parse_and_bad_ones_name_every_form():
    assert parse_meter("redfish:https://10.0.0.5") == ("redfish", "https://10.0.0.5")
    assert parse_meter("ipmi") == ("ipmi", "")
    assert parse_meter("ipmi:bmc-7") == ("ipmi", "bmc-7")
    assert parse_meter("meter:wattmeter-read --csv | cut -d, -f1,2") == ("meter", "wattmeter-read --csv | cut -d, -f1,2")
    with pytest.raises(ValueError, match="is not a power meter: pass one of") as exc:
        parse_meter("foo")
    assert str(exc.value).endswith(FORMS)
    with pytest.raises(ValueError, match="needs its target"):
        parse_meter("meter:")
    with pytest.raises(ValueError, match="credentials do not go in the URL"):
        parse_meter("redfish:https://root:secret@10.0.0.5")
    names = [s.name for s in node_sources(["meter:a", "ipmi", "meter:b"], None, 1.0)]
    assert names == ["meter", "ipmi", "meter2"]


def test_run_refuses_a_bad_power_meter_and_missing_credentials_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPPER_BENCH_REDFISH")}
    for args, expected in ((["--power_meter", "foo"], "'foo' is not a power meter: pass one of redfish:URL"),
                           (["--power_meter", "redfish:https://10.0.0.5"], "needs the BMC's credentials: pass "
                                                                          "--power_meter_credentials FILE")):
        proc = subprocess.run([sys.executable, "-m", "clipper_bench", "run", "-m", "noop", "-d", "1", *args,
                               "--results_dir", str(tmp_path / "results")],
                              capture_output=True, text=True, cwd=REPO, timeout=60, env=env)
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert expected in line
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


# -- integration over the window -------------------------------------------------------------

@pytest.mark.parametrize("phase", [0.0, 0.37, 0.93])
def test_a_meter_ticking_each_second_over_10_s_gives_the_known_energy_within_2_percent(phase):
    """The edges count: a 1 s meter leaves up to a second uncovered at each end of a 10 s window."""
    start = 1_000.0
    t = np.arange(start - 1 + phase, start + 11, 1.0)
    p = np.array([energy_between(x - 1e-3, x + 1e-3) / 2e-3 for x in t])
    for lo, hi in ((start, start + 10), (start + 0.2, start + 10.2)):
        known = energy_between(lo, hi)
        assert integrate(t, p, lo, hi) == pytest.approx(known, rel=0.02)
        only_inside = (t >= lo) & (t <= hi)  # no reading before or after the window: held from the nearest
        assert integrate(t[only_inside], p[only_inside], lo, hi) == pytest.approx(known, rel=0.02)


def test_meter_at_1_s_over_a_10_s_window_through_the_sampler_matches_the_known_energy(tmp_path):
    """The done-when: a real meter command ticking at 1 s, sampled by the sampler process over 10 s."""
    cfg = window(tmp_path, 10.0, [meter_cmd(tmp_path, 1.0)], interval_s=0.1, lead_s=0.5)
    doc = run_window(cfg)
    power = summarize_power(doc, num_completed=1000)
    known = energy_between(cfg.start_wall, cfg.end_wall)
    assert power["node_energy_per_query_j"] == pytest.approx(known / 1000, rel=0.02)
    assert power["node_readings"] >= 9 and power["node_update_interval_s"] == pytest.approx(1.0, abs=0.05)
    assert power["joules"] is None  # no GPU or RAPL here: the node's energy is not put in their place


def test_meter_clock_offset_is_estimated_and_applied(tmp_path):
    """A meter whose clock is 1000 s ahead: its readings land on the host's clock, the offset recorded."""
    doc = run_window(window(tmp_path, 1.5, [meter_cmd(tmp_path, 0.1, skew_s=1000.0)]))
    assert doc["status"]["meter"] == "ok"
    info = doc["source_info"]["meter"]
    assert info["clock_offset_s"] == pytest.approx(-1000.0, abs=0.05), info
    assert info["lines"] >= 20 and info["bad_lines"] == 0  # the header line is not a bad line
    assert set(doc["channels"]) == {"node:meter:psu1", "node:meter:psu2"}
    assert all(c["scope"] == "node" for c in doc["channels"].values())
    power = summarize_power(doc, num_completed=100)
    cfg = doc["config"]
    known = energy_between(cfg["start_wall"], cfg["end_wall"])
    assert power["node_joules"] == pytest.approx(known, rel=0.02), power["node"]  # both cables added
    assert power["node"]["meters"]["meter"]["info"]["clock_offset_s"] == pytest.approx(-1000.0, abs=0.05)
    assert gone(int((tmp_path / "meter.pid").read_text()))  # ended at the window's end


def test_too_few_distinct_readings_is_no_per_query_figure_with_its_own_reason(tmp_path):
    doc = run_window(window(tmp_path, 1.2, [meter_cmd(tmp_path, 0.5)]))
    power = summarize_power(doc, num_completed=100)
    assert power["node_power_mean_w"] == pytest.approx(350.0, rel=0.2)  # watts are still said
    assert power["node_readings"] < MIN_READINGS
    assert power["node_energy_per_query_j"] is None  # never a zero
    assert f"a per-query figure needs at least {MIN_READINGS}" in power["node_problem"]


def test_the_meter_command_is_reaped_when_the_sampler_is_stopped_mid_window(tmp_path, no_leftover_processes):
    cfg = window(tmp_path, 30.0, [meter_cmd(tmp_path, 0.1)])
    monitor = PowerMonitor(cfg)
    try:
        monitor.start()
        time.sleep(1.0)
        pid = int((tmp_path / "meter.pid").read_text())
        assert psutil.pid_exists(pid)
    finally:
        monitor.stop()
    assert gone(pid)


@pytest.mark.parametrize("command, reason", [
    ("echo 'not,a,reading,line'; echo garbage; sleep 30", "not timestamp,watts[,channel]"),
    ("echo oops >&2; exit 3", "exited with status 3 before printing a reading (oops)"),
])
def test_a_meter_that_prints_no_reading_is_unavailable_with_the_reason(tmp_path, command, reason, monkeypatch):
    monkeypatch.setattr(wall_meter, "FIRST_LINE_TIMEOUT_S", 2.0)
    source = wall_meter.MeterSource(command)
    with pytest.raises(SourceUnavailable, match=reason.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        source.open()
    assert source.process is None  # ended and reaped by open itself


# -- Redfish ----------------------------------------------------------------------------------

@pytest.mark.parametrize("resource", ["Power", "EnvironmentMetrics"])
def test_redfish_chassis_power_through_the_redfish_client(tmp_path, bmc_env, resource):
    with RedfishService(refresh_s=0.3, resource=resource) as bmc:
        doc = run_window(window(tmp_path, 2.5, [f"redfish:{bmc.url}"]))
    assert doc["status"]["redfish"] == "ok", doc["status"]
    info = doc["source_info"]["redfish"]
    assert info["read"].endswith("PowerControl[0].PowerConsumedWatts" if resource == "Power" else "PowerWatts.Reading")
    assert info["credentials_from"] == "environment" and info["auth"] == "basic"
    power = summarize_power(doc, num_completed=50)
    meter = power["node"]["meters"]["redfish"]
    assert 300 <= power["node_power_mean_w"] <= 360
    assert meter["readings"] >= MIN_READINGS and meter["update_interval_s"] == pytest.approx(0.3, abs=0.2)
    assert power["node_energy_per_query_j"] == pytest.approx(power["node_joules"] / 50), power["node_problem"]
    assert PASSWORD not in json.dumps(doc) and PASSWORD not in json.dumps(power)


def test_redfish_wrong_password_and_no_service_are_unavailable_with_the_reason(tmp_path, bmc_env):
    with RedfishService(password="another") as bmc:
        source = RedfishSource(bmc.url)
        with pytest.raises(SourceUnavailable, match="refused the credentials"):
            source.open()
        source.close()
    source = RedfishSource(bmc.url)  # its server is gone now
    with pytest.raises(SourceUnavailable, match="no Redfish service answers at"):
        source.open()
    source.close()


def test_redfish_credentials_from_a_file_and_never_in_the_results(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIPPER_BENCH_REDFISH_USER", raising=False)
    monkeypatch.delenv("CLIPPER_BENCH_REDFISH_PASSWORD", raising=False)
    creds = tmp_path / "bmc.credentials"
    creds.write_text(f"# the lab BMC\nuser={USER}\npassword={PASSWORD}\n")
    with RedfishService() as bmc:
        cfg = window(tmp_path, 1.0, [f"redfish:{bmc.url}/redfish/v1/Chassis/1U"], power_meter_credentials=str(creds))
        doc = sample(cfg)
    assert doc["status"]["redfish"] == "ok" and doc["source_info"]["redfish"]["credentials_from"] == str(creds)
    assert PASSWORD not in Path(cfg.out_path).read_text()


# -- IPMI -------------------------------------------------------------------------------------

REAL_DCMI = """
    Instantaneous power reading:                   277 Watts
    Minimum during sampling period:                 54 Watts
    Maximum during sampling period:                462 Watts
    Average power reading over sample period:      276 Watts
    IPMI timestamp:                           Wed Aug 11 13:07:56 2021
    Sampling period:                          00000005 Seconds.
    Power reading state is:                   activated
"""


def test_dcmi_output_parses():
    fields = parse_power_reading(REAL_DCMI)
    assert fields["power_w"] == 277 and fields["period_avg_w"] == 276 and fields["period_max_w"] == 462
    assert fields["sampling_period_s"] == 5 and fields["state"] == "activated"
    assert isinstance(fields["stamp"], float)


def test_ipmi_remote_bmc_through_ipmitool_with_the_password_only_in_its_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_IPMI_LOG", str(tmp_path / "ipmi.log"))
    monkeypatch.setenv("CLIPPER_BENCH_IPMI_USER", USER)
    monkeypatch.setenv("CLIPPER_BENCH_IPMI_PASSWORD", PASSWORD)
    write_ipmitool(tmp_path)
    doc = run_window(window(tmp_path, 2.5, ["ipmi:bmc-7"]))
    assert doc["status"]["ipmi"] == "ok", doc["status"]
    calls = [json.loads(line) for line in (tmp_path / "ipmi.log").read_text().splitlines()]
    assert calls and all(c["password_ok"] for c in calls)
    assert calls[0]["argv"] == ["-I", "lanplus", "-H", "bmc-7", "-U", USER, "-E", "dcmi", "power", "reading"]
    assert doc["source_info"]["ipmi"]["bmc_sampling_period_s"] == 1
    power = summarize_power(doc, num_completed=10)
    assert power["node_readings"] >= MIN_READINGS and 300 <= power["node_power_mean_w"] <= 360
    assert PASSWORD not in json.dumps(doc)


def test_ipmi_without_ipmitool_is_unavailable_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CLIPPER_BENCH_IPMITOOL", raising=False)
    with pytest.raises(SourceUnavailable, match="apt-get install ipmitool"):
        IpmiSource().open()


# -- beside the GPU, never added --------------------------------------------------------------

def test_node_energy_is_its_own_figure_and_the_cross_check_sets_it_against_the_gpu(tmp_path):
    """The node meter includes the GPU: joules (GPU + RAPL) stay the parts', the node has its own."""
    t0 = 1_000.0
    t = [t0 + 0.1 * i for i in range(101)]
    doc = {"config": {"interval_s": 0.1, "start_wall": t0, "end_wall": t0 + 10.0, "power_meters": ["meter:x"]},
           "status": {"nvml": "ok", "meter": "ok"},
           "series": {"gpu0": {"t": t, "energy_j": [200.0 * (x - t0) for x in t], "power_w": [200.0] * 101},
                      "node:meter": {"t": t[::10], "energy_j": [None] * 11, "power_w": [650.0] * 11,
                                     "stamp": t[::10]}},
           "channels": {"gpu0": {"source": "nvml", "scope": "component"},
                        "node:meter": {"source": "meter", "scope": "node"}}}
    idle = {"gpu0": 70.0, "node:meter": 250.0}
    power = summarize_power(doc, num_completed=1000, idle_w=idle)
    assert power["joules"] == pytest.approx(2000.0) and power["energy_channels"] == ["gpu0"]
    assert power["node_joules"] == pytest.approx(6500.0)
    assert power["node_energy_per_query_j"] == pytest.approx(6.5)
    assert power["node_energy_per_query_above_idle_j"] == pytest.approx((6500.0 - 2500.0) / 1000)
    check = power["cross_check"]
    assert check["node_above_idle_w"] == pytest.approx(400.0) and check["gpu_above_idle_w"] == pytest.approx(130.0)
    assert check["gpu_share_of_node_above_idle"] == pytest.approx(130.0 / 400.0)
    assert idle_watts(doc) == {"gpu0": pytest.approx(200.0), "node:meter": pytest.approx(650.0)}
