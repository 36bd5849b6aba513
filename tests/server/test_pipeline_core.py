"""The pipeline core alone: fan-out, chaining, answers, ends of branches, conversions."""

import base64
import json

import numpy as np
import pytest

from clipper_bench.protocol.binary import Status
from clipper_bench.protocol.types import InputType
from clipper_bench.server.dispatcher import Query
from clipper_bench.server.pipeline import (
    PipelineApp,
    PipelineQuery,
    PipelineTrace,
    StageInput,
    resize_image,
    to_stage_input,
)

IMG = StageInput(InputType.BYTES, (4, 4, 3))
SMALL = StageInput(InputType.BYTES, (2, 2, 3))
FEATS = StageInput(InputType.FLOATS, (3,))


def two_branches() -> PipelineApp:
    """big (4x4 image) -> fa, small (2x2 image) -> fb: the image_driver_1 shape."""
    return PipelineApp("p", ("big", "small"), {"big": ("fa",), "small": ("fb",), "fa": (), "fb": ()},
                       {"big": IMG, "small": SMALL, "fa": FEATS, "fb": FEATS}, IMG)


class Harness:
    def __init__(self, app):
        self.sent: list[tuple[str, bytes, Query]] = []
        self.answers: list[tuple[Status, bytes]] = []
        self.trace = PipelineTrace()
        self.query = PipelineQuery(app, 7, bytes(range(48)), 10.0, self.submit,
                                   lambda s, o: self.answers.append((s, o)), lambda: 1.0, self.trace)

    def submit(self, stage, data, deadline, on_done):
        q = Query(len(self.sent), data, 0.5, deadline, on_done)
        self.sent.append((stage, data, q))
        return q

    def answer(self, stage, status=Status.OK, output=b""):
        (q,) = [q for s, _, q in self.sent if s == stage and not q.done]
        q.finish(status, output)


def feats(*values):
    return base64.b64encode(np.array(values, "<f4").tobytes())


def test_a_query_fans_out_chains_and_is_answered_when_every_sink_is():
    h = Harness(two_branches())
    h.query.start()
    assert [s for s, _, _ in h.sent] == ["big", "small"]
    assert len(h.sent[1][1]) == 2 * 2 * 3  # resized for the stage that takes the smaller image
    h.answer("big", output=feats(1, 2, 3))
    assert h.sent[-1][0] == "fa" and np.frombuffer(h.sent[-1][1], "<f4").tolist() == [1, 2, 3]
    h.answer("fa", output=b"1")
    assert h.answers == []  # the other branch is still out
    h.answer("small", output=feats(4, 5, 6))
    h.answer("fb", output=b"0")
    ((status, output),) = h.answers
    assert status is Status.OK and json.loads(output) == {"fa": "1", "fb": "0"}
    assert [r.stage for r in h.trace.rows] == ["big", "fa", "small", "fb"]


def test_a_default_from_any_stage_ends_the_query_and_drops_what_is_queued():
    h = Harness(two_branches())
    h.query.start()
    h.answer("big", status=Status.DEFAULT, output=b"TIMEOUT")
    assert h.answers == [(Status.DEFAULT, b"TIMEOUT")]
    small = next(q for s, _, q in h.sent if s == "small")
    assert small.done  # the dispatcher will not send it
    assert "fa" not in [s for s, _, _ in h.sent]


def test_an_answer_that_cannot_feed_the_next_stage_is_an_error_naming_the_edge():
    h = Harness(two_branches())
    h.query.start()
    h.answer("big", output=b"not base64 !")
    ((status, output),) = h.answers
    assert status is Status.ERROR and b"stage big -> fa" in output


def test_conversions():
    assert np.frombuffer(to_stage_input(b"8", StageInput(InputType.DOUBLES, (8,))), "<f8").tolist() == [8.0]
    assert to_stage_input(b"abc", StageInput(InputType.BYTES, (3,))) == b"abc"
    with pytest.raises(ValueError):
        to_stage_input(base64.b64encode(b"12345"), FEATS)
    img = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    small = np.frombuffer(resize_image(img.tobytes(), (4, 4, 3), (2, 2, 3)), np.uint8).reshape(2, 2, 3)
    assert (small == img[::2, ::2]).all()
