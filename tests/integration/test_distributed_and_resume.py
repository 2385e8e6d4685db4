"""Data-parallel training matches one process on the same global batch; a killed run resumes to the same result."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_config
from safetensors.torch import load_file

pytestmark = pytest.mark.slow
TINY = [
    "--set=model.hidden_size=32",
    "--set=model.layers=1",
    "--set=model.heads=2",
    "--set=model.dropout=0.0",
    "--set=model.vocab_size=500",
    "--set=train.batch_size=16",
    "--set=train.early_stopping=null",
    "--set=train.learning_rate=0.003",
]


def train(config: Path, output: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "modelyard", "-q", "train", str(config), "--output", str(output), *TINY, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return out


def weights(bundle: Path) -> dict:
    return load_file(str(bundle / "model.safetensors"))


def relative_drift(a: dict, b: dict) -> float:
    """Summed weight difference relative to the weights' size. Adam turns float summation-order noise (batch
    slices, a fresh process) into small differences; the same run stays within a few percent."""
    return float(sum((a[k] - b[k]).abs().sum() for k in a) / sum(a[k].abs().sum() for k in a))


def assert_same_predictions(a: Path, b: Path, data: Path) -> None:
    """Both models give (nearly) the same probabilities on the test texts."""
    import pandas as pd

    import modelyard

    texts = pd.read_csv(data / "test.csv")["text"].tolist()
    pa, pb = (modelyard.load(x).learner.predict_proba(texts) for x in (a, b))
    assert abs(pa - pb).mean() < 0.02
    assert (pa.argmax(1) == pb.argmax(1)).mean() >= 0.85


def test_two_processes_match_one_process_on_the_same_global_batch(banking_slice, tmp_path):
    config = write_config(banking_slice, "scratch-transformer")
    finish(train(config, tmp_path / "one", "--set=train.epochs=2"))
    finish(train(config, tmp_path / "two", "--set=train.epochs=2", "--nproc", "2", "--master-port", "29517"))
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert one.keys() == two.keys()
    assert relative_drift(one, two) < 0.05
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (m1["train"]["processes"], m2["train"]["processes"]) == (1, 2)
    assert_same_predictions(tmp_path / "one", tmp_path / "two", banking_slice)


def test_a_run_killed_mid_epoch_resumes_to_exactly_the_same_weights(banking_slice, tmp_path):
    """Both runs use one thread and the same kernels, so a resume that restores everything (weights, optimiser,
    scheduler, data position, dropout's RNG) is bit-exact: any difference is something the checkpoint lost."""
    config = write_config(banking_slice, "scratch-transformer")
    steps = ["--set=train.epochs=4", "--set=train.checkpoint_every=3", "--set=model.dropout=0.1"]
    unbroken_run = train(config, tmp_path / "unbroken", *steps)  # one thread each: the two runs share the cores
    victim = train(config, tmp_path / "killed", *steps)
    progress = tmp_path / "killed" / "checkpoints" / "latest" / "progress.json"
    deadline = time.time() + 300
    while time.time() < deadline and victim.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["global_step"] >= 6:
            break
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    state = json.loads(progress.read_text())
    assert state["batches_done"] > 0, "the checkpoint should be mid-epoch"
    assert not (tmp_path / "killed" / "modelyard.json").exists()
    finish(train(config, tmp_path / "killed", *steps, "--resume"))
    finish(unbroken_run)
    assert not (tmp_path / "killed" / "checkpoints").exists()
    unbroken, resumed = weights(tmp_path / "unbroken"), weights(tmp_path / "killed")
    assert unbroken.keys() == resumed.keys()
    assert [k for k in unbroken if not torch.equal(unbroken[k], resumed[k])] == []
    m1 = json.loads((tmp_path / "unbroken" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert m1["train"]["steps"] == m2["train"]["steps"]
    assert (m1["validation"], m1["test"]) == (m2["validation"], m2["test"])


def test_resume_with_another_config_names_what_changed_instead_of_mixing_two_runs(banking_slice, tmp_path):
    import modelyard
    from modelyard.errors import ConfigError

    config = write_config(banking_slice, "scratch-transformer")
    tiny = [flag.removeprefix("--set=") for flag in TINY]
    modelyard.train(config, tmp_path / "run", [*tiny, "train.checkpoint_every=5"], keep_checkpoints=True, quiet=True)
    changed = [*tiny, "train.epochs=2", "model.hidden_size=64"]  # checkpoint_every may change: not named
    with pytest.raises(ConfigError, match=r"model\.hidden_size \(32 -> 64\), train\.epochs \(1 -> 2\)"):
        modelyard.train(config, tmp_path / "run", changed, resume=True, quiet=True)
