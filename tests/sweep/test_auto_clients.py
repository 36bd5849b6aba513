"""-n auto on a closed loop: one client, and two from the first configuration where one was busy."""

from types import SimpleNamespace

from clipper_bench.sweep.plan import ConfigPoint, CorePlan
from clipper_bench.sweep.runner import ExperimentRunner
from clipper_bench.sweep.settings import RunSettings

POINT = ConfigPoint("noop", 4, 1, 16)
OWN_CORES = CorePlan((0, 1), (2, 3), tuple(range(4, 16)), "apart")
SHARED = CorePlan((), (), (0, 1), "share")


def runner(settings: RunSettings, plan: CorePlan) -> SimpleNamespace:
    said: list[str] = []
    return SimpleNamespace(settings=settings, plan=plan, closed_loop_clients=1, say=said.append, said=said)


def record(share: float | None) -> dict:
    return {"summary": {"throughput_qps": 40_000.0, "p99_latency_ms": 2.0, "load": {"client_cpu_share": share}}}


def test_a_busy_client_with_cores_of_its_own_gets_a_second_one_and_the_configuration_is_measured_again():
    r, rec = runner(RunSettings("noop"), OWN_CORES), record(0.97)
    assert ExperimentRunner._more_clients(r, POINT, rec) is True
    assert r.closed_loop_clients == 2 and ExperimentRunner._clients(r, POINT) == 2
    assert rec["load_one_client"] == {"client_cpu_share": 0.97, "throughput_qps": 40_000.0, "p99_latency_ms": 2.0}
    assert "measuring again with 2 clients" in r.said[0]
    assert ExperimentRunner._more_clients(r, POINT, record(0.99)) is False, "at most once per sweep"


def test_auto_keeps_one_client_when_it_had_headroom_shared_its_cores_or_n_was_given():
    for settings, plan, share in ((RunSettings("noop"), OWN_CORES, 0.5),  # headroom
                                  (RunSettings("noop"), SHARED, 0.99),  # a second would take the frontend's cores
                                  (RunSettings("noop", num_clients=1), OWN_CORES, 0.99),  # -n 1 asked for
                                  (RunSettings("noop"), OWN_CORES, None)):  # no CPU figure
        r = runner(settings, plan)
        assert ExperimentRunner._more_clients(r, POINT, record(share)) is False
        assert ExperimentRunner._clients(r, POINT) == 1 and r.said == []


def test_an_open_loop_rate_takes_the_clients_it_needs_whatever_auto_chose_for_closed_loops():
    r = runner(RunSettings("noop", rate_qps=(250_000.0,)), OWN_CORES)
    r.closed_loop_clients = 2
    rated = ConfigPoint("noop", 4, 1, 16, rate_qps=250_000.0)
    assert ExperimentRunner._clients(r, rated) == 3
    assert ExperimentRunner._more_clients(r, rated, record(0.99)) is False
