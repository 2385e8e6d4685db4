"""Concurrent generation requests decoded together: one worker thread, one forward pass per step for all.

The worker takes the first waiting request, then whatever else arrives within `max_wait_ms` (up to
`max_batch_size`), and decodes them as one batch; requests arriving meanwhile form the next batch. Events go
back through each request's `sink` callback (called from the decoding thread), so callers can bridge to asyncio.
A server passes `call` to run each batch's decoding on its one model thread (see `modelyard.model_thread`),
in slices of at most SLICE_S: predictions queued for that thread meanwhile run between two slices, so a long
generation delays them by a slice, not by the whole generation.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from modelyard.generation.engine import Event, Request
from modelyard.generation.generator import TextGenerator

log = logging.getLogger(__name__)
SLICE_S = 0.05  # longest stretch a generation batch holds the model thread before other work gets a turn
Sink = Callable[[Event | BaseException], None]


def _here(fn: Callable[..., bool], /, *args: object) -> bool:
    return fn(*args)


class GenerationQueueFullError(Exception):
    """Too many requests are waiting; the client should retry later."""


@dataclass
class _Job:
    request: Request
    sink: Sink
    answered: bool = False  # an event went out: the request cannot be decoded again


class GenerationBatcher:
    def __init__(
        self,
        generator: TextGenerator,
        max_batch_size: int = 8,
        max_wait_ms: float = 10.0,
        max_queue: int = 256,
        on_batch: Callable[[int, float], None] | None = None,
        call: Callable[..., bool] = _here,
    ) -> None:
        self.generator = generator
        self.call = call  # how a batch's decoding is run: here, or handed to another thread and waited for
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # recent batch sizes, for metrics and tests
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="modelyard-generate", daemon=True)
        self._thread.start()

    def submit(self, request: Request, sink: Sink) -> None:
        if self._jobs.qsize() >= self.max_queue:
            raise GenerationQueueFullError(f"{self._jobs.qsize()} generation requests are already waiting")
        self._jobs.put(_Job(request, sink))

    def close(self) -> None:
        """Finish the running batch and everything queued, then stop the worker."""
        self._jobs.put(None)
        self._thread.join()

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, deadline = [first], time.monotonic() + self.max_wait
        while len(jobs) < self.max_batch_size:
            try:
                job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self._jobs.get()
            if first is None:
                return
            jobs, closing = self._gather(first)
            jobs = [j for j in jobs if not j.request.cancelled]
            if jobs:
                self._decode(jobs)

    def _decode(self, jobs: list[_Job]) -> None:
        self.batch_sizes.append(len(jobs))
        started = time.perf_counter()
        try:
            events = self.generator.run([j.request for j in jobs])  # a lazy iterator: nothing decoded yet
            while self.call(self._slice, jobs, events):
                pass
        except Exception as err:  # the worker lives on
            if len(jobs) > 1 and not any(job.answered for job in jobs):
                # nothing was sent yet: decode each request alone, so one that cannot be decoded fails by itself
                log.warning("a batch of %d generations failed (%s); decoding them one by one", len(jobs), err)
                for job in jobs:
                    self._decode([job])
                return
            log.exception("generation failed")
            for job in jobs:
                job.sink(err)
            return
        if self.on_batch is not None:
            self.on_batch(len(jobs), time.perf_counter() - started)

    @staticmethod
    def _slice(jobs: list[_Job], events: Iterator[Event]) -> bool:
        """Decode for about SLICE_S (through `call`: on the model thread); True while the batch is unfinished."""
        deadline = time.monotonic() + SLICE_S
        for event in events:
            jobs[event.index].answered = True
            jobs[event.index].sink(event)
            if time.monotonic() >= deadline:
                return True
        return False
