"""What `train` prints about the backbone of a task that has no candidates to choose among."""

from __future__ import annotations

from modelyard.config import Config
from modelyard.pipeline import backbone_candidates
from modelyard.tasks import config_from_dict, get_task


def _config(model: dict) -> Config:
    raw = {"name": "a", "task": "assistant", "data": {"train": "docs"}, "model": model}
    return config_from_dict(raw, "a.yaml")


def test_train_says_what_chose_a_backbone_the_task_does_not_choose_among_candidates():
    task = get_task("assistant")
    named = backbone_candidates(task, _config({"backbone": "smollm2-135m"}), None)
    assert named == [("smollm2-135m", "named in the config")]
    assert backbone_candidates(task, _config({}), None) == [("smollm2-135m", "the task's default")]
