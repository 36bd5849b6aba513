"""Pipeline files: what they describe, and one line for every way they can be wrong."""

import pytest

from clipper_bench.server.manager import Placement
from clipper_bench.sweep.pipeline.plan import stage_placements
from clipper_bench.sweep.pipeline.spec import (
    PipelineError,
    StageConfig,
    config_id,
    load_pipeline,
    parse_pipeline,
    query_model,
)
from clipper_bench.sweep.plan import CorePlan


def test_the_builtin_image_driver_1_is_two_branches_into_two_classifiers():
    spec = load_pipeline("image_driver_1")
    assert [s.name for s in spec.entries] == ["vgg", "inception"] and [s.name for s in spec.sinks] == ["svm", "lgbm"]
    assert spec.children("vgg") == ["svm"] and spec.stage("lgbm").model == "lgbm"
    assert query_model(spec) == "inception"  # the larger image: the frontend resizes it for vgg
    (only,) = spec.configurations
    assert only["vgg"] == StageConfig(1, 64, 1) and only["lgbm"] == StageConfig(1, 2, 1)


def test_the_cross_product_is_swept_unless_tuples_are_listed():
    doc = {"stages": {"a": {"model": "sleep", "replicas": [1, 2], "batch_sizes": [1, 4]},
                      "b": {"model": "noop", "input": "a"}}}
    spec = parse_pipeline(doc, "t.yaml")
    assert len(spec.configurations) == 4
    doc["configurations"] = [{"a": {"replicas": 2}}, {"a": {"batch_size": 4}, "b": {"replicas": 3}}]
    spec = parse_pipeline(doc, "t.yaml")
    assert [config_id(spec, c) for c in spec.configurations] == ["t-a.r2c1b1-b.r1c1b1", "t-a.r1c1b4-b.r3c1b1"]


@pytest.mark.parametrize("doc, fragment", [
    ({"stages": {"a": {"model": "resnet"}}}, "stage 'a': unknown model 'resnet'"),
    ({"stages": {"a": {"model": "noop", "input": "b"}, "b": {"model": "noop", "input": "a"}}}, "form a cycle"),
    ({"stages": {"a": {"model": "noop", "input": "zz"}}}, "'zz', which is not a stage"),
    ({"stages": {"a": {"model": "noop"}, "b": {"model": "vgg"}}}, "take different inputs"),
    ({"stages": {"a": {"model": "noop", "replicas": [0]}}}, "'replicas' must be a list of whole numbers of at least 1"),
    ({"stages": {"A": {"model": "noop"}}}, "stage names must be lower-case"),
    ({"stages": {"a": {"model": "noop", "colour": 1}}}, "unknown key(s) ['colour']"),
    ({"stages": {"a": {"model": "noop"}}, "configurations": [{"b": {}}]}, "configuration 1 must map stage names"),
    ({"nothing": 1}, "needs a 'stages' mapping"),
])
def test_a_bad_file_gets_one_line_naming_the_problem(doc, fragment):
    with pytest.raises(PipelineError) as err:
        parse_pipeline(doc, "bad.yaml")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_stages_get_consecutive_cores_and_their_gpus_and_too_many_are_refused():
    spec = parse_pipeline({"stages": {"f": {"model": "noop", "replicas": [2], "gpus": [0, 0]},
                                      "c": {"model": "noop", "input": "f", "cpus_per_replica": [2]}}}, "p.yaml")
    plan = CorePlan((0,), (1,), (2, 3, 4, 5), "")
    places = stage_placements(spec, spec.configurations[0], plan, False, gpu_count=1)
    assert places == {"f": [Placement((2,), 0), Placement((3,), 0)], "c": [Placement((4, 5))]}
    with pytest.raises(PipelineError, match="need 4 cores"):
        stage_placements(spec, spec.configurations[0], CorePlan((), (), (0, 1), ""), False, gpu_count=1)
    with pytest.raises(PipelineError, match="this machine has 0 GPU"):
        stage_placements(spec, spec.configurations[0], plan, False, gpu_count=0)


def test_the_command_line_builds_without_pyyaml_or_pandas_as_in_the_model_images():
    """The container images run `clipper-bench container` without PyYAML or pandas: building the parser
    (which lists the built-in pipelines and the planner's objectives) must import neither."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['yaml'] = sys.modules['pandas'] = None; "
            "import clipper_bench.cli as c; c.build_parser()")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
