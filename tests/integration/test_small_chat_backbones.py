"""The bundled causal LMs decode with int4 weights by default and still answer; Gemma 3 270M (a multilingual base
model) loads from its joined GGUF, gets Gemma's chat format, and completes English and Chinese few-shot prompts."""

from __future__ import annotations

import pytest

from modelyard.learners.lora import CausalLMLearner
from modelyard.models import catalog
from modelyard.models.low_bit import Int4Linear
from modelyard.tasks.text_generation import GenerationModelConfig


def _learner(name: str) -> CausalLMLearner:
    if not catalog.installed()[name]:
        pytest.skip(f"needs the {name} weights (make setup)")
    return CausalLMLearner.pretrained(name, GenerationModelConfig(backbone=name, lora=None))


def _first_line(learner: CausalLMLearner, prompt: str) -> str:
    return learner.generate(prompt, max_new_tokens=8, temperature=0, stop="\n").strip()


@pytest.mark.slow
def test_smollm2_answers_with_int4_decoding_weights():
    learner = _learner("smollm2-135m")
    assert learner.options.decode_weights == "int4"
    question = [{"role": "user", "content": "What is the capital of France?"}]
    reply = learner.generate(question, max_new_tokens=12, temperature=0)
    assert isinstance(learner.generator.decoder.decoding_model().model.layers[0].mlp.up_proj, Int4Linear)
    assert "Paris" in reply


@pytest.fixture(scope="module")
def gemma() -> CausalLMLearner:
    """Loaded once for the module: the first use dequantises 268M parameters."""
    return _learner("gemma3-270m")


@pytest.mark.slow
def test_gemma3_completes_english_and_chinese_questions(gemma):
    """A base model answers after three examples (the prompts of benchmarks/small_models_qa.py)."""
    learner = gemma
    english = "Q: What is the capital of Spain?\nA: Madrid\nQ: How many wheels does a bicycle have?\nA: Two\n"
    english += "Q: What colour is grass?\nA: Green\nQ: What is the capital of France?\nA:"
    chinese = "Q: 西班牙的首都是哪里？\nA: 马德里\nQ: 自行车有几个轮子？\nA: 两个\nQ: 草是什么颜色？\nA: 绿色\n"
    chinese += "Q: 英国的首都是哪里？\nA:"
    assert "Paris" in _first_line(learner, english)
    reply = _first_line(learner, chinese)  # a city in Chinese; which one flips between int4 and float here
    assert reply and all("\u4e00" <= ch <= "\u9fff" for ch in reply)


@pytest.mark.slow
def test_gemma3_gets_gemma_chat_turns_and_stops_at_the_end_of_a_turn(gemma):
    learner = gemma
    rendered = learner.render_chat([{"role": "user", "content": "你好"}])
    assert rendered.endswith("<start_of_turn>user\n你好<end_of_turn>\n<start_of_turn>model\n")
    assert learner.tokenizer.convert_tokens_to_ids("<end_of_turn>") in learner.generator.decoder.eos_ids
