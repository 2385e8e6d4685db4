"""LoRA on a local Hugging Face causal LM (a tiny random Llama): adapter and merged bundles, masked chat loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from llm_helpers import tiny_llama_config

import modelyard
from modelyard.errors import ConfigError, DataError
from modelyard.models import lm_tokenizer

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
EXAMPLES = [
    {"messages": [{"role": "user", "content": f"colour of {w}?"}, {"role": "assistant", "content": c}]}
    for w, c in [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black")] * 3
]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    text = "".join(json.dumps(e) for e in EXAMPLES) + "<|system|><|user|><|assistant|>"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=lm_tokenizer.train([text], "char"), eos_token=lm_tokenizer.EOT, pad_token=lm_tokenizer.EOT
    )
    tokenizer.chat_template = TEMPLATE
    config = tiny_llama_config(len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_config(folder, tmp_path, merge: bool, examples: list[dict] = EXAMPLES, **model) -> str:
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    config = {
        "name": "colours",
        "task": "text_generation",
        "data": {"train": "train.jsonl", "split": {"validation": 0.25, "test": 0.0}},
        "model": {
            "backbone": str(folder),
            "lora": {"r": 4, "alpha": 8},
            "merge": merge,
            "generation": {"max_new_tokens": 6, "temperature": 0},
            "decode_weights": "float",  # the same weights decode before and after the reload (int4 rounds)
            **model,
        },
        "train": {"max_steps": 3, "batch_size": 4, "early_stopping": None},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(tmp_path / "c.yaml")


def train(folder, tmp_path, merge: bool, examples: list[dict] = EXAMPLES):
    return modelyard.train(write_config(folder, tmp_path, merge, examples), output=tmp_path / "bundle", quiet=True)


@pytest.fixture(scope="module")
def adapter_model(tiny_llama, tmp_path_factory):
    return train(tiny_llama, tmp_path_factory.mktemp("adapter"), merge=False)


def test_the_loss_covers_only_the_assistant_answer_and_its_end_of_turn(adapter_model):
    learner = adapter_model.learner
    ids, labels = learner.encode_example(EXAMPLES[0])
    assert learner.tokenizer.decode([t for t in labels if t != -100]) == "blue<|endoftext|>"
    assert learner.tokenizer.decode(ids).startswith("<|user|>colour of sky?")


def test_an_adapter_bundle_reloads_onto_its_base_and_generates_the_same_text(adapter_model):
    model = adapter_model
    assert model.manifest["weights"] == "lora-adapter" and not (model.path / "config.json").exists()
    prompt = [{"role": "user", "content": "colour of sky?"}]
    assert modelyard.load(model.path).learner.generate(prompt) == model.learner.generate(prompt)


def test_a_merged_bundle_is_a_complete_hugging_face_folder(tiny_llama, tmp_path):
    model = train(tiny_llama, tmp_path, merge=True)
    assert model.manifest["weights"] == "merged" and (model.path / "config.json").is_file()
    prompt = [{"role": "user", "content": "colour of snow?"}]
    assert modelyard.load(model.path).learner.generate(prompt) == model.learner.generate(prompt)


def test_examples_opening_with_an_assistant_turn_train(tiny_llama, tmp_path):
    greeted = [{"role": "assistant", "content": "colour?"}, *EXAMPLES[0]["messages"]]
    model = train(tiny_llama, tmp_path, merge=False, examples=[{"messages": greeted}, *EXAMPLES])
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 3 and metrics["validation"]["loss"] > 0


def test_validate_counts_the_examples_whose_answer_max_length_cuts_away(tiny_llama, tmp_path):
    long = {
        "messages": [
            {"role": "user", "content": "colour of " + "very " * 8 + "dark coal?"},
            *EXAMPLES[3]["messages"][1:],
        ]
    }
    data = modelyard.validate(write_config(tiny_llama, tmp_path, False, [long, *EXAMPLES], max_length=40))
    assert data.warnings == ["1 of 10 train examples have no answer token within model.max_length 40 and are left out"]


def test_validate_and_train_refuse_a_max_length_that_leaves_nothing_to_train_on(tiny_llama, tmp_path):
    config = write_config(tiny_llama, tmp_path, False, max_length=16)
    for run in (modelyard.validate, modelyard.train):
        with pytest.raises(DataError, match=r"model\.max_length 16 cuts away the answer of every training example"):
            run(config)


def test_validate_and_train_refuse_a_test_file_whose_every_answer_max_length_cuts_away(tiny_llama, tmp_path):
    config = yaml.safe_load(Path(write_config(tiny_llama, tmp_path, False, max_length=40)).read_text(encoding="utf-8"))
    question = {"role": "user", "content": "colour of " + "very " * 8 + "dark coal?"}
    long = {"messages": [question, EXAMPLES[3]["messages"][1]]}
    (tmp_path / "test.jsonl").write_text(json.dumps(long) + "\n", encoding="utf-8")
    config["data"]["test"] = "test.jsonl"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    said = r"test\.jsonl: model\.max_length 40 cuts away the answer of every test example \(1\): no test example"
    for run in (modelyard.validate, modelyard.train):
        with pytest.raises(DataError, match=said):
            run(tmp_path / "c.yaml")


def test_the_test_loss_of_a_bf16_run_is_the_loss_of_the_bundle_as_loaded(tiny_llama, tmp_path):
    config = yaml.safe_load(Path(write_config(tiny_llama, tmp_path, False)).read_text(encoding="utf-8"))
    config["data"]["split"] = {"validation": 0.25, "test": 0.25}
    config["train"]["precision"] = "bf16"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    model = modelyard.train(tmp_path / "c.yaml", output=tmp_path / "bundle", quiet=True)
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert metrics["train"]["precision"] == "bf16"
    assert metrics["test"]["loss"] == modelyard.load(model.path).evaluate()["loss"]


def test_validate_refuses_lora_target_modules_the_backbone_does_not_have_listing_its_layers(tiny_llama, tmp_path):
    wrong = write_config(tiny_llama, tmp_path, False, lora={"r": 4, "target_modules": ["nonexistent_proj"]})
    with pytest.raises(ConfigError, match="nonexistent_proj names no module") as err:
        modelyard.validate(wrong)
    assert "q_proj" in err.value.hint
    modelyard.validate(write_config(tiny_llama, tmp_path, False, lora={"r": 4, "target_modules": ["self_attn.q_proj"]}))
