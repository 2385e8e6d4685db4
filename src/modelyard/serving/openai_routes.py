"""OpenAI-compatible generation: POST /v1/completions and /v1/chat/completions, `stream: true` as SSE, and
GET /v1/models (the one model served). Every answer is logged under the response's `id` (a completion of several
prompts: `ID.INDEX` per choice; `"store": false` keeps the request's text out of the log), so `/v1/feedback` can
rate or correct it.

The official `openai` client works against `base_url=http://HOST:PORT/v1`. Concurrent requests are decoded
together by one `GenerationBatcher` per loaded model. Beyond OpenAI's fields, `top_k` and
`repetition_penalty` are accepted; `logprobs` (anything but false), `top_logprobs` and the OpenAI fields that would
change the answer (`echo`, `best_of`, `logit_bias`, penalties, `tools`...; see _UNSUPPORTED) are refused (400),
not ignored. Chat completions take OpenAI's `response_format` (`json_object`, or `json_schema` with a schema):
decoding is masked so the answer is JSON valid against the schema (see `modelyard.generation.structured`); an
unenforceable or unsatisfiable schema is a 400 naming the keyword. If `max_tokens` runs out first, the finish reason
is "length" and the content may be cut-off JSON, as with OpenAI.

A non-streaming request is stopped when its client disconnects, and past the server's --timeout with a 504, so an
abandoned generation does not hold up the next requests (a stream stops when its client stops reading).
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard import model_thread
from modelyard.errors import UserError
from modelyard.generation.batcher import GenerationBatcher, GenerationQueueFullError
from modelyard.generation.engine import Event
from modelyard.generation.engine import Request as GenRequest
from modelyard.generation.structured import JsonConstraint, SchemaError, violation
from modelyard.monitoring.prediction_log import PredictionRecord
from modelyard.serving.dependencies import get_service
from modelyard.serving.errors import CLIENT_CLOSED, ERROR_TYPES, ServingError, describe_validation
from modelyard.serving.schemas import STORE_DESCRIPTION
from modelyard.serving.security import require_api_key
from modelyard.serving.service import ModelService

DISCONNECT_POLL_S = 0.5  # how often a non-streaming request checks that its client is still connected

router = APIRouter(prefix="/v1", tags=["generation"], dependencies=[Depends(require_api_key)])


# OpenAI fields this server does not implement that would change the answer: a request that sets one to anything
# but its value that changes nothing is refused (400), never silently ignored. Others (user, metadata) are ignored.
_UNSUPPORTED: dict[str, tuple[list[Any], str]] = {
    "echo": ([False], "the prompt is not echoed"),
    "best_of": ([1], "one candidate is generated per prompt"),
    "suffix": ([""], "insertion is not supported"),
    "logit_bias": ([{}], "token biases are not supported"),
    "frequency_penalty": ([0], "use repetition_penalty instead"),
    "presence_penalty": ([0], "use repetition_penalty instead"),
    "tools": ([[]], "tool calls are not supported"),
    "functions": ([[]], "function calls are not supported"),
    "response_format": ([{"type": "text"}], "only /v1/chat/completions constrains the answer to JSON"),
}


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send fields we do not use (user, logprobs: null...)

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    repetition_penalty: float | None = Field(None, gt=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per prompt")
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    logprobs: bool | int | None = Field(None, description="not supported: a request asking for them is refused")
    top_logprobs: int | None = Field(None, description="not supported: a request asking for them is refused")

    def options(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "stop": self.stop,
            "seed": self.seed,
        }

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionRequest(SamplingFields):
    prompt: str | list[str] = Field(..., description="one prompt, or several decoded together")
    store: bool = Field(True, description=STORE_DESCRIPTION)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "text"
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = ""

    def plain(self) -> dict[str, str]:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = "response"
    description: str | None = None
    json_schema: dict[str, Any] = Field(..., alias="schema", description="the JSON schema the answer must satisfy")
    strict: bool | None = Field(None, description="accepted for compatibility: the schema is always enforced")


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None

    def plain(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class ChatRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    store: bool = Field(True, description=STORE_DESCRIPTION)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = Field(None, description="json_object or json_schema: constrained JSON")


def _text_only(messages: list[ChatMessage]) -> None:
    """422 naming the first non-text content part (an image, audio): the model would answer without it."""
    for i, message in enumerate(messages):
        for j, part in enumerate(message.content if isinstance(message.content, list) else []):
            if part.type != "text":
                raise ServingError(
                    422, f"messages.{i}.content.{j}: a {part.type!r} part; this model reads only text parts"
                )


def _batcher(request: Request, service: ModelService) -> GenerationBatcher:
    """The generation batcher of the loaded model, started on first use."""
    learner = service.model.learner
    generator = getattr(learner, "generator", None)
    if generator is None:
        raise ServingError(404, "this model does not generate text; use /v1/predict")
    current = getattr(request.app.state, "generation_batcher", None)
    if current is None or current.generator is not generator:
        settings = service.settings
        current = GenerationBatcher(
            generator,
            max_batch_size=min(settings.max_batch_size, 16),
            max_wait_ms=max(settings.max_wait_ms, 5.0),
            max_queue=settings.max_queue,
            call=model_thread.call,
        )
        request.app.state.generation_batcher = current
    return current


def _constraint(service: ModelService, body: ChatRequest) -> JsonConstraint | None:
    """The token mask for the request's response_format; 400 naming what cannot be enforced."""
    if body.response_format is None:
        return None
    if body.stop and body.response_format.type != "text":
        raise ServingError(400, "stop sequences cannot be combined with a JSON response_format (they cut the JSON)")
    try:
        return service.model.learner.generator.constraint(body.response_format.plain())
    except SchemaError as err:
        raise ServingError(400, str(err)) from None


