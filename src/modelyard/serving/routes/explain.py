"""/v1/explain: attributions for one input (tokens for text classifiers and for one entity of an entity
extractor, a heat-map for image ones), computed off the event loop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from modelyard import model_thread
from modelyard.errors import UserError
from modelyard.evaluation.explain import QUICK_SECONDS, can_explain, explain, unavailable
from modelyard.protocols import reads_text
from modelyard.serving.dependencies import get_service
from modelyard.serving.errors import ServingError
from modelyard.serving.schemas import ERROR_RESPONSES
from modelyard.serving.security import require_api_key
from modelyard.serving.service import ModelService

router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES)


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Annotated[str, StringConstraints(min_length=1)] | dict[str, Any] = Field(
        description="the text to explain, an image as base64, or a table row (column: value)"
    )
    label: str | None = Field(
        None, description="explain this label instead of the predicted one (entity extractors: an entity type)"
    )


class ExplainResponse(BaseModel):
    tokens: list[str] | None = Field(None, description="text models: the tokens the model read")
    features: list[str] | None = Field(None, description="tabular models: the columns, in `attributions` order")
    reasons_up: list[dict[str, Any]] | None = Field(None, description="tabular: top columns pushing towards `label`")
    reasons_down: list[dict[str, Any]] | None = Field(None, description="tabular: top columns pushing away")
    attributions: list[float] | None = Field(None, description="one per token; positive pushes towards `label`")
    heatmap: str | None = Field(None, description="image models: a PNG (base64) of where the evidence lies")
    entity: dict[str, Any] | None = Field(
        None, description="entity extractors: the explained span (start, end, label, score, text)"
    )
    label: str
    score: float = Field(description="the model's probability for `label`")
    method: str
    output: float = Field(description="the explained output (the label's logit) for this input")
    baseline_output: float = Field(description="the same output for the baseline; attributions sum to the gap")
    converged: bool | None = Field(
        None, description="image models: whether the attributions sum to the gap within 5% (`relative_delta`)"
    )
    relative_delta: float | None = Field(None, description="image models: |attribution sum - gap| / |gap|")
    truncated: bool | None = Field(
        None, description="text classifiers: the text is longer than the model reads; only `tokens` were explained"
    )
    text_tokens: int | None = Field(None, description="when `truncated`: how many tokens the whole text has")
    max_length: int | None = Field(None, description="when `truncated`: the tokens the model reads, specials included")


@router.post("/explain", summary="Which tokens the prediction rests on")
async def explain_input(
    body: ExplainRequest, request: Request, service: ModelService = Depends(get_service)
) -> ExplainResponse:
    if not can_explain(service.model):
        refusal = unavailable(service.model, over_http=True)
        raise ServingError(422, f"{refusal.message}; {refusal.hint}")
    limit = request.app.state.settings.max_text_chars
    if isinstance(body.input, dict) and reads_text(service.model.task.Input):
        raise ServingError(422, "input: this model explains a text (or base64 image), not an object")
    if reads_text(service.model.task.Input) and len(body.input) > limit:
        raise ServingError(422, f"input: {len(body.input)} characters, over the {limit} limit")
    try:
        result = await model_thread.run(  # one try: the model thread answers predictions too
            explain, service.model, service.parse(body.input, "input"), body.label, QUICK_SECONDS
        )
    except UserError as err:
        raise ServingError(422, err.message) from None
    return ExplainResponse(**{k: v for k, v in result.items() if k in ExplainResponse.model_fields})
