"""What `train` prints about the backbone of a task that has no candidates to choose among."""

from __future__ import annotations

from modelyard.config import Config
from modelyard.pipeline import _the_backbone
from modelyard.tasks import config_from_dict


def _config(model: dict) -> Config:
    raw = {"name": "a", "task": "assistant", "data": {"train": "docs"}, "model": model}
    return config_from_dict(raw, "a.yaml")


def test_train_says_what_chose_a_backbone_the_task_does_not_choose_among_candidates():
    assert _the_backbone(_config({"backbone": "smollm2-135m"})) == ("smollm2-135m", "named in the config")
    assert _the_backbone(_config({})) == ("smollm2-135m", "the task's default")
