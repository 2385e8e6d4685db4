"""`predict --input FILE` on a detector: image paths read from the file's `image` (or `path`) column, relative to
the file's folder, and rows whose image cannot be used named and skipped while the rest are scored."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modelyard.errors import DataError
from modelyard.learners.detection import DetectorLearner
from modelyard.predict_io import predict_rows, read_inputs
from modelyard.tasks.object_detection import DetectionModelConfig, ObjectDetectionTask

IMAGE = Path(__file__).resolve().parents[2] / "examples" / "data" / "raccoon_mini" / "images" / "raccoon-106.jpg"


class _Detector:
    """What predict_io needs of a loaded detection bundle: an untrained 64 px detector is enough here."""

    def __init__(self) -> None:
        self.task = ObjectDetectionTask()
        self.config = SimpleNamespace(data=None)
        self.learner = DetectorLearner.create(["raccoon"], DetectionModelConfig(trunk="random", image_size=64))

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        return self.learner.predict(inputs, top_k=top_k)


@pytest.mark.parametrize("column", ["image", "path"])
def test_a_detector_scores_the_usable_rows_of_a_file_and_names_the_others(tmp_path, monkeypatch, column):
    folder = tmp_path / "lists"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(IMAGE, folder / "sub" / "good.jpg")
    (folder / "sub" / "bad.jpg").write_bytes(b"not an image")
    rows = folder / "rows.csv"
    rows.write_text(f"{column},id\nsub/good.jpg,1\nsub/missing.jpg,2\nsub/bad.jpg,3\n")
    monkeypatch.chdir(tmp_path)  # not the file's folder: its paths must not be read from here
    warnings: list[str] = []
    model = _Detector()
    inputs, frame = read_inputs(model, None, Path("lists/rows.csv"), warnings.append)
    scored, predictions = predict_rows(model, inputs, frame, Path("lists/rows.csv"), 1, warnings.append)
    assert scored["id"].tolist() == ["1"] and len(predictions) == 1 and "detections" in predictions[0]
    assert len(warnings) == 1 and "lists/rows.csv: 2 rows not scored" in warnings[0]
    assert "line 3: lists/sub/missing.jpg: unreadable" in warnings[0] and "line 4: lists/sub/bad.jpg" in warnings[0]


def test_a_file_without_an_image_column_is_refused_naming_its_columns(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("photo,id\na.jpg,1\n")
    with pytest.raises(DataError, match=r"rows.csv: no column 'image' or 'path'; it has: photo, id"):
        read_inputs(_Detector(), None, rows, print)
