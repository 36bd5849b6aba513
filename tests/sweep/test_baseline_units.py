"""What a served configuration's serving_efficiency compares it with."""

from clipper_bench.engine.manager import Placement
from clipper_bench.sweep.baseline import baseline_units, serving_efficiency


def test_replicas_sharing_one_gpu_are_compared_with_that_gpus_raw_speed():
    shared = [Placement((1,), 0), Placement((2,), 0)]
    assert baseline_units(shared) == 1
    # 2 replicas on GPU 0 serving 6,300 q/s against a raw 7,300 q/s: 0.86 of the GPU, not 0.43
    assert serving_efficiency(6300.0, baseline_units(shared), 7300.0) == 6300.0 / 7300.0


def test_each_distinct_core_set_and_each_distinct_gpu_counts_once():
    assert baseline_units([Placement((0,)), Placement((1,))]) == 2
    # --oversubscribe: four replicas on two cores have two cores' worth of speed
    assert baseline_units([Placement((0,)), Placement((1,)), Placement((0,)), Placement((1,))]) == 2
    assert baseline_units([Placement(), Placement()]) == 2  # unpinned: each counts
    assert baseline_units([Placement((0,), 0), Placement((1,), 1), Placement((2,), 1)]) == 2


def test_no_efficiency_without_both_throughputs():
    assert serving_efficiency(None, 1, 10.0) is None
    assert serving_efficiency(5.0, 1, None) is None
