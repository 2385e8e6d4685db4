"""POST /v1/chat/completions for an assistant bundle: OpenAI's shape, answered from retrieved passages.

Beyond OpenAI's response, the message and the response carry `citations` ([{file, section, chunk_id, score}])
and `assistant` ({kind: answer | declined | handover, intent, retrieval_score}); the official client keeps
unknown fields, so `response.citations` reads them. The answer text also ends with a `Sources:` line.

Every answer (declines and hand-overs too) is logged under the response's id like a plain chat completion: the
conversation it answered, the answer without its sources line, the citations and the ids and digest of the passages
the chat model saw, so `/v1/feedback` can rate or correct it and rated answers become preference pairs on the grounded
prompt (`retrain`). `"store": false` keeps the conversation out of the log.

Memory: with `session_id` (or OpenAI's `user`) the server keeps the session's last messages (its answers without
their sources line) and puts them before the request's; send only the new message then. Without one, `messages` is
the whole conversation, as with OpenAI. The request's system (or developer) messages follow `model.system_prompt`;
they are not remembered.

Size: each message of a request has at most `max_text_chars` characters (checked before any retrieval). The prompt
built around it from retrieved passages and remembered turns is not held to that limit: it is the server's own text,
and a limit on it would refuse answerable questions over long passages or lock a session with long turns.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import Field

from modelyard import model_thread
from modelyard.errors import UserError
from modelyard.generation.engine import Request as GenRequest
from modelyard.serving.dependencies import get_service
from modelyard.serving.errors import ServingError
from modelyard.serving.openai_routes import (
    CLIENT_CLOSED,
    ChatRequest,
    _batcher,
    _collect,
    _events,
    _log_answer,
    _sampling,
    _sse,
    _stream,
    _submit,
    _text_only,
    _usage,
    list_models,
    retrieve_model,
)
from modelyard.serving.security import require_api_key
from modelyard.serving.service import ModelService
from modelyard.serving.sessions import SessionStore

router = APIRouter(prefix="/v1", tags=["assistant"], dependencies=[Depends(require_api_key)])
router.add_api_route("/models", list_models, methods=["GET"], summary="The assistant served here (OpenAI list)")
router.add_api_route("/models/{model_id}", retrieve_model, methods=["GET"], summary="The assistant, by name")


class AssistantChatRequest(ChatRequest):
    session_id: str | None = Field(
        None, min_length=1, max_length=128, description="keeps the conversation server-side; send only new messages"
    )
    user: str | None = Field(None, max_length=128, description="OpenAI's end-user id; a session key when no session_id")


def _sessions(request: Request, service: ModelService) -> SessionStore:
    store = getattr(request.app.state, "assistant_sessions", None)
    if store is None:
        memory = service.model.learner.options.memory
        store = SessionStore(memory.turns, memory.sessions, memory.idle_minutes * 60)
        request.app.state.assistant_sessions = store
    return store


def _check_sizes(messages: list[dict[str, str]], limit: int) -> None:
    """Each message of the request within the server's text limit (characters, as /v1/predict counts them)."""
    for i, message in enumerate(messages):
        if len(message["content"]) > limit:
            raise ServingError(422, f"messages.{i}.content: {len(message['content'])} characters; at most {limit}")


def _generation(service: ModelService, prompt: list[dict[str, str]], body: AssistantChatRequest) -> list[GenRequest]:
    """The chat model's request for the grounded prompt with the body's sampling settings (422 when invalid)."""
    generator = service.model.learner.generator
    options = _sampling(generator, body, body.max_completion_tokens)
    try:
        return [GenRequest(generator.prompt_ids(prompt), options, None)]
    except UserError as err:  # the retrieved passages and the conversation do not fit the model's context
        raise ServingError(422, f"messages: {err.message}") from None


def _extras(reply: Any) -> dict[str, Any]:
    return {"citations": reply.citations, "assistant": reply.info()}


