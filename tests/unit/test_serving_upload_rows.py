"""`/v1/predict/upload` on a model whose inputs are rows (image+text, a table row): one 422 that names the JSON
route, whatever the files are, instead of a per-file error about text or dictionaries; a file a model cannot read is
named by the form field and file name the client sent."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.learners.detection import DetectorLearner
from modelyard.learners.image import ImageClassifierLearner
from modelyard.learners.multimodal import MultimodalInput
from modelyard.serving.dependencies import get_service
from modelyard.serving.errors import install_error_handlers
from modelyard.serving.metrics import ServerMetrics
from modelyard.serving.routes.predict import predict_router
from modelyard.serving.schemas import is_binary_input, predict_request_model
from modelyard.serving.service import ModelService
from modelyard.serving.settings import ServeSettings
from modelyard.tasks.image_classification import ImageInput, ImageModelConfig
from modelyard.tasks.object_detection import DetectionModelConfig


def _client(input_type: Any) -> TestClient:
    """The prediction routes alone: the refusal comes before any model is asked."""
    settings = ServeSettings()
    app = FastAPI()
    app.state.settings = settings
    install_error_handlers(app)
    request = predict_request_model(input_type, settings)
    app.include_router(predict_router(request, input_type, is_binary_input(input_type), settings))
    app.dependency_overrides[get_service] = lambda: None
    return TestClient(app)


PHOTO = ("photo.jpg", b"\xff\xd8\xff\xe0 not text", "image/jpeg")


@pytest.mark.parametrize("upload", [PHOTO, ("rows.csv", b"image,text\na,b\n", "text/csv")])
def test_an_upload_to_an_image_and_text_model_names_the_json_route(upload):
    reply = _client(MultimodalInput).post("/v1/predict/upload", files=[("files", upload)])
    assert reply.status_code == 422
    assert reply.json()["error"]["message"] == (
        "files: this model takes image+text rows as JSON on /v1/predict, not uploaded files"
    )


def test_an_upload_to_a_table_model_names_the_json_route():
    reply = _client(dict[str, Any]).post("/v1/predict/upload", files=[("files", ("r.csv", b"a,b\n1,2\n", "text/csv"))])
    assert reply.status_code == 422 and "takes table rows as JSON on /v1/predict" in reply.json()["error"]["message"]


@pytest.mark.parametrize("kind", ["detector", "image classifier"])
def test_an_uploaded_file_that_is_not_an_image_is_named_by_its_field_and_file_name(kind):
    """It was named `inputs.0`, a field of the JSON route the client did not use."""
    if kind == "detector":
        learner = DetectorLearner.create(["raccoon"], DetectionModelConfig(trunk="random", image_size=64))
    else:
        learner = ImageClassifierLearner.create("cnn-scratch", ["a", "b"], 16, "none", ImageModelConfig())
    model = SimpleNamespace(learner=learner, name="m", task="image_classification", manifest={"version": "1"})
    service = ModelService(model, ServeSettings(), ServerMetrics())
    service.batcher = SimpleNamespace()  # never reached: the upload is refused while it is decoded
    client = _client(ImageInput)
    client.app.dependency_overrides[get_service] = lambda: service
    upload = [("files", ("notes.txt", b"not a picture", "text/plain"))]
    reply = client.post("/v1/predict/upload", files=upload)
    assert reply.status_code == 422
    assert reply.json()["error"]["message"].startswith("files.0 (notes.txt): not a usable image: ")
