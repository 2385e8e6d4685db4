"""/v1/predict (JSON and file uploads) and /v1/model, built per app: the body has the task's shape.

No `from __future__ import annotations` here: FastAPI must see the request model built at startup.
"""

import base64
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import BaseModel

from modelyard.data.blank import is_blank
from modelyard.evaluation.explain import can_explain
from modelyard.protocols import BLANK_TEXT, Text
from modelyard.serving.dependencies import get_service
from modelyard.serving.errors import ServingError
from modelyard.serving.schemas import (
    ERROR_RESPONSES,
    STORE_DESCRIPTION,
    ModelInfo,
    ModelRef,
    PredictResponse,
    input_schema,
)
from modelyard.serving.security import require_api_key
from modelyard.serving.service import ModelService, task_name
from modelyard.serving.settings import ServeSettings


def predict_router(request_model: type[BaseModel], input_type: Any, binary: bool, settings: ServeSettings) -> APIRouter:
    """The prediction routes for one task's input type; `binary` inputs (images) are base64 in JSON."""
    router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES)
    rows = _row_fields(input_type)

    async def answer(
        http: Request,
        service: ModelService,
        inputs: list[Any],
        top_k: int,
        store: bool,
        names: list[str] | None = None,
    ) -> PredictResponse:
        predictions, ids = await service.predict(inputs, top_k, store, names, receive=http.receive)
        return PredictResponse(
            predictions=predictions,
            model=ModelRef(name=service.name, version=service.version),
            prediction_ids=ids,
        )

    @router.post("/predict", summary="Predict a batch of inputs", response_model=PredictResponse)
    async def predict(
        body: request_model,  # type: ignore[valid-type]
        http: Request,
        service: ModelService = Depends(get_service),
    ) -> PredictResponse:
        return await answer(http, service, list(body.inputs), body.top_k, body.store)

    @router.post("/predict/upload", summary="Predict uploaded files (images, or UTF-8 text files)")
    async def predict_upload(
        http: Request,
        files: list[UploadFile] = File(min_length=1, description="one input per file"),
        top_k: int = Form(1, ge=1, le=settings.max_top_k),
        store: bool = Form(True, description=STORE_DESCRIPTION),
        service: ModelService = Depends(get_service),
    ) -> PredictResponse:
        if rows is not None:  # no uploaded file is such a row: one answer, whatever the files are
            raise ServingError(422, f"files: this model takes {rows} rows as JSON on /v1/predict, not uploaded files")
        if len(files) > settings.max_inputs:
            raise ServingError(422, f"files: at most {settings.max_inputs} per request, got {len(files)}")
        names = [_upload_name(f, i) for i, f in enumerate(files)]
        inputs = [await _file_input(f, n, input_type, binary, settings) for f, n in zip(files, names, strict=True)]
        return await answer(http, service, inputs, top_k, store, names)

    @router.get("/model", summary="What is served: name, version, task, labels, input schema")
    async def model_info(service: ModelService = Depends(get_service)) -> ModelInfo:
        learner = service.model.learner
        capabilities = [c for c in ("generate", "embed", "transcribe") if hasattr(learner, c)]
        if can_explain(service.model):
            capabilities.append("explain")
        return ModelInfo(
            name=service.name,
            version=service.version,
            task=task_name(service.model),
            labels=list(service.model.labels) if service.model.labels is not None else None,
            input_schema=input_schema(input_type),
            capabilities=[*capabilities, "upload"] if binary else capabilities,
            limits={
                "max_inputs": settings.max_inputs,
                "max_text_chars": settings.max_text_chars,
                "max_top_k": settings.max_top_k,
                "max_body_bytes": settings.max_body_bytes,
            },
        )

    return router


def _row_fields(input_type: Any) -> str | None:
    """What a structured input (an image+text row, a table row) holds, as `image+text`; None for a single value
    (a text, an image), which an uploaded file can be."""
    schema = input_schema(input_type)
    if schema.get("type") != "object":
        return None
    return "+".join(schema.get("properties", {})) or "table"


def _upload_name(upload: UploadFile, index: int) -> str:
    """An uploaded file as errors name it: the form field the client sent and the file's name, `files.0 (a.png)`."""
    filename = (upload.filename or "").strip()
    return f"files.{index} ({filename[:80]})" if filename else f"files.{index}"


async def _file_input(upload: UploadFile, name: str, input_type: Any, binary: bool, settings: ServeSettings) -> str:
    data = await upload.read()
    if binary:
        return base64.b64encode(data).decode("ascii")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ServingError(422, f"{name}: not UTF-8 text; this model takes text") from None
    if len(text) > settings.max_text_chars:
        raise ServingError(422, f"{name}: {len(text)} characters, over the {settings.max_text_chars} limit")
    if input_type is Text and is_blank(text):
        raise ServingError(422, f"{name}: {BLANK_TEXT}")
    return text