def _logged(content: str, final: Any, generated: str, planned: Any) -> tuple[str, dict[str, Any]]:
    """The answer as logged: the model's words without the sources line (what a correction replaces), the
    citations and kind beside it, and when the chat model was prompted (also for an answer it turned into "I don't
    know") the `grounding` it saw: chunk ids and a digest of the passages, never the user's words."""
    text = generated.strip() if final.kind == "answer" else content
    grounding = {"grounding": planned.grounding} if planned.grounding else {}
    return text, {"citations": final.citations, "assistant": final.info(), **grounding}


@router.post("/chat/completions", summary="Answer from the documents, with citations (OpenAI-compatible)")
async def chat_completions(body: AssistantChatRequest, request: Request, service: ModelService = Depends(get_service)):
    started = time.perf_counter()
    learner = service.model.learner
    if body.response_format is not None and body.response_format.type != "text":
        raise ServingError(400, "an assistant answers in text with citations; response_format is not supported")
    _text_only(body.messages)
    session = body.session_id or body.user
    store = _sessions(request, service)
    new = [m.plain() for m in body.messages]
    if new[-1]["role"] != "user":
        raise ServingError(422, "messages: the last message must be the user's")
    _check_sizes(new, service.settings.max_text_chars)
    conversation = (store.history(session) if session else []) + new
    reply = await model_thread.run(learner.plan, conversation)
    ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    head = {"id": ident, "object": "chat.completion", "created": created, "model": service.name}
    requests = []
    if reply.kind == "answer":
        requests = _generation(service, reply.prompt, body)
        events = _submit(_batcher(request, service), requests)

    def remember(logged: str) -> None:
        """The turn a session keeps: the answer as logged, without its sources line (small models copy the file
        names they see in earlier turns)."""
        if session:
            store.remember(session, [new[-1], {"role": "assistant", "content": logged}])

    if not body.stream:
        done = None
        if requests:  # a client that hangs up stops its generation; --timeout bounds it (504)
            collected = await _collect(events, requests, request, service.settings.timeout_s)
            if collected is None:
                return Response(status_code=CLIENT_CLOSED)
            done = collected[0]
        content, final = learner.finish(reply, done["text"] if done else "")
        logged, details = _logged(content, final, done["text"] if done else "", reply)
        remember(logged)
        _log_answer(service, ident, conversation, logged, started, body.store, details)
        message = {"role": "assistant", "content": content, **_extras(final)}
        choice = {"index": 0, "message": message, "finish_reason": done["finish_reason"] if done else "stop"}
        usage = _usage(done["prompt"], done["completion"]) if done else _usage(0, 0)
        return {**head, "choices": [choice], "usage": usage, **_extras(final), "session_id": session}

    head["object"] = "chat.completion.chunk"

    async def chunks() -> AsyncIterator[str]:
        first = {"role": "assistant", "content": ""}
        yield _sse({**head, "choices": [{"index": 0, "delta": first, "finish_reason": None}]})
        text, finish, used = "", "stop", 0
        if requests:
            async for e in _events(events, requests):
                used, text = e.completion_tokens, text + e.text
                if e.text:
                    yield _sse({**head, "choices": [{"index": 0, "delta": {"content": e.text}, "finish_reason": None}]})
                finish = e.finish_reason or finish
        content, final = learner.finish(reply, text)
        tail = content  # a decline or hand-over: nothing was generated
        if requests:  # the generated text went out already: only the sources line follows
            tail = content[len(text.strip()) :] if final.kind == "answer" else ""
        logged, details = _logged(content, final, text, reply)
        remember(logged)
        _log_answer(service, ident, conversation, logged, started, body.store, details)
        last = {"index": 0, "delta": {"content": tail} if tail else {}, "finish_reason": finish}
        yield _sse({**head, "choices": [last], **_extras(final), "session_id": session})
        if body.include_usage:
            prompt = len(requests[0].prompt_ids) if requests else 0
            yield _sse({**head, "choices": [], "usage": _usage(prompt, used)})
        yield _sse("[DONE]")

    return _stream(chunks())
