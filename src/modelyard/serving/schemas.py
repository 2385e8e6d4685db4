"""Request and response models. The predict request is built from the task's `Input` type at startup, so
`/docs` shows the real shape of one input and the server's limits."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, create_model

from modelyard.protocols import reads_text
from modelyard.serving.settings import ServeSettings


class ErrorDetail(BaseModel):
    type: str = Field(description="a stable, machine-readable kind, e.g. invalid_input, unauthorized")
    message: str = Field(description="what went wrong and what to do, for people")


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "malformed request body (e.g. not UTF-8)",
        401: "missing or wrong API key",
        413: "request body too large",
        422: "invalid input",
        503: "busy or not ready: retry after the Retry-After seconds",
        504: "prediction timed out",
    }.items()
}


class ModelRef(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    predictions: list[dict[str, Any]] = Field(description="one answer per input, in order")
    model: ModelRef
    prediction_ids: list[str] = Field(description="one id per input; send it back with /v1/feedback")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    label: str | int | float | bool | list[Any] | dict[str, Any] | None = Field(
        None, description="the true answer for that prediction (a class name for classifiers)"
    )
    rating: Literal["up", "down"] | None = Field(None, description="chat models: thumbs up or down on the answer")
    corrected: str | None = Field(
        None, min_length=1, description="chat models: the answer it should have given (preference tuning's chosen)"
    )


class FeedbackResponse(BaseModel):
    prediction_id: str
    recorded: bool


class ModelInfo(BaseModel):
    name: str
    version: str
    task: str
    labels: list[Any] | None
    input_schema: dict[str, Any]
    capabilities: list[str] = Field(description="optional features: e.g. generate, explain, upload")
    limits: dict[str, int]


def is_binary_input(input_type: Any) -> bool:
    """Inputs whose JSON schema says base64 (images) arrive as file uploads too, and have no text limit."""
    schema = input_schema(input_type)
    return schema.get("contentEncoding") == "base64" or schema.get("format") in {"base64", "binary"}


def input_schema(input_type: Any) -> dict[str, Any]:
    return TypeAdapter(input_type).json_schema()


STORE_DESCRIPTION = (
    "false: the inputs of this request are never stored (the prediction log keeps the answer, its id for "
    "feedback and the latency, but neither the input nor its hash); true: stored with personal data redacted"
)


def _text_limited(input_type: type[BaseModel], limit: int) -> type[BaseModel]:
    """A structured input whose text fields (an image+text row's text) hold at most `limit` characters, as a plain
    text input does; base64 fields (its image) are not text and keep no such limit."""
    fields = {}
    for name, field in input_type.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if field.annotation is str and extra.get("contentEncoding") != "base64":
            fields[name] = (Annotated[str, StringConstraints(max_length=limit)], field)
    return create_model(input_type.__name__, __base__=input_type, **fields) if fields else input_type


def predict_request_model(input_type: Any, settings: ServeSettings) -> type[BaseModel]:
    """`{"inputs": [Input, ...], "top_k": int, "store": bool}` with the server's limits baked into the schema."""
    item = input_type
    if reads_text(input_type):  # the limit first (pydantic words it for a string), then a Text's own check
        checks = getattr(input_type, "__metadata__", ())
        item = Annotated[str, StringConstraints(max_length=settings.max_text_chars), *checks]
    elif isinstance(input_type, type) and issubclass(input_type, BaseModel):
        item = _text_limited(input_type, settings.max_text_chars)
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        inputs=(
            list[item],
            Field(
                min_length=1,
                max_length=settings.max_inputs,
                validation_alias=AliasChoices("inputs", "rows"),  # "rows": table rows, as tabular clients say
                description="the items to predict, in order (also accepted as `rows`)",
            ),
        ),
        top_k=(int, Field(1, ge=1, le=settings.max_top_k, description="answers per input, best first")),
        store=(bool, Field(True, description=STORE_DESCRIPTION)),
    )