def _check_json(constraint: JsonConstraint | None, text: str, finish_reason: str | None) -> None:
    """A constrained answer that stopped (not cut by max_tokens) must validate: a 422 naming why rather than
    invalid JSON handed out as a finished answer (the mask could not continue it: the schema could not be met)."""
    if constraint is not None and finish_reason == "stop":
        problem = violation(constraint.schema, text)
        if problem:
            raise ServingError(
                422, f"response_format: the answer could not be completed to match the schema ({problem})"
            )


def _requests(
    service: ModelService,
    prompts: list[Any],
    fields: SamplingFields,
    max_tokens: int | None,
    constraint: JsonConstraint | None = None,
) -> list[GenRequest]:
    """The generation requests of `prompts` (strings, or one chat's messages); 422 naming the field for a prompt
    over --max-text-chars, a chat over --max-messages, or one too long (in tokens) for the model's context, all
    before anything is queued."""
    generator = service.model.learner.generator
    resolved = _sampling(generator, fields, max_tokens)
    settings = service.settings
    requests = []
    for i, p in enumerate(prompts):
        chat = not isinstance(p, str)  # a conversation: its messages' text counts, not their JSON
        field = "messages" if chat else "prompt" if len(prompts) == 1 else f"prompt.{i}"
        if chat and len(p) > settings.max_messages:
            raise ServingError(422, f"{field}: {len(p)} messages; the limit is {settings.max_messages}")
        size = sum(len(m["content"]) for m in p) if chat else len(p)
        if size > settings.max_text_chars:
            raise ServingError(422, f"{field}: {size} characters of text; the limit is {settings.max_text_chars}")
        try:
            requests.append(GenRequest(generator.prompt_ids(p), resolved, constraint))
        except UserError as err:
            raise ServingError(422, f"{field}: {err.message}") from None
    return requests


def _sampling(generator: Any, fields: SamplingFields, max_tokens: int | None) -> Any:
    """The generator's options from a request's sampling fields (400 for log-probabilities, which are not
    returned; 422 naming the field as the client sent it)."""
    for name in ("logprobs", "top_logprobs"):  # `logprobs: 0` asks for the chosen token's: only false is "none"
        if getattr(fields, name) is not None and getattr(fields, name) is not False:
            raise ServingError(400, f"{name}: this server does not return token log-probabilities; leave it unset")
    for name, value in (fields.model_extra or {}).items():
        if name in _UNSUPPORTED and not _changes_nothing(value, _UNSUPPORTED[name][0]):
            raise ServingError(400, f"{name}: not supported by this server ({_UNSUPPORTED[name][1]}); leave it unset")
    options = fields.options() | ({"max_new_tokens": max_tokens} if max_tokens else {})
    try:
        return generator.options(**options)
    except ValidationError as err:
        sent = "max_completion_tokens" if max_tokens else "max_tokens"  # the client's name for max_new_tokens
        errors = [{**e, "loc": [sent if part == "max_new_tokens" else part for part in e["loc"]]} for e in err.errors()]
        raise ServingError(422, describe_validation(errors)) from None


def _changes_nothing(value: Any, neutral: list[Any]) -> bool:
    """`value` is null or one of the `neutral` values (false is not 0 here, nor 0 false)."""
    return value is None or any(value == n and isinstance(value, bool) == isinstance(n, bool) for n in neutral)


