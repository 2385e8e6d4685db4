"""`--resume` continues only the run a checkpoint was started with, and a damaged checkpoint is one clear error."""

from __future__ import annotations

import pytest
import torch

from modelyard.errors import ConfigError, UserError
from modelyard.training.checkpoint import load_checkpoint, save_checkpoint

STARTED = {
    "config": {"task": "text_classification", "model": {"hidden_size": 128}, "train": {"epochs": 8}},
    "data": {"train": {"sha256": "a1", "rows": 300}},
}


def parts(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def changed(**train) -> dict:
    config = STARTED["config"]
    return {**STARTED, "config": {**config, "train": {**config["train"], **train}}}


@pytest.fixture
def checkpoints(tmp_path):
    save_checkpoint(tmp_path, *parts(), {"global_step": 10, "history": [], "run": STARTED}, None)
    return tmp_path


def test_resume_refuses_another_config_naming_each_changed_key_before_loading_anything(checkpoints):
    model, optimizer, scheduler = parts(seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    now = changed(epochs=2)
    now["config"]["model"] = {"hidden_size": 64}
    with pytest.raises(ConfigError, match=r"model\.hidden_size \(128 -> 64\), train\.epochs \(8 -> 2\)") as refused:
        load_checkpoint(checkpoints, model, optimizer, scheduler, now)
    assert str(checkpoints / "latest") in str(refused.value) and "without --resume" in refused.value.hint
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_resume_refuses_changed_data(checkpoints):
    now = {**STARTED, "data": {"train": {"sha256": "b2", "rows": 300}}}
    with pytest.raises(ConfigError, match=r"the data's train\.sha256"):
        load_checkpoint(checkpoints, *parts(), now)


def test_resume_accepts_another_checkpoint_cadence(checkpoints):
    progress, _ = load_checkpoint(checkpoints, *parts(), changed(checkpoint_every=50))
    assert progress["global_step"] == 10


@pytest.mark.parametrize("file", ["progress.json", "model.safetensors", "optimizer.pt"])
def test_a_truncated_checkpoint_file_is_one_error_naming_it(checkpoints, file):
    path = checkpoints / "latest" / file
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(UserError, match=f"{path}: unreadable checkpoint") as refused:
        load_checkpoint(checkpoints, *parts(), STARTED)
    assert f"delete {checkpoints}" in refused.value.hint


def test_resume_with_only_an_unfinished_first_checkpoint_says_it_starts_over(tmp_path):
    from modelyard.pipeline import _warn_fresh_start

    (tmp_path / "checkpoints" / ".staging-5").mkdir(parents=True)  # killed while writing its first checkpoint
    said = []
    _warn_fresh_start(tmp_path, ["scratch-transformer"], said.append)
    assert said == [
        f"--resume: {tmp_path / 'checkpoints'} holds no complete checkpoint; training scratch-transformer from the "
        "beginning"
    ]
