"""modelyard's training loop against transformers' Trainer on the same model, data, batch size, LR and epochs.

The Trainer gets its strongest reasonable CPU recipe, so the ratio measures the loop and not a weak baseline:
dynamic padding (DataCollatorWithPadding), length-grouped batches, bf16 autocast where modelyard trains in bf16,
and modelyard's weight decay and warmup. Prints JSON: samples/s of each and their ratio. Usage:
  python benchmarks/train_throughput.py [--rows 2000] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data" / "banking77" / "train.csv"


def run_modelyard(rows: pd.DataFrame, epochs: int, batch: int, max_length: int, folder: Path) -> dict:
    import modelyard

    rows.to_csv(folder / "train.csv", index=False)
    rows.iloc[:200].to_csv(folder / "test.csv", index=False)
    config = {
        "name": "throughput",
        "task": "text_classification",
        "data": {
            "train": "train.csv",
            "test": "test.csv",
            "label_column": "category",
            "split": {"validation": 0.0, "test": 0.0},
        },
        "model": {"backbone": "minilm-l6", "max_length": max_length},
        "train": {"epochs": epochs, "batch_size": batch, "learning_rate": 5e-5, "early_stopping": None},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    model = modelyard.train(folder / "c.yaml", output=folder / "bundle", quiet=True)
    train = json.loads((model.path / "metrics.json").read_text())["train"]
    return {
        "samples_per_second": train["samples_per_second"],
        "seconds": train["seconds"],
        "precision": train["precision"],
    }


def run_trainer(rows: pd.DataFrame, epochs: int, batch: int, max_length: int, bf16: bool, folder: Path) -> dict:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from modelyard.models.catalog import locate

    path = str(locate("minilm-l6"))
    labels = sorted(rows["category"].unique())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    enc = tokenizer(rows["text"].tolist(), truncation=True, max_length=max_length)
    index = {label: i for i, label in enumerate(labels)}
    items = [
        {"input_ids": ids, "attention_mask": m, "labels": index[y]}
        for ids, m, y in zip(enc["input_ids"], enc["attention_mask"], rows["category"], strict=True)
    ]
    args = TrainingArguments(
        output_dir=str(folder / "trainer"),
        per_device_train_batch_size=batch,
        num_train_epochs=epochs,
        learning_rate=5e-5,
        weight_decay=0.01,
        warmup_steps=0.06,
        train_sampling_strategy="group_by_length",
        bf16=bf16,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    collator = DataCollatorWithPadding(tokenizer)
    trainer = Trainer(model=model, args=args, train_dataset=items, data_collator=collator, processing_class=tokenizer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {
        "samples_per_second": round(len(items) * epochs / seconds, 2),
        "seconds": round(seconds, 2),
        "precision": "bf16" if bf16 else "fp32",
        "padding": "longest in batch",
        "sampling": "group_by_length",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    rows = pd.read_csv(DATA).sample(n=args.rows, random_state=0)
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_modelyard(rows, args.epochs, args.batch_size, args.max_length, Path(tmp))
        bf16 = ours["precision"] == "bf16"
        theirs = run_trainer(rows, args.epochs, args.batch_size, args.max_length, bf16, Path(tmp))
    print(
        json.dumps(
            {
                "rows": args.rows,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "threads": torch.get_num_threads(),
                "modelyard": ours,
                "trainer": theirs,
                "ratio": round(ours["samples_per_second"] / theirs["samples_per_second"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