def _submit(batcher: GenerationBatcher, requests: list[GenRequest]) -> asyncio.Queue:
    """Queue `requests` with the batcher (503 when it is full); their events arrive on the returned queue."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[int, Event | BaseException]] = asyncio.Queue()
    try:
        for i, req in enumerate(requests):
            batcher.submit(req, lambda item, i=i: loop.call_soon_threadsafe(events.put_nowait, (i, item)))
    except GenerationQueueFullError as err:
        for req in requests:
            req.cancelled = True
        raise ServingError(503, str(err), {"Retry-After": "1"}) from None
    return events


class _ClientGone(Exception):
    """The client of a non-streaming request disconnected: nobody is waiting for its answer."""


class _Watch:
    """Checks at most every DISCONNECT_POLL_S, between events and while none comes, that the client of a
    non-streaming request is still there (a streaming response learns that from its failed writes; a non-streaming
    one would otherwise decode to the end for nobody)."""

    def __init__(self, http: Request | None) -> None:
        self.http = http
        self.due = time.monotonic() + DISCONNECT_POLL_S

    async def next(self, events: asyncio.Queue) -> tuple[int, Event | BaseException]:
        """The next event; _ClientGone when the client disconnected first."""
        if self.http is None:
            return await events.get()
        while True:
            if time.monotonic() >= self.due:
                if await self.http.is_disconnected():
                    raise _ClientGone
                self.due = time.monotonic() + DISCONNECT_POLL_S
            try:
                return await asyncio.wait_for(events.get(), max(0.0, self.due - time.monotonic()))
            except TimeoutError:
                continue


async def _events(
    events: asyncio.Queue, requests: list[GenRequest], http: Request | None = None
) -> AsyncIterator[Event]:
    """Events of all `requests` as the worker produces them; abandoned requests are cancelled."""
    pending, watch = set(range(len(requests))), _Watch(http)
    try:
        while pending:
            i, item = await watch.next(events)
            if isinstance(item, BaseException):
                raise ServingError(500, "generation failed")
            item.index = i
            if item.finish_reason:
                pending.discard(i)
            yield item
    finally:
        for req in requests:
            req.cancelled = True  # no-op for finished ones; frees the batch slot of abandoned ones


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


async def _collect(
    events: asyncio.Queue, requests: list[GenRequest], http: Request | None = None, timeout_s: float | None = None
) -> list[dict[str, Any]] | None:
    """Whole answers of `requests`, or None when `http`'s client disconnected first; 504 past `timeout_s` (the
    server's --timeout). Either way the requests are cancelled, so their batch slots go to the next requests."""
    out = [{"text": "", "finish_reason": None, "prompt": len(r.prompt_ids), "completion": 0} for r in requests]
    try:
        async with asyncio.timeout(timeout_s):
            async for event in _events(events, requests, http):
                out[event.index]["text"] += event.text
                if event.finish_reason:
                    out[event.index].update(finish_reason=event.finish_reason, completion=event.completion_tokens)
    except TimeoutError:
        raise ServingError(504, f"generation took longer than {timeout_s:g} s; it was stopped") from None
    except _ClientGone:
        return None
    return out


