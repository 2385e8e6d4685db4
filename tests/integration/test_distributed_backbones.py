"""`train --nproc 2` works for every bundled backbone family, evaluates in shards that add up to exactly the
single-process metrics, and a failing rank ends as one clear message (exit 1), not a torchrun traceback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import EXAMPLES, write_config
from image_helpers import colour_squares

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    """One MODELYARD_HOME for the module: multilingual-e5-small is converted and SmolLM2 dequantised once, here,
    instead of once per rank per test."""
    return tmp_path_factory.mktemp("distributed-home")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(config: Path, output: Path, home: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_TRACKING": "off", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "modelyard", "-q", "train", str(config), "--output", str(output)]
    command += ["--nproc", "2", "--master-port", str(free_port()), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def run(config: Path, output: Path, home: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = start(config, output, home, *extra)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def text_config(folder: Path, backbone: str) -> Path:
    """Four BANKING77 intents, 12 rows each (CC BY 4.0, examples/data)."""
    frame = pd.read_csv(EXAMPLES / "data" / "banking77" / "train.csv")
    intents = sorted(frame["category"].unique())[:4]
    small = frame[frame["category"].isin(intents)].groupby("category").head(12)
    small.to_csv(folder / "train.csv", index=False)
    small.groupby("category").head(3).to_csv(folder / "test.csv", index=False)
    return write_config(folder, backbone, batch_size=8, max_steps=2, early_stopping=None)


def image_config(folder: Path) -> Path:
    colour_squares(folder / "data", per_class=8)
    config = {
        "name": "squares",
        "task": "image_classification",
        "data": {"train": "data", "split": {"validation": 0.25, "test": 0.25}},
        "model": {"backbone": "efficientnet-lite0", "image_size": 32, "eval_size": 32, "augment": "none"},
        "train": {"max_steps": 2, "batch_size": 4, "early_stopping": None},
    }
    return dump(folder, config)


def lora_config(folder: Path) -> Path:
    """Ten chat examples from examples/data/chat_intents (derived from BANKING77, CC BY 4.0)."""
    lines = (EXAMPLES / "data" / "chat_intents" / "train.jsonl").read_text(encoding="utf-8").splitlines()[:10]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "name": "chat",
        "task": "text_generation",
        "data": {"train": "train.jsonl", "split": {"validation": 0.2, "test": 0.2}},
        "model": {"backbone": "smollm2-135m", "max_length": 128, "lora": {"r": 4, "alpha": 8}},  # 105-114 tokens each
        "train": {"max_steps": 2, "batch_size": 2, "early_stopping": None},
    }
    return dump(folder, config)


def gpt_config(folder: Path) -> Path:
    text = (EXAMPLES / "data" / "tiny_shakespeare" / "input.txt").read_text(encoding="utf-8")[:6_000]
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    config = {
        "name": "tiny-gpt",
        "task": "text_generation",
        "data": {"train": "corpus.txt", "split": {"validation": 0.1, "test": 0.1}},
        "model": {"backbone": "gpt-scratch", "layers": 1, "heads": 2, "hidden_size": 32, "context": 32},
        "train": {"max_steps": 3, "batch_size": 8, "early_stopping": None},
    }
    return dump(folder, config)


def lstm_config(folder: Path) -> Path:
    """A generated daily series: trend plus a weekly cycle."""
    t = np.arange(160)
    values = 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(0).normal(0, 0.5, len(t))
    days = pd.date_range("2023-01-01", periods=len(t), freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"day": days, "sales": values.round(2)}).to_csv(folder / "sales.csv", index=False)
    config = {
        "name": "tiny-forecast",
        "task": "forecasting",
        "data": {"train": "sales.csv", "time_column": "day", "target_column": "sales"},
        "model": {"backbone": "lstm", "horizon": 7, "context_length": 14, "hidden_size": 16, "layers": 1},
        "train": {"max_steps": 3, "batch_size": 16, "early_stopping": None},
    }
    return dump(folder, config)


def dump(folder: Path, config: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


FAMILIES = {
    "minilm": lambda folder: text_config(folder, "minilm-l6"),
    "multilingual-e5": lambda folder: text_config(folder, "multilingual-e5-small"),
    "efficientnet-lite0": image_config,
    "smollm2-lora": lora_config,
    "gpt-scratch": gpt_config,
    "lstm-forecast": lstm_config,
}


def warm_caches(family: str) -> None:
    """Convert the bundled model once in this process; both ranks then read the cached float copy."""
    from modelyard.models import catalog, causal_lm

    if family == "multilingual-e5":
        catalog.locate("multilingual-e5-small")
    elif family == "smollm2-lora":
        causal_lm.resolve("smollm2-135m")


@pytest.mark.parametrize("family", FAMILIES)
def test_two_processes_train_and_evaluate_every_backbone_family(family, shared_home, tmp_path, monkeypatch):
    import modelyard

    monkeypatch.setenv("MODELYARD_HOME", str(shared_home))
    warm_caches(family)
    config = FAMILIES[family](tmp_path)
    result = run(config, tmp_path / "bundle", shared_home)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    metrics = json.loads((tmp_path / "bundle" / "metrics.json").read_text())
    assert metrics["train"]["processes"] == 2
    alone = modelyard.load(tmp_path / "bundle").evaluate()
    assert metrics["test"] == alone  # the ranks' shards, reduced, score exactly what one process scores


def test_a_failing_rank_ends_as_one_message_naming_the_rank_and_the_error(shared_home, tmp_path):
    config = gpt_config(tmp_path)
    result = run(config, tmp_path / "bundle", shared_home, "--set=train.batch_size=7")
    message = " ".join(result.stderr.split())  # the terminal wraps long lines
    assert result.returncode == 1
    assert re.match(r"error: rank [01] of 2: train\.batch_size 7 is the global batch and must divide evenly", message)
    assert "Traceback" not in message and "ChildFailedError" not in message


def rank_process(launcher: subprocess.Popen, rank: int):
    """The process of `rank` among the launcher's children, or None while there is none."""
    import psutil

    for child in psutil.Process(launcher.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.environ().get("RANK") == str(rank):
                return child
    return None


def test_a_rank_killed_by_a_signal_is_named_with_the_signal(shared_home, tmp_path):
    launcher = start(gpt_config(tmp_path), tmp_path / "bundle", shared_home, "--set=train.max_steps=100000")
    deadline = time.time() + 120
    victim = None
    while victim is None and time.time() < deadline and launcher.poll() is None:
        victim = rank_process(launcher, 1)
        time.sleep(0.2)
    assert victim is not None, "rank 1 never started"
    time.sleep(3)  # well into its start-up
    victim.send_signal(signal.SIGKILL)
    _, err = launcher.communicate(timeout=120)
    message = " ".join(err.split())
    assert launcher.returncode == 1
    assert message.startswith(f"error: rank 1 of 2 was killed by SIGKILL (process {victim.pid})")
    assert "Traceback" not in message
