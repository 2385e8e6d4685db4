"""The MLflow pyfunc face of a bundle, as `mlflow models serve` runs it: images come as base64 or bytes, never
as a path on the server, and the logged requirements do not name PyPI's unrelated `modelyard`."""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd
import pytest
from image_helpers import colour_squares, train_squares
from mlflow.exceptions import MlflowException

from modelyard.tracking import store
from modelyard.tracking.runs import log_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny image bundle logged to a fresh store: (bundle path, pyfunc model URI, store URI)."""
    folder = tmp_path_factory.mktemp("squares")
    colour_squares(folder / "data", per_class=6, size=(16, 16))
    bundle = train_squares(folder).path
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELYARD_TRACKING_URI", uri)
        version = log_bundle(bundle)
    return bundle, f"models:/{version.name}/{version.version}", uri


def test_a_path_sent_to_the_pyfunc_model_is_refused_not_read(logged):
    bundle, model_uri, uri = logged
    image = next((bundle.parent / "data" / "red").glob("*.png"))
    with store.fluent(uri) as mlflow:
        pyfunc = mlflow.pyfunc.load_model(model_uri)
        with pytest.raises(MlflowException, match="base64") as err:
            pyfunc.predict(pd.DataFrame({"inputs": [str(image)]}))
        encoded = base64.b64encode(image.read_bytes()).decode("ascii")
        from_text = pyfunc.predict(pd.DataFrame({"inputs": [encoded]}))
        from_bytes = pyfunc.predict([image.read_bytes()])
    assert str(image) not in str(err.value)  # nothing about the server's files goes back to the client
    assert from_text["label"].tolist() == from_bytes["label"].tolist()
    assert from_text["label"].iloc[0] in ("red", "blue")


def test_the_logged_model_needs_no_modelyard_from_pypi_and_carries_its_code(logged):
    _, model_uri, uri = logged
    with store.fluent(uri) as mlflow:
        local = mlflow.artifacts.download_artifacts(model_uri)
    requirements = (Path(local) / "requirements.txt").read_text().split()
    assert not [r for r in requirements if r.split("=")[0].strip().lower() == "modelyard"], requirements
    assert "torch==2.14.1" in requirements
    assert (Path(local) / "code" / "modelyard" / "loader.py").is_file()
