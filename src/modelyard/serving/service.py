"""The model behind the routes: warm-up, input parsing, batched prediction and logging in one place."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.types import Receive

from modelyard import cancellation
from modelyard.errors import UserError
from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, model_version
from modelyard.privacy import Redactor, redactor_for
from modelyard.protocols import DescribesInputs, LogsOutputs, MeasuresInputs, check_top_k
from modelyard.serving.batcher import Batcher, BatcherClosedError, PredictionFailedError, QueueFullError
from modelyard.serving.errors import CLIENT_CLOSED, ServingError
from modelyard.serving.metrics import ServerMetrics
from modelyard.serving.settings import ServeSettings


def _jsonable(item: Any) -> Any:
    """Structured inputs (pydantic models) are logged as the JSON the client sent."""
    return item.model_dump(mode="json") if isinstance(item, BaseModel) else item


def task_name(model: Any) -> str:
    task = model.task
    return task if isinstance(task, str) else task.name


@dataclass
class ModelService:
    """What the routes call; created by the app's lifespan once the model is loaded."""

    model: Any
    settings: ServeSettings
    metrics: ServerMetrics
    name: str = ""
    version: str = ""
    log: PredictionLogWriter | None = None
    batcher: Batcher | None = field(default=None, repr=False)
    on_feedback: Callable[[], None] | None = field(default=None, repr=False)  # told after /v1/feedback stores a label
    # told after each answered request (parsed inputs, answers, their log records): the rollout's shadow
    on_answered: Callable[[list[Any], list[Any], list[PredictionRecord]], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or str(self.model.name)
        self.version = self.version or model_version(self.model)
        self.metrics.model.info({"name": self.name, "version": self.version, "task": task_name(self.model)})

    def start(self) -> None:
        self.batcher = Batcher(
            self.model.predict,
            # a learner that gains nothing from batching (Whisper transcribes one recording at a time) caps it,
            # so each answer leaves as soon as it is ready instead of waiting for the whole batch
            max_batch_size=min(self.settings.max_batch_size, getattr(self.model.learner, "max_batch_size", 1 << 30)),
            max_wait_ms=self.settings.max_wait_ms,
            max_queue=self.settings.max_queue,
            on_batch=self.metrics.observe_batch,
            split_by_length=not getattr(self.model.learner, "buckets_lengths", False),
        )
        self.batcher.start()
        self.metrics.queue_depth.set_function(lambda: self.batcher.pending)
        if self.settings.log_predictions:
            privacy = getattr(getattr(self.model, "config", None), "privacy", None)
            inputs, outputs = redactor_for(privacy, "log"), redactor_for(privacy, "monitoring")
            for redactor in (inputs, outputs):
                _warm(redactor)
            self.log = PredictionLogWriter(
                log_inputs=self.settings.log_inputs, redact_inputs=inputs, redact_outputs=outputs
            )

    async def stop(self) -> None:
        """Finish every queued and running prediction, then flush the log."""
        if self.batcher is not None:
            await self.batcher.close()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)

    def warm_up(self, example: Any) -> None:
        """One real prediction before /readyz says yes, so the first user does not pay for lazy setup."""
        self.model.predict([self.parse(example, "example")], 1)

    def parse(self, item: Any, field: str) -> Any:
        """The learner's own decoding/validation of one input (e.g. base64 images), `field` naming it in the
        request (`inputs.3`); ValueError (an OverflowError too: JSON allows any integer) means 422."""
        parse = getattr(self.model.learner, "parse_input", None)
        if parse is None:
            return item
        try:
            return parse(item)
        except (ValueError, OverflowError, UserError) as err:
            raise ServingError(422, f"{field}: {err}") from None
        except MemoryError:
            raise ServingError(413, f"{field}: too large to decode in this server's memory; send less") from None

    def _parse_all(self, inputs: list[Any], names: Sequence[str], abandoned: threading.Event) -> list[Any]:
        """Every input parsed (off the event loop); measured inputs (audio) are first added up from their headers,
        so a request over `max_audio_seconds` is refused before any decoding. Stops once `abandoned` is set."""
        learner = self.model.learner
        if isinstance(learner, MeasuresInputs):
            total = 0.0
            for item, name in zip(inputs, names, strict=True):
                try:
                    total += learner.input_seconds(item)
                except ValueError as err:
                    raise ServingError(422, f"{name}: {err}") from None
            limit = self.settings.max_audio_seconds
            if total > limit:
                what = names[0] if len(names) == 1 else "inputs"
                message = f"{what}: {total:,.0f} s of audio in one request; the limit is {limit:g} s"
                raise ServingError(422, f"{message} (--max-audio-seconds)")
        with cancellation.watching(abandoned.is_set):
            return [self.parse(item, name) for item, name in zip(inputs, names, strict=True)]

    async def predict(
        self,
        inputs: list[Any],
        top_k: int,
        store: bool = True,
        names: Sequence[str] | None = None,
        receive: Receive | None = None,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Predictions and their log ids; `store=False` keeps the inputs out of the prediction log entirely.
        `names` are the inputs' fields in errors (default `inputs.0`, `inputs.1`, ...). The timeout covers the
        decoding of the inputs too; past it, decoding and prediction stop at their next check (`cancellation`).
        With the request's `receive`, a client that disconnects first gets nothing done, logged or counted (499)."""
        assert self.batcher is not None, "start() runs in the lifespan before any request"
        started = time.perf_counter()
        names = list(names) if names is not None else [f"inputs.{i}" for i in range(len(inputs))]
        abandoned = threading.Event()
        try:
            check_top_k(self.model, top_k, "top_k")
            # unlike wait_for, asyncio.timeout needs no extra task per request
            async with _stopped_if_disconnected(receive), asyncio.timeout(self.settings.timeout_s):
                if hasattr(self.model.learner, "parse_input"):  # decoding (e.g. images) stays off the event loop
                    parsed = await asyncio.to_thread(self._parse_all, inputs, names, abandoned)
                else:
                    parsed = list(inputs)
                predictions = await self.batcher.submit(parsed, top_k)
        except QueueFullError as err:
            raise ServingError(503, f"server busy: {err}; retry shortly", {"Retry-After": "1"}) from None
        except BatcherClosedError:
            raise ServingError(503, "server is shutting down", {"Retry-After": "5"}) from None
        except TimeoutError:
            raise ServingError(
                504,
                f"prediction took longer than {self.settings.timeout_s:g} s; for long inputs (recordings of minutes) "
                "start the server with a larger `--timeout`",
            ) from None
        except UserError as err:
            raise ServingError(422, err.message) from None
        except PredictionFailedError:
            raise ServingError(500, "prediction failed") from None
        finally:
            abandoned.set()  # a decoding thread still running after a timeout stops at its next block
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.predictions.inc(len(predictions))  # answered inputs only: not those of a 504 or a 499
        ids = [uuid.uuid4().hex for _ in inputs]
        if self.log is not None or self.on_answered is not None:
            records = self._records(ids, inputs, parsed, predictions, latency_ms, store)
            if self.log is not None:
                self.log.append(records)
            if self.on_answered is not None:
                self.on_answered(parsed, predictions, records)
        return predictions, ids

    def _records(
        self,
        ids: list[str],
        inputs: list[Any],
        parsed: list[Any],
        predictions: list[Any],
        latency_ms: float,
        store: bool,
    ) -> list[PredictionRecord]:
        """A request's prediction-log records: inputs and outputs as they may be logged (before redaction)."""
        now = time.time()
        learner = self.model.learner
        if isinstance(learner, DescribesInputs):  # e.g. audio: a few numbers are logged, never the recording
            logged = [learner.describe_input(item) for item in parsed]
        else:
            logged = [_jsonable(item) for item in inputs]
        reshaped = isinstance(learner, LogsOutputs)
        outputs = [learner.logged_output(p) for p in predictions] if reshaped else predictions
        return [
            PredictionRecord(pid, now, self.name, _version(prediction, self.version), item, output, latency_ms, store)
            for pid, item, prediction, output in zip(ids, logged, predictions, outputs, strict=True)
        ]


@asynccontextmanager
async def _stopped_if_disconnected(receive: Receive | None) -> AsyncIterator[None]:
    """Cancels the work inside when the client disconnects (the body is read, so `receive` has nothing else to
    say): its queued inputs leave the batcher unrun and a running batch stops at its next check; 499 instead."""
    if receive is None:
        yield
        return
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if not gone:  # the server itself is stopping the request
            raise
        task.uncancel()
        raise ServingError(CLIENT_CLOSED, "the client closed the connection before its answer was ready") from None
    finally:
        watcher.cancel()


def _warm(redactor: Redactor | None) -> None:
    """Load the detectors (the name model, its checksum) at startup: a missing model fails here, not on the
    log writer's thread where it would drop rows."""
    if redactor is not None:
        redactor.redact("warm-up: Jane Doe, jane@example.com")


def _version(prediction: Any, default: str) -> str:
    """The version that answered: a rollout marks each answer, otherwise the served version."""
    return str(prediction.get("version", default)) if isinstance(prediction, dict) else default
