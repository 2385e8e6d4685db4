"""/v1/feedback: the true label for a served prediction (for a chat answer: a thumbs up/down and/or a corrected
answer, see monitoring.preferences; for a multi-label model a list of labels; for an entity extractor a list of
{start, end, label} character spans of the logged text), stored beside it in the prediction log."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends

from modelyard.errors import UserError
from modelyard.monitoring.feedback import model_label, unknown_label
from modelyard.monitoring.prediction_log import has_prediction, read_input, record_feedback
from modelyard.monitoring.preferences import chat_feedback, label_as_chat_feedback
from modelyard.serving.dependencies import get_service
from modelyard.serving.errors import ServingError
from modelyard.serving.schemas import ERROR_RESPONSES, ErrorBody, FeedbackRequest, FeedbackResponse
from modelyard.serving.security import require_api_key
from modelyard.serving.service import ModelService
from modelyard.state import StateUnavailable

PEER_COMMIT_S = 1.0  # a peer's log writer commits within ~GATHER_S of its answer; under load, a little later

router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES)


@router.post(
    "/feedback",
    summary="Record the true label of a prediction",
    responses={404: {"model": ErrorBody, "description": "unknown prediction id"}},
)
async def feedback(body: FeedbackRequest, service: ModelService = Depends(get_service)) -> FeedbackResponse:
    log = service.log
    if log is None:
        raise ServingError(404, "this server does not log predictions, so it cannot store feedback")
    folder = log.directory

    async def logged(action, *args) -> bool:
        """Try now; on a miss, wait for the log writer to commit what it holds (the id may be that fresh), then
        give another process's writer (a worker or replica sharing the store) PEER_COMMIT_S to commit it."""
        if await asyncio.to_thread(action, body.prediction_id, *args, folder):
            return True
        await asyncio.to_thread(log.flush)
        deadline = time.monotonic() + PEER_COMMIT_S
        while not await asyncio.to_thread(action, body.prediction_id, *args, folder):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    labels = service.model.labels
    label = body.label
    if not getattr(service.model.learner, "takes_feedback", True):  # stored, it would wait for a use that never comes
        if not await logged(has_prediction):
            raise ServingError(404, f"no logged prediction has id {body.prediction_id!r}")
        raise ServingError(
            422,
            "feedback: a text generator trained from scratch (gpt-scratch) learns nothing from feedback; ratings and "
            "corrected answers are taken for pretrained chat models (e.g. smollm2-135m with LoRA), which retrain tunes",
        )
    if getattr(service.model.learner, "generator", None) is not None:  # a chat answer: rated and/or corrected
        try:
            if label is not None and body.rating is None and body.corrected is None:
                label = label_as_chat_feedback(label)
            else:
                label = chat_feedback(body.rating, body.corrected)
        except ValueError as err:
            raise ServingError(422, str(err)) from None
    elif label is None:
        raise ServingError(422, "label: required (rating and corrected are for chat models)")
    task = service.model.task  # a name for models that are not bundles (service.task_name)
    check = None if isinstance(task, str) else getattr(task, "feedback_label", None)  # a regressor: a number
    if check is not None:
        try:
            label = check(service.model.config, label)
            example = getattr(task, "feedback_example", None)
            if example is not None and isinstance(label, list):  # entity spans must lie inside the logged text
                if not await logged(has_prediction):
                    raise ServingError(404, f"no logged prediction has id {body.prediction_id!r}")
                logged_input = await asyncio.to_thread(read_input, body.prediction_id, folder)
                if logged_input is not None:
                    example(service.model.config, logged_input, label)
        except StateUnavailable:
            raise  # answered 503 by the app's handler, not taken for a bad label
        except UserError as err:
            if not await logged(has_prediction):
                raise ServingError(404, f"no logged prediction has id {body.prediction_id!r}") from None
            raise ServingError(422, f"label: {err.message}") from None
    if labels and check is None:  # stored as `feedback import` stores it: the model's label text, 1.0 as "1"
        label = model_label(label, labels)
    if labels and (unknown := unknown_label(label, labels, check is not None)) is not None:
        if not await logged(has_prediction):
            raise ServingError(404, f"no logged prediction has id {body.prediction_id!r}")
        shown = repr(unknown)[:80]
        raise ServingError(422, f"label: {shown} is not one of the model's {len(labels)} labels")
    if not await logged(record_feedback, label):
        raise ServingError(404, f"no logged prediction has id {body.prediction_id!r}")
    if service.on_feedback is not None:
        service.on_feedback()
    return FeedbackResponse(prediction_id=body.prediction_id, recorded=True)
