"""Two ranks evaluating their shares of a split and reducing score exactly what one process scores alone."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from conftest import EXAMPLES, write_config

import modelyard
from modelyard.training.distributed import evaluate

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_of(model: modelyard.Model, data: list | None):
    """`data` as given, or the bundle's test split."""
    return model.task.prepare(model.config).splits["test"] if data is None else data


def rank_main(rank: int, port: int, bundle: str, out: str, given: list | None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = modelyard.load(bundle)
        data = split_of(model, given)
        units, _ = model.learner.eval_outputs(data, (rank, 2))
        metrics = evaluate(model.learner, data)
        Path(out, f"rank{rank}.json").write_text(json.dumps({"units": units.tolist(), "metrics": metrics}))
    finally:
        dist.destroy_process_group()


def assert_shards_reduce_to_one_process(bundle: Path, tmp_path: Path, given: list | None = None) -> None:
    mp.spawn(rank_main, args=(free_port(), str(bundle), str(tmp_path), given), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    model = modelyard.load(bundle)
    data = split_of(model, given)
    everything, _ = model.learner.eval_outputs(data)
    assert ranks[0]["units"] and ranks[1]["units"], "each rank should evaluate a share"
    assert not set(ranks[0]["units"]) & set(ranks[1]["units"])
    assert sorted(ranks[0]["units"] + ranks[1]["units"]) == sorted(everything.tolist())
    alone = model.learner.evaluate(data)
    assert ranks[0]["metrics"] == ranks[1]["metrics"] == json.loads(json.dumps(alone))


def test_text_classifier_metrics_from_two_shards_equal_one_process(banking_slice, tmp_path):
    config = write_config(banking_slice, "scratch-transformer", batch_size=16, max_steps=3, early_stopping=None)
    tiny = ["model.hidden_size=32", "model.layers=1", "model.heads=2", "model.vocab_size=300"]
    bundle = modelyard.train(config, tmp_path / "bundle", tiny, quiet=True, track=False).path
    assert_shards_reduce_to_one_process(bundle, tmp_path)


def test_gpt_loss_from_two_shards_equals_one_process(tiny_gpt_bundle, tmp_path):
    text = (EXAMPLES / "data" / "tiny_shakespeare" / "input.txt").read_text(encoding="utf-8")[:12_000]
    assert_shards_reduce_to_one_process(tiny_gpt_bundle, tmp_path, [text])  # several batches of 64 windows


def test_lora_loss_from_two_shards_equals_one_process(tmp_path):
    """A tiny random Llama as the base (the real peft wiring); 40 chat examples make 3 batches of 16."""
    from llm_helpers import tiny_llama_config
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from modelyard.models import lm_tokenizer

    chats = [
        {"messages": [{"role": "user", "content": f"colour of {w} {i}?"}, {"role": "assistant", "content": c}]}
        for i in range(10)
        for w, c in [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black")]
    ]
    base = tmp_path / "base"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=lm_tokenizer.train([json.dumps(chats) + "<|user|><|assistant|>"], "char"),
        eos_token=lm_tokenizer.EOT,
        pad_token=lm_tokenizer.EOT,
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    LlamaForCausalLM(tiny_llama_config(len(tokenizer), **ids)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats[:8]), encoding="utf-8")
    config = {
        "name": "colours",
        "task": "text_generation",
        "data": {"train": "train.jsonl", "split": {"validation": 0.25, "test": 0.0}},
        "model": {"backbone": str(base), "lora": {"r": 4, "alpha": 8}},
        "train": {"max_steps": 2, "batch_size": 2, "early_stopping": None},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    bundle = modelyard.train(tmp_path / "c.yaml", tmp_path / "bundle", quiet=True, track=False).path
    assert_shards_reduce_to_one_process(bundle, tmp_path, chats)


def test_forecast_metrics_from_two_shards_equal_one_process(tmp_path):
    t = np.arange(1400)
    values = 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(0).normal(0, 0.5, len(t))
    days = pd.date_range("2023-01-01", periods=len(t), freq="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"day": days, "sales": values.round(2)})
    frame.to_csv(tmp_path / "sales.csv", index=False)
    config = {
        "name": "tiny-forecast",
        "task": "forecasting",
        "data": {"train": "sales.csv", "time_column": "day", "target_column": "sales", "split": {"test": 0.4}},
        "model": {"horizon": 3, "context_length": 14, "hidden_size": 8, "layers": 1},
        "train": {"max_steps": 3, "batch_size": 32, "early_stopping": None},
    }
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(config))
    bundle = modelyard.train(tmp_path / "f.yaml", tmp_path / "bundle", quiet=True, track=False).path
    assert_shards_reduce_to_one_process(bundle, tmp_path)