async def _guarded(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """Once streaming has begun the status is sent: a failure becomes a last `error` event."""
    try:
        async for chunk in chunks:
            yield chunk
    except ServingError as err:
        yield _sse({"error": {"type": ERROR_TYPES.get(err.status, "internal_error"), "message": err.message}})


def _stream(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        _guarded(chunks),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _log_answer(
    service: ModelService,
    ident: str,
    given: list[dict[str, str]] | str,
    text: str,
    started: float,
    store: bool,
    details: dict[str, Any] | None = None,
) -> None:
    """An answer in the prediction log under the response's id, so `/v1/feedback` can rate or correct it: `given`
    is a chat's messages or a completion's prompt (logged as /v1/predict logs one); `details` join the logged
    output (an assistant's citations)."""
    if service.log is not None:
        latency_ms = (time.perf_counter() - started) * 1000
        output = {"text": text, **(details or {})}
        logged = {"messages": given} if isinstance(given, list) else given
        record = PredictionRecord(ident, time.time(), service.name, service.version, logged, output, latency_ms, store)
        service.log.append([record])


def _model_entry(service: ModelService) -> dict[str, Any]:
    created = service.model.manifest.get("created")
    return {
        "id": service.name,
        "object": "model",
        "created": int(datetime.fromisoformat(created).timestamp()) if created else 0,
        "owned_by": "modelyard",
    }


@router.get("/models", summary="The model served here (OpenAI-compatible list)")
async def list_models(service: ModelService = Depends(get_service)) -> dict[str, Any]:
    return {"object": "list", "data": [_model_entry(service)]}


@router.get("/models/{model_id}", summary="The model served here, by name (OpenAI-compatible)")
async def retrieve_model(model_id: str, service: ModelService = Depends(get_service)) -> dict[str, Any]:
    if model_id != service.name:
        raise ServingError(404, f"no model named '{model_id}' is served here; this server serves '{service.name}'")
    return _model_entry(service)


@router.post("/completions", summary="Continue a prompt (OpenAI-compatible; stream: true for SSE)")
async def completions(body: CompletionRequest, request: Request, service: ModelService = Depends(get_service)):
    started = time.perf_counter()
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts:
        raise ServingError(422, "prompt: give at least one prompt")
    if len(prompts) > service.settings.max_inputs:
        raise ServingError(422, f"prompt: {len(prompts)} prompts; at most {service.settings.max_inputs} per request")
    batcher = _batcher(request, service)
    requests = _requests(service, prompts, body, None)
    events = _submit(batcher, requests)
    ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    head = {"id": ident, "object": "text_completion", "created": created, "model": service.name}

    def log(index: int, text: str) -> None:
        logged_id = ident if len(prompts) == 1 else f"{ident}.{index}"
        _log_answer(service, logged_id, prompts[index], text, started, body.store)

    if not body.stream:
        done = await _collect(events, requests, request, service.settings.timeout_s)
        if done is None:
            return Response(status_code=CLIENT_CLOSED)
        for i, d in enumerate(done):
            log(i, d["text"])
        choices = [
            {"index": i, "text": d["text"], "finish_reason": d["finish_reason"], "logprobs": None}
            for i, d in enumerate(done)
        ]
        return {
            **head,
            "choices": choices,
            "usage": _usage(sum(d["prompt"] for d in done), sum(d["completion"] for d in done)),
        }

    async def chunks() -> AsyncIterator[str]:
        used, texts = [0] * len(requests), [""] * len(requests)
        async for e in _events(events, requests):
            used[e.index], texts[e.index] = e.completion_tokens, texts[e.index] + e.text
            if e.finish_reason:
                log(e.index, texts[e.index])
            choice = {"index": e.index, "text": e.text, "finish_reason": e.finish_reason, "logprobs": None}
            yield _sse({**head, "choices": [choice]})
        if body.include_usage:
            yield _sse({**head, "choices": [], "usage": _usage(sum(len(r.prompt_ids) for r in requests), sum(used))})
        yield _sse("[DONE]")

    return _stream(chunks())


@router.post("/chat/completions", summary="Answer a conversation (OpenAI-compatible; stream: true for SSE)")
async def chat_completions(body: ChatRequest, request: Request, service: ModelService = Depends(get_service)):
    started = time.perf_counter()
    _text_only(body.messages)
    batcher = _batcher(request, service)
    constraint = await asyncio.to_thread(_constraint, service, body)  # the first one builds the vocabulary table
    messages = [[m.plain() for m in body.messages]]
    requests = _requests(service, messages, body, body.max_completion_tokens, constraint)
    events = _submit(batcher, requests)
    ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    head = {"id": ident, "object": "chat.completion", "created": created, "model": service.name}
    if not body.stream:
        collected = await _collect(events, requests, request, service.settings.timeout_s)
        if collected is None:
            return Response(status_code=CLIENT_CLOSED)
        (done,) = collected
        _check_json(constraint, done["text"], done["finish_reason"])
        _log_answer(service, ident, messages[0], done["text"], started, body.store)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": done["text"]},
            "finish_reason": done["finish_reason"],
            "logprobs": None,
        }
        return {**head, "choices": [choice], "usage": _usage(done["prompt"], done["completion"])}

    head["object"] = "chat.completion.chunk"

    async def chunks() -> AsyncIterator[str]:
        yield _sse(
            {
                **head,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
            }
        )
        used, text = 0, ""
        async for e in _events(events, requests):
            used, text = e.completion_tokens, text + e.text
            if e.text:
                yield _sse({**head, "choices": [{"index": 0, "delta": {"content": e.text}, "finish_reason": None}]})
            if e.finish_reason:
                _check_json(constraint, text, e.finish_reason)  # an error event, never "stop", on invalid JSON
                _log_answer(service, ident, messages[0], text, started, body.store)
                yield _sse({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": e.finish_reason}]})
        if body.include_usage:
            yield _sse({**head, "choices": [], "usage": _usage(len(requests[0].prompt_ids), used)})
        yield _sse("[DONE]")

    return _stream(chunks())
