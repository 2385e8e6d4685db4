"""How chat examples and preference pairs become token ids and loss labels (a tiny random Llama with a chat
template whose conversation opens with a default system prompt, as SmolLM2's does)."""

from __future__ import annotations

import pytest
from llm_helpers import save_tiny_chat_llama

from modelyard.learners.lora import IGNORE, CausalLMLearner
from modelyard.learners.preference import PreferenceLearner, encode_pair
from modelyard.tasks.text_generation import GenerationModelConfig

SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}<|system|>be kind<|endoftext|>\n{% endif %}"
    "<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
GREETED = [
    {"role": "assistant", "content": "Hello, how can I help?"},
    {"role": "user", "content": "card lost"},
    {"role": "assistant", "content": "lost card"},
]


@pytest.fixture(scope="module")
def learner(tmp_path_factory) -> CausalLMLearner:
    folder = tmp_path_factory.mktemp("tiny")
    save_tiny_chat_llama(folder, "Hello, how can I help? card lost be kind abcdefghijklmnopqrstuvwxyz\n")
    learner = CausalLMLearner.pretrained(str(folder), GenerationModelConfig(backbone=str(folder), lora=None))
    learner.tokenizer.chat_template = SYSTEM_TEMPLATE
    return learner


def targets(learner: CausalLMLearner, labels: list[int]) -> str:
    return learner.tokenizer.decode([t for t in labels if t != IGNORE])


def test_an_assistant_turn_opening_the_conversation_is_learnt_after_the_templates_opening(learner):
    ids, labels = learner.encode_example({"messages": GREETED})
    assert learner.tokenizer.decode(ids) == learner.tokenizer.apply_chat_template(GREETED, tokenize=False).rstrip()
    assert targets(learner, labels) == "Hello, how can I help?<|endoftext|>lost card<|endoftext|>"


def test_a_lone_assistant_message_is_an_example_to_learn(learner):
    (example,) = learner.dataset([{"messages": GREETED[:1]}], training=True)
    assert targets(learner, example["labels"]) == "Hello, how can I help?<|endoftext|>"
    assert learner.tokenizer.decode(example["input_ids"]).startswith("<|system|>be kind")


def test_a_preference_pair_after_an_assistant_greeting_scores_only_the_final_answers(learner):
    pair = {"messages": GREETED[:2], "chosen": "lost card", "rejected": "card arrival"}
    sides = encode_pair(learner, pair)
    assert targets(learner, sides["chosen"]["labels"]) == "lost card<|endoftext|>"
    assert targets(learner, sides["rejected"]["labels"]) == "card arrival<|endoftext|>"


def test_a_preference_pair_that_exactly_fits_max_length_is_kept_and_one_token_longer_is_not(learner):
    pair = {"messages": GREETED[:2], "chosen": "lost card", "rejected": "card arrival"}
    whole = encode_pair(learner, pair)
    longest = max(len(side["input_ids"]) for side in whole.values())
    options = learner.options
    try:
        learner.options = options.model_copy(update={"max_length": longest})
        assert encode_pair(learner, pair) == whole
        learner.options = options.model_copy(update={"max_length": longest - 1})
        assert encode_pair(learner, pair) is None
    finally:
        learner.options = options


def test_the_pairs_counted_as_trained_on_leave_out_those_longer_than_max_length(learner):
    short = {"messages": GREETED[1:2], "chosen": "lost card", "rejected": "be kind"}
    long = {"messages": [{"role": "user", "content": "card lost " * 100}], "chosen": "lost card", "rejected": "no"}
    trainer = PreferenceLearner(learner, beta=0.1)
    assert len(trainer.dataset([short, long, short], training=True)) == 2
    assert (trainer.trained, trainer.skipped) == (2, 1)
