"""The four image_driver_1 models, served end to end through the local engine."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import zmq
from clipper_admin import ClipperConnection

from clipper_bench.containers.models import ModelOptions, get_model_spec
from clipper_bench.containers.models.classical import ClassicalBuildSettings, build_models
from clipper_bench.containers.models.image import decode_features
from clipper_bench.protocol import binary
from tests.conftest import REPO

SMALL = ClassicalBuildSettings(kpca_train_rows=300, kpca_components=16, lgbm_train_rows=300, lgbm_trees=10)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models")
    build_models(path, SMALL)
    return path


def query_binary(manager, app, spec, inputs):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 120_000)
    sock.connect(f"tcp://{manager.get_binary_addr()}")
    try:
        sock.send_multipart(binary.encode_request(1, app, spec.input_type, [x.tobytes() for x in inputs]))
        resp = binary.decode_response(sock.recv_multipart())
    finally:
        sock.close()
    assert resp.statuses == bytes(len(inputs)), [bytes(o) for o in resp.outputs]
    return [bytes(o) for o in resp.outputs]


def deploy(manager, name, slo_micros=120_000_000):
    spec = get_model_spec(name)
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.register_application(name, spec.input_type.api_name, "TIMEOUT", slo_micros)
    conn.deploy_model(name, "1", spec.input_type.api_name, f"clipper-bench/{name}", num_replicas=1, batch_size=4)
    conn.link_model_to_app(name, name)
    return spec


@pytest.mark.parametrize("name", ["kpca-svm", "lgbm"])
def test_served_classifier_answers_what_the_model_answers_in_process(name, models_dir, manager_factory):
    manager = manager_factory(container_args=["--models_dir", str(models_dir)])
    spec = deploy(manager, name)
    inputs = spec.make_inputs(6, seed=3)
    served = query_binary(manager, name, spec, inputs)
    local = spec.build(ModelOptions(models_dir=str(models_dir))).predict(inputs)
    assert served == local
    assert all(o.decode().isdigit() for o in served)


@pytest.mark.parametrize("framework, backend", [("torch", None), ("keras", "tensorflow"), ("keras", "torch")])
@pytest.mark.parametrize("name, width", [("vgg", 4096), ("inception", 2048)])
def test_image_models_serve_features_of_the_right_shape(name, width, framework, backend, manager_factory,
                                                        monkeypatch):
    if backend is None:
        monkeypatch.delenv("KERAS_BACKEND", raising=False)
    else:  # Keras on TensorFlow (its default, as the original driver used) and on PyTorch
        monkeypatch.setenv("KERAS_BACKEND", backend)
    manager = manager_factory(container_args=["--framework", framework])
    spec = deploy(manager, name)
    image = spec.make_inputs(1, seed=1)
    assert image[0].dtype == np.uint8 and image[0].size == spec.input_size
    (out,) = query_binary(manager, name, spec, image)
    features = decode_features(out)
    assert features.shape == (width,)
    assert np.isfinite(features).all() and features.std() > 0


def test_torch_features_are_seeded_and_follow_precision():
    spec = get_model_spec("inception")
    image = spec.make_inputs(2, seed=2)
    a = decode_features(spec.build(ModelOptions(seed=5)).predict(image)[1])
    b = decode_features(spec.build(ModelOptions(seed=5)).predict(image)[1])
    c = decode_features(spec.build(ModelOptions(seed=6)).predict(image)[1])
    bf16 = decode_features(spec.build(ModelOptions(seed=5, precision="bf16")).predict(image)[1])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a, c)
    # bf16 keeps about 3 significant digits: close to fp32, not equal
    assert np.corrcoef(a, bf16)[0, 1] > 0.99 and not np.array_equal(a, bf16)


def test_build_models_writes_a_manifest(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "clipper_bench", "build-models", "--models_dir", str(tmp_path),
         "--kpca_train_rows", "200", "--kpca_components", "8", "--lgbm_train_rows", "200", "--lgbm_trees", "5"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    kpca, lgbm = manifest["models"]["kpca-svm"], manifest["models"]["lgbm"]
    assert kpca["train_rows"] == 200 and kpca["components"] == 8 and kpca["input_shape"] == [4096]
    assert lgbm["trees"] == 5 and lgbm["leaves"] == 31 and lgbm["input_shape"] == [2048]
    assert kpca["libraries"]["scikit-learn"] and lgbm["libraries"]["lightgbm"]
    assert kpca["seed"] == 0 and (tmp_path / kpca["artifact"]).exists() and (tmp_path / lgbm["artifact"]).exists()


def test_a_model_that_is_not_built_says_how_to_build_it(tmp_path, manager_factory):
    from clipper_admin.exceptions import ClipperException

    manager = manager_factory(container_args=["--models_dir", str(tmp_path / "empty")])
    conn = ClipperConnection(manager)
    conn.start_clipper()
    with pytest.raises(ClipperException, match="run clipper-bench build-models"):
        conn.deploy_model("lgbm", "1", "floats", "clipper-bench/lgbm", num_replicas=1)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="CUDA graphs need an NVIDIA GPU")
@pytest.mark.parametrize("name", ["inception", "vgg"])
def test_cuda_graphs_answer_what_eager_pytorch_answers_at_every_batch_size(name):
    spec = get_model_spec(name)
    eager = spec.build(ModelOptions(precision="bf16"))
    graphs = spec.build(ModelOptions(precision="bf16", cuda_graphs="on"))
    pool = spec.make_inputs(9, seed=3)
    for size in (1, 3, 8, 2, 9):  # new buckets, a smaller one again, a partly filled one
        want = np.stack([decode_features(o) for o in eager.predict(pool[:size])])
        got = np.stack([decode_features(o) for o in graphs.predict(pool[:size])])
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0.05, atol=0.05 * float(np.abs(want).max()))
    assert sorted(graphs._graphs.graphs) == [1, 2, 4, 8, 16]
    # batches submitted back to back share a graph's buffers in stream order, not at once
    handles = [graphs.submit(pool[k:k + 3]) for k in range(2)]
    outs = [np.stack([decode_features(o) for o in graphs.finish(h)]) for h in handles]
    for k, out in enumerate(outs):
        want = np.stack([decode_features(o) for o in eager.predict(pool[k:k + 3])])
        np.testing.assert_allclose(out, want, rtol=0.05, atol=0.05 * float(np.abs(want).max()))


def test_cuda_graphs_without_a_gpu_are_refused_with_the_fix():
    if _cuda_available():
        pytest.skip("this machine has a GPU")
    pytest.importorskip("torch")
    with pytest.raises(Exception, match="--cuda_graphs on needs a GPU"):
        get_model_spec("vgg").build(ModelOptions(cuda_graphs="on"))


@pytest.mark.parametrize("width", [3, 2048, 4096, 5])  # 4 x width bytes is 0, 2 and 1 mod 3
def test_features_are_base64_encoded_where_they_are_computed_exactly_as_python_would(width):
    torch = pytest.importorskip("torch")
    import base64

    from clipper_bench.containers.models.image import base64_rows, base64_width, split_rows

    features = torch.randn(7, width) * 1e3
    rows = split_rows(base64_rows(torch, features).numpy())
    assert rows == [base64.b64encode(r.numpy().astype("<f4").tobytes()) for r in features]
    assert all(len(r) == base64_width(width) for r in rows)
    np.testing.assert_array_equal(decode_features(rows[2]), features[2].numpy())
