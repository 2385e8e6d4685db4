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


def split_of(model: modelyard.Model):
    """The bundle's test split, or for text generation a longer stretch of text (several batches of windows)."""
    if model.config.task == "text_generation":
        return [(EXAMPLES / "data" / "tiny_shakespeare" / "input.txt").read_text(encoding="utf-8")[:12_000]]
    return model.task.prepare(model.config).splits["test"]


def rank_main(rank: int, port: int, bundle: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = modelyard.load(bundle)
        data = split_of(model)
        units, _ = model.learner.eval_outputs(data, (rank, 2))
        metrics = evaluate(model.learner, data)
        Path(out, f"rank{rank}.json").write_text(json.dumps({"units": units.tolist(), "metrics": metrics}))
    finally:
        dist.destroy_process_group()


def assert_shards_reduce_to_one_process(bundle: Path, tmp_path: Path) -> None:
    mp.spawn(rank_main, args=(free_port(), str(bundle), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    model = modelyard.load(bundle)
    data = split_of(model)
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
    assert_shards_reduce_to_one_process(tiny_gpt_bundle, tmp_path)


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
