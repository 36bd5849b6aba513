"""A container whose model overlaps batches takes the next batch before answering the last, and
still answers every batch, in order, with its own outputs."""

from __future__ import annotations

import threading
import time

import requests
from clipper_admin import ClipperConnection

from clipper_bench.containers.models.base import Model
from clipper_bench.containers.runner import Container, ContainerSettings


class OverlappingModel(Model):
    """Each batch 'computes' for 50 ms after submit; records how many were in flight at once."""

    overlaps_batches = True

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0

    def submit(self, inputs):
        time.sleep(0.01)  # a GPU replica's submit copies the images into pinned memory: it takes a while
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        return time.monotonic() + 0.05, [str(x[0]).encode() for x in inputs]

    def ready(self, handle) -> bool:
        return time.monotonic() >= handle[0]

    def finish(self, handle):
        time.sleep(max(0.0, handle[0] - time.monotonic()))
        self.in_flight -= 1
        return handle[1]

    def predict(self, inputs):
        return self.finish(self.submit(inputs))


def test_overlapping_model_gets_the_next_batch_early_and_answers_all_in_order(manager_factory):
    manager = manager_factory(batches_in_flight=2)
    conn = ClipperConnection(manager)
    conn.start_clipper()
    conn.register_application("app", "doubles", "TIMEOUT", 20_000_000)
    conn.register_model("m", "1", "doubles", batch_size=2)
    conn.link_model_to_app("app", "m")
    model = OverlappingModel()
    container = Container(model, ContainerSettings("m", "1", "127.0.0.1", manager.rpc_port))
    thread = threading.Thread(target=container.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://{manager.get_query_addr()}/app/predict"
        body = {"input_batch": [[float(i)] for i in range(12)]}
        answers = requests.post(url, json=body, timeout=30).json()["batch_predictions"]
        assert [a["output"] for a in answers] == [float(i) for i in range(12)]
        assert not any(a["default"] for a in answers)
        assert model.most_in_flight == 2  # the next batch was started before the last was answered
        assert 6 <= container.batches <= 12  # batches of at most 2 (the first may go alone)
    finally:
        container.stop()
        thread.join(5)
