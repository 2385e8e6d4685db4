"""The micro-batcher alone: merging, order, limits, failures and shutdown, with a recording fake model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelyard.errors import UserError
from modelyard.serving.batcher import (
    Batcher,
    BatcherClosedError,
    PredictionFailedError,
    QueueFullError,
    length_buckets,
)


class RecordingModel:
    """Echoes each input with the top_k it was asked for, remembers every call, optionally slow."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, inputs: list[str], top_k: int) -> list[dict]:
        self.calls.append(list(inputs))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_on in inputs:
            raise ValueError("boom")
        return [{"echo": x, "top_k": top_k} for x in inputs]


def run(coro):
    return asyncio.run(coro)


def test_length_buckets_groups_similar_lengths_and_keeps_every_index():
    lengths = [5, 300, 7, 290, 6, 1000]
    buckets = length_buckets(lengths, min_size=1)
    assert sorted(i for b in buckets for i in b) == list(range(6))
    assert [sorted(b) for b in buckets] == [[0, 2, 4], [1, 3], [5]]


def test_length_buckets_keep_small_groups_together_rather_than_run_tiny_passes():
    assert len(length_buckets([5, 300, 7, 290, 6, 1000], min_size=8)) == 1
    assert [len(b) for b in length_buckets([10] * 8 + [500] * 8, min_size=8)] == [8, 8]


@pytest.mark.parametrize("split", [True, False], ids=["cut by length", "model groups lengths itself"])
def test_a_mixed_length_batch_is_cut_by_length_unless_the_model_groups_lengths_itself(split):
    model = RecordingModel(delay=0.02)
    texts = ["short"] * 8 + ["a much longer text " * 20] * 8

    async def scenario():
        batcher = Batcher(model, max_batch_size=32, max_wait_ms=50, split_by_length=split)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([t]) for t in texts))
        await batcher.close()
        return answers

    answers = run(scenario())
    assert [a[0]["echo"] for a in answers] == texts
    assert sorted(len(call) for call in model.calls) == ([8, 8] if split else [16])


def test_concurrent_requests_share_one_forward_pass():
    model = RecordingModel(delay=0.02)

    async def scenario():
        batcher = Batcher(model, max_batch_size=32, max_wait_ms=20)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([f"text {i}"]) for i in range(8)))
        await batcher.close()
        return answers

    answers = run(scenario())
    assert [a[0]["echo"] for a in answers] == [f"text {i}" for i in range(8)]
    assert len(model.calls) == 1 and len(model.calls[0]) == 8


def test_prediction_runs_off_the_event_loop_thread():
    model = RecordingModel()

    async def scenario():
        batcher = Batcher(model)
        batcher.start()
        await batcher.submit(["a"])
        await batcher.close()

    run(scenario())
    assert model.threads and model.threads == {"modelyard-model_0"}  # the one model thread


def test_max_batch_size_one_runs_every_input_alone():
    model = RecordingModel()

    async def scenario():
        batcher = Batcher(model, max_batch_size=1, max_wait_ms=50)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([f"t{i}", f"u{i}"]) for i in range(3)))
        await batcher.close()
        return answers

    answers = run(scenario())
    assert [len(a) for a in answers] == [2, 2, 2]
    assert all(len(call) == 1 for call in model.calls) and len(model.calls) == 6


def test_batches_never_exceed_max_batch_size_inputs():
    model = RecordingModel(delay=0.01)

    async def scenario():
        batcher = Batcher(model, max_batch_size=4, max_wait_ms=20)
        batcher.start()
        await asyncio.gather(*(batcher.submit(["a", "b", "c"]) for _ in range(5)))
        await batcher.close()

    run(scenario())
    assert max(len(call) for call in model.calls) <= 4
    assert sum(len(call) for call in model.calls) == 15


def test_different_top_k_in_one_batch_each_get_their_own():
    model = RecordingModel(delay=0.01)

    async def scenario():
        batcher = Batcher(model, max_batch_size=8, max_wait_ms=30)
        batcher.start()
        answers = await asyncio.gather(batcher.submit(["x"], top_k=1), batcher.submit(["y"], top_k=3))
        await batcher.close()
        return answers

    first, second = run(scenario())
    assert first[0]["top_k"] == 1 and second[0]["top_k"] == 3


def test_full_queue_refuses_new_work():
    model = RecordingModel(delay=0.2)

    async def scenario():
        batcher = Batcher(model, max_batch_size=1, max_wait_ms=0, max_queue=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["a"]))
        await asyncio.sleep(0.05)  # the worker is busy with "a"
        queued = asyncio.ensure_future(batcher.submit(["b", "c"]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError):
            await batcher.submit(["d"])
        await asyncio.gather(first, queued)
        await batcher.close()

    run(scenario())


def test_a_request_larger_than_the_whole_queue_is_refused_as_too_large_not_busy():
    async def scenario():
        batcher = Batcher(RecordingModel(), max_queue=10)
        batcher.start()
        with pytest.raises(UserError, match="20 in one request; this server queues at most 10"):
            await batcher.submit([str(i) for i in range(20)])
        await batcher.close()

    run(scenario())


def test_an_abandoned_request_frees_its_queue_slots_at_once_and_is_never_run():
    model = RecordingModel(delay=0.2)

    async def scenario():
        batcher = Batcher(model, max_batch_size=1, max_wait_ms=0, max_queue=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["a"]))
        await asyncio.sleep(0.05)  # the worker is busy with "a"
        abandoned = asyncio.ensure_future(batcher.submit(["b", "c"]))
        await asyncio.sleep(0)
        abandoned.cancel()  # as when its client disconnects
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        assert batcher.pending == 0
        assert await batcher.submit(["d", "e"]) == [{"echo": "d", "top_k": 1}, {"echo": "e", "top_k": 1}]
        await first
        await batcher.close()

    run(scenario())
    assert model.calls == [["a"], ["d"], ["e"]]


def test_a_failing_request_does_not_fail_the_others_in_its_batch():
    model = RecordingModel(delay=0.01, fail_on="bad")

    async def scenario():
        batcher = Batcher(model, max_batch_size=8, max_wait_ms=30)
        batcher.start()
        results = await asyncio.gather(batcher.submit(["ok"]), batcher.submit(["bad"]), return_exceptions=True)
        await batcher.close()
        return results

    good, bad = run(scenario())
    assert good == [{"echo": "ok", "top_k": 1}]
    assert isinstance(bad, PredictionFailedError)


def test_user_errors_from_the_model_reach_the_caller_unchanged():
    def predict(inputs, top_k):
        raise UserError("input 0 is not an image")

    async def scenario():
        batcher = Batcher(predict)
        batcher.start()
        try:
            await batcher.submit(["x"])
        finally:
            await batcher.close()

    with pytest.raises(UserError, match="not an image"):
        run(scenario())


def test_close_finishes_queued_work_and_then_refuses_more():
    model = RecordingModel(delay=0.05)

    async def scenario():
        batcher = Batcher(model, max_batch_size=1, max_wait_ms=0)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([f"q{i}"])) for i in range(3)]
        await asyncio.sleep(0)
        await batcher.close()
        assert [a[0]["echo"] for a in await asyncio.gather(*pending)] == ["q0", "q1", "q2"]
        with pytest.raises(BatcherClosedError):
            await batcher.submit(["late"])

    run(scenario())
    assert len(model.calls) == 3
