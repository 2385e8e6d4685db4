"""Adaptive micro-batching: concurrent requests share one forward pass, which runs off the event loop.

One worker task takes the first waiting chunk, then whatever else arrives within `max_wait_ms`, up to
`max_batch_size` inputs; while the model runs, new requests queue up, so batches grow with load on their own.
Texts are sorted and cut into buckets of similar length so short inputs are not padded to the longest one,
unless the model groups them by length itself (`split_by_length=False`): each extra forward pass costs time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelyard import cancellation, model_thread
from modelyard.errors import UserError

log = logging.getLogger(__name__)

PredictFn = Callable[[list[Any], int], list[dict[str, Any]]]


class QueueFullError(Exception):
    """The queue holds `max_queue` inputs already: the client should retry later (503)."""


class BatcherClosedError(Exception):
    """The server is shutting down and takes no new work (503)."""


class PredictionFailedError(Exception):
    """The model raised on this request's inputs; the cause is logged, never sent to the client."""


@dataclass
class _Chunk:
    inputs: list[Any]
    top_k: int
    future: asyncio.Future = field(repr=False)
    waiting: bool = True  # counted in `pending`: neither taken by the worker nor abandoned by its request


def length_buckets(lengths: Sequence[int], ratio: float = 2.0, slack: int = 16, min_size: int = 8) -> list[list[int]]:
    """Indices sorted by length, cut where an input exceeds `ratio` x its bucket's shortest (+ slack), but only
    once the bucket holds `min_size` inputs: padding costs less than a forward pass for a handful of inputs."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    buckets: list[list[int]] = []
    for i in order:
        current = buckets[-1] if buckets else None
        if current and (len(current) < min_size or lengths[i] <= ratio * lengths[current[0]] + slack):
            current.append(i)
        else:
            buckets.append([i])
    return buckets


def _length(item: Any) -> int:
    return len(item) if isinstance(item, str) else 0


class Batcher:
    """Queue of (inputs, future) served by a single worker; `predict` runs on the process's model thread."""

    def __init__(
        self,
        predict: PredictFn,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        on_batch: Callable[[int, float], None] | None = None,
        split_by_length: bool = True,
    ) -> None:
        self.predict = predict
        self.split_by_length = split_by_length
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.pending = 0  # inputs queued, not yet taken by the worker
        self._queue: deque[_Chunk] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="modelyard-batcher")

    async def submit(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        """Queue `inputs` (cut into chunks of at most `max_batch_size`) and wait for their predictions."""
        if self._closed:
            raise BatcherClosedError("the server is shutting down")
        if len(inputs) > self.max_queue:  # never fits, however long the client waits: not a reason to retry
            raise UserError(f"inputs: {len(inputs)} in one request; this server queues at most {self.max_queue}")
        if self.pending + len(inputs) > self.max_queue:
            raise QueueFullError(f"{self.pending} inputs are already waiting (limit {self.max_queue})")
        loop = asyncio.get_running_loop()
        chunks = [
            _Chunk(inputs[i : i + self.max_batch_size], top_k, loop.create_future())
            for i in range(0, len(inputs), self.max_batch_size)
        ]
        self._queue.extend(chunks)
        self.pending += len(inputs)
        self._wakeup.set()
        try:
            if len(chunks) == 1:  # the usual case: wait on the future itself, no gathering task
                return await chunks[0].future
            results = await asyncio.gather(*(c.future for c in chunks))
        except BaseException:  # timed out, or its client disconnected: nobody waits for these answers any more
            for chunk in chunks:
                chunk.future.cancel()
                self._abandon(chunk)
            raise
        return [p for part in results for p in part]

    def _abandon(self, chunk: _Chunk) -> None:
        """Give a waiting chunk's queue slots to the next requests now, not once the worker reaches it."""
        if chunk.waiting:
            chunk.waiting = False
            self.pending -= len(chunk.inputs)

    async def close(self) -> None:
        """Refuse new work, let the worker finish everything queued or running, then stop it."""
        self._closed = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = await self._gather()
            if batch:
                await self._execute(batch)

    async def _gather(self) -> list[_Chunk]:
        """Take chunks until `max_batch_size` inputs, or until `max_wait_ms` passed since the first one."""
        batch: list[_Chunk] = []
        size = 0
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch_size:
            if not self._queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed or self.max_batch_size == 1:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
                continue
            chunk = self._queue[0]
            if chunk.waiting and batch and size + len(chunk.inputs) > self.max_batch_size:
                break
            self._queue.popleft()
            if not chunk.waiting:  # its request timed out or its client left while it waited: never run
                continue
            chunk.waiting = False
            self.pending -= len(chunk.inputs)
            batch.append(chunk)
            size += len(chunk.inputs)
        return batch

    async def _execute(self, batch: list[_Chunk]) -> None:
        started = time.perf_counter()
        try:
            outputs = await model_thread.run(self._predict_batch, batch)
        except cancellation.Cancelled:
            for chunk in batch:  # the abandoned requests get no answer; any other of the batch is run again
                if not chunk.future.done():
                    await self._execute([chunk])
            return
        except Exception as err:
            if len(batch) == 1:
                if not isinstance(err, UserError):
                    log.exception("prediction failed")
                    err = PredictionFailedError("prediction failed")
                _settle(batch[0].future, error=err)
                return
            for chunk in batch:  # isolate the failing request: the others still get answers
                await self._execute([chunk])
            return
        if self.on_batch is not None:
            self.on_batch(sum(len(c.inputs) for c in batch), time.perf_counter() - started)
        for chunk, result in zip(batch, outputs, strict=True):
            _settle(chunk.future, result=result)

    def _predict_batch(self, batch: list[_Chunk]) -> list[list[dict[str, Any]]]:
        """In the predict thread: one call per (top_k, length bucket); answers go back in request order."""
        flat: list[tuple[int, int, Any]] = [(b, i, x) for b, c in enumerate(batch) for i, x in enumerate(c.inputs)]
        outputs: list[list[Any]] = [[None] * len(c.inputs) for c in batch]
        for top_k in sorted({c.top_k for c in batch}):
            group = [item for item in flat if batch[item[0]].top_k == top_k]
            whole = [list(range(len(group)))]
            buckets = length_buckets([_length(x) for _, _, x in group]) if self.split_by_length else whole
            for bucket in buckets:
                items = [group[j] for j in bucket]
                futures = [batch[b].future for b, _, _ in items]
                # read from this thread: a future only turns done while its batch runs when its request gave up
                with cancellation.watching(lambda futures=futures: all(f.done() for f in futures)):
                    predictions = self.predict([x for _, _, x in items], top_k)
                if len(predictions) != len(items):
                    raise RuntimeError(f"predict returned {len(predictions)} answers for {len(items)} inputs")
                for (b, i, _), prediction in zip(items, predictions, strict=True):
                    outputs[b][i] = prediction
        return outputs


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
