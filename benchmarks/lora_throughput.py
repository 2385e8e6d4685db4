"""SmolLM2-135M + LoRA: training samples/s of modelyard's trainer against transformers' Trainer (same peft setup,
same tokenized chat examples, same batch size), and with --accuracy the label task learnt from a few hundred chat
examples against the base model's zero-shot answers. Prints one JSON object.

    python benchmarks/lora_throughput.py [--samples 96] [--threads N] [--accuracy] [--without-system-prompt]

The examples share a system prompt, which modelyard runs once per batch; --without-system-prompt drops it from
every example (for both trainers) to measure the speedup on data with no shared prefix.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import modelyard
from modelyard.data import text_corpus
from modelyard.protocols import PreparedData
from modelyard.tasks import get_task, load_config
from modelyard.training.loop import fit

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "chat_lora.yaml"
TRAIN = ROOT / "examples" / "data" / "chat_intents" / "train.jsonl"
TEST = ROOT / "examples" / "data" / "chat_intents" / "test.jsonl"


def training_examples(samples: int, system_prompt: bool) -> list[dict]:
    examples = text_corpus.read(TRAIN, text_corpus.Fields())[:samples]
    if system_prompt:
        return examples
    return [{"messages": [m for m in e["messages"] if m["role"] != "system"]} for e in examples]


def ours(examples: list[dict]) -> dict:
    config = load_config(CONFIG, ["train.epochs=1"])
    task = get_task("text_generation")
    data = PreparedData(splits={"train": examples, "validation": [], "test": []})
    learner = task.build(config, data)
    result = fit(learner, config, data, quiet=True)
    return {
        "samples_per_second": round(result.samples_per_second, 3),
        "seconds": round(result.seconds, 2),
        "samples": result.samples,
        "precision": result.precision,
    }


def hf_trainer(examples: list[dict], bf16: bool) -> dict:
    """transformers' Trainer on the same tokenized examples, LoRA config, batch size, LR, schedule and precision,
    with length-grouped batches so its dynamic padding wastes little."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    config = load_config(CONFIG, ["train.epochs=1"])
    learner = get_task("text_generation").build(config, PreparedData(splits={"train": []}))
    rows = learner.dataset(examples, training=True)
    rows = [{**r, "attention_mask": [1] * len(r["input_ids"])} for r in rows]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=8,
            num_train_epochs=1,
            learning_rate=2e-4,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, round(0.06 * len(rows) / 8)),
            weight_decay=0.01,
            train_sampling_strategy="group_by_length",
            bf16=bf16,
            logging_steps=10_000,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        collator = DataCollatorForSeq2Seq(learner.tokenizer, padding=True, label_pad_token_id=-100)
        trainer = Trainer(model=learner.module, args=args, train_dataset=rows, data_collator=collator)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return {
        "samples_per_second": round(len(rows) / seconds, 3),
        "seconds": round(seconds, 2),
        "samples": len(rows),
        "precision": "bf16" if bf16 else "fp32",
    }


def exact_match(learner, examples: list[dict], batch: int = 10) -> float:
    """Share of examples whose greedy answer is exactly the expected assistant message."""
    right = 0
    for start in range(0, len(examples), batch):
        part = examples[start : start + batch]
        prompts = [e["messages"][:-1] for e in part]
        answers = learner.generator.complete(prompts, temperature=0, max_new_tokens=12)
        right += sum(a["text"].strip() == e["messages"][-1]["content"] for a, e in zip(answers, part, strict=True))
    return right / len(examples)


def accuracy(epochs: int) -> dict:
    test = text_corpus.read(TEST, text_corpus.Fields())
    config = load_config(CONFIG)
    base = get_task("text_generation").build(config, PreparedData(splits={"train": []}))
    zero_shot = exact_match(base, test)
    del base
    with tempfile.TemporaryDirectory() as out:
        model = modelyard.train(CONFIG, output=Path(out) / "bundle", quiet=True, overrides=[f"train.epochs={epochs}"])
        metrics = json.loads((model.path / "metrics.json").read_text())
        tuned = exact_match(modelyard.load(model.path).learner, test)
    return {
        "test_examples": len(test),
        "zero_shot_exact_match": zero_shot,
        "lora_exact_match": tuned,
        "train": metrics["train"],
        "validation": metrics["validation"],
        "test": metrics["test"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--accuracy", action="store_true", help="also train on all examples and score answers")
    parser.add_argument("--epochs", type=int, default=2, help="epochs for --accuracy")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--without-system-prompt", action="store_true", help="drop the shared system prompt")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict = {
        "benchmark": "lora_throughput",
        "torch_threads": torch.get_num_threads(),
        "shared_system_prompt": not args.without_system_prompt,
    }
    if not args.skip_throughput:
        examples = training_examples(args.samples, not args.without_system_prompt)
        mine = ours(examples)
        theirs = hf_trainer(examples, bf16=mine["precision"] == "bf16")
        out |= {
            "modelyard": mine,
            "hf_trainer": theirs,
            "speedup": round(mine["samples_per_second"] / theirs["samples_per_second"], 2),
        }
        out["met"] = out["speedup"] >= 1.5
    if args.accuracy:
        out["accuracy"] = accuracy(args.epochs)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
