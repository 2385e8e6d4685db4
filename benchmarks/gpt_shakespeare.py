"""Tiny Shakespeare, character GPT (nanoGPT's CPU "baby GPT"): modelyard's trainer against nanoGPT's own loop.

Both train the same architecture (4 layers, 4 heads, 128 wide, context 64, batch 12, 2000 steps, dropout 0) on the
first 90% of the text; both final models are scored the same way, on every non-overlapping window of the last 10%.
The nanoGPT side is a faithful, minimal replica of its train.py loop as run by its README's CPU command
(`--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0`, config/train_shakespeare_char.py:
lr 1e-3 -> 1e-4 cosine, 100 warm-up iterations, AdamW betas (0.9, 0.99), weight decay 0.1, clip 1.0, evaluation
every 250 iterations, fp32 on CPU). modelyard trains examples/tiny_shakespeare.yaml: the same recipe but for a
3x higher peak learning rate (3e-3, gpt-scratch's default). Prints one JSON object. On a shared machine compare
CPU seconds too: wall time depends on what else runs.

    python benchmarks/gpt_shakespeare.py [--steps 2000] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import modelyard
from modelyard.learners.gpt import WindowDataset
from modelyard.models.gpt import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "tiny_shakespeare.yaml"
TEXT = ROOT / "examples" / "data" / "tiny_shakespeare" / "input.txt"


def nanogpt_loop(steps: int, text: str) -> tuple[GPT, dict]:
    """nanoGPT's train.py for the baby GPT on CPU, stripped of what the CPU path does not use."""
    torch.manual_seed(1337)
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]
    block_size, batch_size, eval_iters, eval_interval = 64, 12, 20, 250
    learning_rate, min_lr, warmup_iters, lr_decay_iters = 1e-3, 1e-4, 100, steps

    def get_batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        d = train_data if split == "train" else val_data
        ix = torch.randint(len(d) - block_size, (batch_size,))
        x = torch.stack([torch.from_numpy(d[i : i + block_size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(d[i + 1 : i + 1 + block_size].astype(np.int64)) for i in ix])
        return x, y

    model = GPT(GPTConfig(vocab_size=len(chars), block_size=block_size, n_layer=4, n_head=4, n_embd=128))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
        betas=(0.9, 0.99),
    )

    def get_lr(it: int) -> float:
        if it < warmup_iters:
            return learning_rate * (it + 1) / (warmup_iters + 1)
        if it > lr_decay_iters:
            return min_lr
        ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)

    @torch.no_grad()
    def estimate_loss() -> dict[str, float]:
        model.eval()
        out = {}
        for split in ("train", "val"):
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                x, y = get_batch(split)
                losses[k] = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
            out[split] = losses.mean().item()
        model.train()
        return out

    start, cpu = time.perf_counter(), time.process_time()
    x, y = get_batch("train")
    last = {}
    for it in range(steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it)
        if it % eval_interval == 0:
            last = estimate_loss()
        if it == steps:
            break
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        x, y = get_batch("train")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # log_interval=1: nanoGPT syncs on the loss every iteration
    return model, {
        "seconds": round(time.perf_counter() - start, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "own_val_estimate": round(last["val"], 4),
    }


@torch.no_grad()
def full_val_loss(model: GPT, text: str) -> float:
    """Mean loss on every non-overlapping 64-token window of the last 10% of the text (as modelyard scores it)."""
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = torch.tensor([stoi[c] for c in text[int(0.9 * len(text)) :]])
    windows = WindowDataset(ids, 64, training=False)
    model.eval()
    total = count = 0
    for start in range(0, len(windows), 64):
        items = [windows[i] for i in range(start, min(start + 64, len(windows)))]
        x, y = torch.stack([it["input_ids"] for it in items]), torch.stack([it["targets"] for it in items])
        total += F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    return round(total / count, 5)


def run_modelyard(steps: int) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        model = modelyard.train(CONFIG, output=Path(out) / "bundle", quiet=True, overrides=[f"train.max_steps={steps}"])
        metrics = json.loads((model.path / "metrics.json").read_text())
    return {
        "seconds": metrics["train"]["seconds"],
        "end_to_end_seconds": round(time.perf_counter() - wall, 2),
        "end_to_end_cpu_seconds": round(time.process_time() - cpu, 2),
        "val_loss": metrics["validation"]["loss"],
        "val_perplexity": metrics["validation"]["perplexity"],
    }


def run_nanogpt(steps: int) -> dict:
    text = TEXT.read_text(encoding="utf-8")
    model, result = nanogpt_loop(steps, text)
    return {**result, "val_loss": full_val_loss(model, text)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--only",
        choices=["modelyard", "nanogpt"],
        help="one side (run both sides at once on a shared machine, so that both see the same load)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict = {"benchmark": "gpt_shakespeare", "steps": args.steps, "torch_threads": torch.get_num_threads()}
    if args.only != "modelyard":
        out["nanogpt_loop"] = run_nanogpt(args.steps)
    if args.only != "nanogpt":
        out["modelyard"] = run_modelyard(args.steps)
    if args.only is None:
        ours, nano = out["modelyard"], out["nanogpt_loop"]
        out["target"] = {"val_loss_at_most": 1.88, "seconds_at_most": nano["seconds"]}
        out["met"] = ours["val_loss"] <= 1.88 and ours["seconds"] <= nano["seconds"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
