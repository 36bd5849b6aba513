"""What a served configuration's serving_efficiency compares it with."""

from clipper_bench.server.manager import Placement
from clipper_bench.sweep.baseline import (
    baseline_units,
    efficiency_problem,
    resource_key,
    resource_sets,
    serving_efficiency,
)


def test_replicas_sharing_one_gpu_are_compared_with_that_gpu_driven_from_all_their_cores():
    shared = [Placement((1,), 0), Placement((2,), 0)]
    (gpu0,) = resource_sets(shared)
    assert gpu0 == Placement((1, 2), 0) and resource_key(gpu0) == ("gpu0", 2)
    assert baseline_units(shared) == 1
    # 2 replicas on GPU 0 serving 6,300 q/s against a raw 7,300 q/s: 0.86 of the GPU, not 0.43
    assert serving_efficiency(6300.0, [7300.0]) == 6300.0 / 7300.0


def test_each_distinct_core_set_and_each_distinct_gpu_counts_once():
    assert baseline_units([Placement((0,)), Placement((1,))]) == 2
    # --oversubscribe: four replicas on two cores have two cores' worth of speed
    assert baseline_units([Placement((0,)), Placement((1,)), Placement((0,)), Placement((1,))]) == 2
    assert baseline_units([Placement(), Placement()]) == 2  # unpinned: each counts
    assert baseline_units([Placement((0,), 0), Placement((1,), 1), Placement((2,), 1)]) == 2
    assert resource_key(Placement((4, 5))) == resource_key(Placement((0, 1))) == ("cpu", 2)


def test_no_efficiency_without_every_throughput():
    assert serving_efficiency(None, [10.0]) is None
    assert serving_efficiency(5.0, [None]) is None
    assert serving_efficiency(5.0, [10.0, None]) is None
    assert serving_efficiency(15.0, [10.0, 10.0]) == 0.75


def test_serving_faster_than_the_model_itself_is_a_measurement_problem_not_a_result():
    assert efficiency_problem(1.04) is None and efficiency_problem(None) is None
    problem = efficiency_problem(1.61)
    assert problem and "1.61x the raw in-process speed" in problem and "not a result" in problem
