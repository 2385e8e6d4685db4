"""A bundle whose manifest `task` is not a task name, or names another task than its config.yaml, is refused with
the field named, by `load` and by `serve` alike (serve reads the manifest's task, load the config's)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard import bundle, loader
from modelyard.cli import app
from modelyard.errors import BundleError
from modelyard.serving.app import create_app


def _with_task(source: Path, tmp_path: Path, task) -> Path:
    """A copy of `source` whose manifest names `task`, resealed so every checksum still matches."""
    path = tmp_path / "edited"
    shutil.copytree(source, path)
    manifest = json.loads((path / bundle.MANIFEST).read_text())
    bundle.seal(path, {**manifest, "task": task})
    return path


@pytest.mark.parametrize("task", [["x"], 5, None])
def test_a_manifest_task_that_is_not_a_name_is_refused_naming_the_field(tfidf_bundle, tmp_path, task):
    path = _with_task(tfidf_bundle, tmp_path, task)
    for refuse in (loader.load, loader.check, create_app):
        with pytest.raises(BundleError, match=r"modelyard\.json: field 'task' must be a task name"):
            refuse(str(path))


def test_a_manifest_task_other_than_the_config_task_is_refused_naming_both(tfidf_bundle, tmp_path):
    path = _with_task(tfidf_bundle, tmp_path, "image_classification")
    for refuse in (loader.load, loader.check, create_app):
        with pytest.raises(BundleError, match=r"'image_classification'.*config\.yaml's task 'text_classification'"):
            refuse(str(path))


def test_serve_stops_with_exit_code_1_on_a_list_task(tfidf_bundle, tmp_path):
    result = CliRunner().invoke(app, ["serve", str(_with_task(tfidf_bundle, tmp_path, ["x"])), "--port", "18222"])
    assert result.exit_code == 1 and isinstance(result.exception, BundleError), result.output
