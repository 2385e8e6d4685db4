"""/v1/feedback: the true label for a served prediction, stored beside it in the prediction log."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from modelyard.monitoring.prediction_log import has_prediction, record_feedback
from modelyard.serving.dependencies import get_service
from modelyard.serving.errors import ServingError
from modelyard.serving.schemas import ERROR_RESPONSES, ErrorBody, FeedbackRequest, FeedbackResponse
from modelyard.serving.security import require_api_key
from modelyard.serving.service import ModelService

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
    folder = log.path.parent

    async def logged(action, *args) -> bool:
        """Try now; on a miss, wait for the log writer to commit what it holds (the id may be that fresh)."""
        if await asyncio.to_thread(action, body.prediction_id, *args, folder):
            return True
        await asyncio.to_thread(log.flush)
        return await asyncio.to_thread(action, body.prediction_id, *args, folder)

    labels = service.model.labels
    if labels and body.label not in labels:
        if not await logged(has_prediction):
            raise ServingError(404, f"no logged prediction has id {body.prediction_id!r}")
        shown = repr(body.label)[:80]
        raise ServingError(422, f"label: {shown} is not one of the model's {len(labels)} labels")
    if not await logged(record_feedback, body.label):
        raise ServingError(404, f"no logged prediction has id {body.prediction_id!r}")
    if service.on_feedback is not None:
        service.on_feedback()
    return FeedbackResponse(prediction_id=body.prediction_id, recorded=True)
