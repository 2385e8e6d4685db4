"""Drift of an image classifier's traffic: a tiny real cnn-scratch bundle, images sent to the server, `monitor`."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from image_helpers import colour_squares, train_squares
from PIL import Image, ImageOps
from serving_helpers import serving

import modelyard
from modelyard.drift import reference
from modelyard.monitoring.monitor import monitor
from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, model_version


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> modelyard.Model:
    folder = tmp_path_factory.mktemp("squares")
    colour_squares(folder / "data", per_class=10)
    return train_squares(folder)


def squares_base64(count: int, inverted: bool = False) -> list[str]:
    """PNGs like the training ones (reddish and bluish squares), or their colour-inverted greyscale, as base64."""
    rng = np.random.default_rng(1)
    encoded = []
    for i in range(count):
        pixels = rng.integers(0, 80, (40, 48, 3), dtype=np.uint8)
        pixels[..., 2 * (i % 2)] += 150
        image = Image.fromarray(pixels)
        if inverted:
            image = ImageOps.invert(image.convert("L")).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    return encoded


def test_an_image_classifier_carries_predicted_labels_and_embeddings_of_its_own_files(squares):
    found = reference.read(squares.path)
    profile = found.profile
    assert profile["inputs"] == {"kind": "files"} and "lengths" not in profile
    assert profile["labels"]["distribution"] == {"blue": 0.5, "red": 0.5}
    assert sum(profile["predicted"]["counts"].values()) == profile["sample"]["rows"] == 20
    assert profile["sample"]["from"][0] == "validation (4)"  # files the weights never saw come first
    assert found.embeddings.shape == (20, profile["embeddings"]["dim"]) and found.centroids is not None


def test_monitor_flags_inverted_greyscale_images_sent_to_the_server(squares):
    with serving(squares.path) as client:
        assert client.post("/v1/predict", json={"inputs": squares_base64(36, inverted=True)}).status_code == 200
    drift = monitor(str(squares.path))["drift"]
    assert drift["detected"] is True and drift["embedding_mmd"]["detected"]
    assert drift["embedding_clusters"]["n_window"] == 36 and "statistic" in drift["predicted_labels"]
    assert "input_length" not in drift


def test_images_like_the_training_ones_are_not_drift(squares):
    with serving(squares.path) as client:
        assert client.post("/v1/predict", json={"inputs": squares_base64(40)}).status_code == 200
    drift = monitor(str(squares.path))["drift"]
    assert drift["detected"] is False and drift["reason"] == "no test exceeds its threshold"
    assert drift["embedding_mmd"]["p_value"] > 0.01


def test_without_logged_images_drift_is_judged_on_predicted_labels_skewed_to_one_label(squares):
    counts = reference.read(squares.path).profile["predicted"]["counts"]
    rare = min(counts, key=counts.get)  # the label the model predicted least on its own held-out files
    version = model_version(squares)
    writer = PredictionLogWriter()
    writer.append(  # clients that asked for their images not to be stored
        [PredictionRecord(f"p{i}", 1000.0 + i, "squares", version, "", {"label": rare}, 1.0, False) for i in range(40)]
    )
    writer.close()
    drift = monitor(str(squares.path))["drift"]
    assert drift["detected"] is True and drift["reason"] == "drift in predicted_labels"
    assert drift["predicted_labels"]["statistic"] > drift["predicted_labels"]["threshold"]
    assert drift["embedding_mmd"]["skipped"].startswith("0 of the 40 inputs were logged")
