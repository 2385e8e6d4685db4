"""The training loop, shared by every task: devices, precision, batching, optimisation, evaluation, checkpoints.

Tasks only say how to batch, the loss and the metrics (the Learner protocol); this loop owns everything else.
It runs on Accelerate, so the same code runs on one CPU process, several (`--nproc`, gloo) or GPUs (NCCL).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed

from modelyard import precision as prec
from modelyard.config import Config, TrainConfig
from modelyard.errors import ConfigError
from modelyard.protocols import Learner, PreparedData, SplitsBatches
from modelyard.training.callbacks import Callback, EarlyStopping, TrainerControl, TrainerState
from modelyard.training.checkpoint import load_checkpoint, save_checkpoint, started_with
from modelyard.training.distributed import evaluate as sharded_evaluate
from modelyard.training.memory import map_large_blocks, release_free_memory
from modelyard.training.privacy import PrivateTraining, unwrap
from modelyard.training.progress import training_progress
from modelyard.training.sampler import BucketBatchSampler


@dataclass
class TrainResult:
    train: TrainConfig  # the resolved settings actually used
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    samples: int = 0
    steps: int = 0
    precision: str = "fp32"
    processes: int = 1
    privacy: dict[str, Any] | None = None  # a private run's spent (epsilon, delta) and its accounting

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


# what an empty setting means when the backbone has no tuned default for it either
FALLBACKS: dict[str, Any] = {
    "weight_decay": 0.01,
    "warmup_ratio": 0.06,
    "min_lr_ratio": 0.0,
    "adam_betas": (0.9, 0.999),
}


def resolve_train_config(train: TrainConfig, defaults: dict[str, Any]) -> TrainConfig:
    """Fill every empty value from the backbone's tuned defaults, then from the general fallbacks."""
    filled = {k: v for k, v in {**FALLBACKS, **defaults}.items() if getattr(train, k, None) is None}
    if train.precision == "auto" and "precision" in defaults:  # e.g. CNNs, measured slower in bf16 on CPU
        filled["precision"] = defaults["precision"]
    resolved = train.model_copy(update=filled)
    if resolved.epochs is None and resolved.max_steps is None:
        resolved = resolved.model_copy(update={"epochs": 3})
    return resolved


SHOWN_SETTINGS = ("epochs", "max_steps", "batch_size", "learning_rate", "scheduler")


def settings_line(asked: TrainConfig, resolved: TrainConfig, precision: str) -> str:
    """What training runs with, each value the config left empty marked as the backbone's tuned default."""
    parts = []
    for key in SHOWN_SETTINGS:
        value = getattr(resolved, key)
        if value is not None:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            parts.append(f"{key} {shown}" + (" (default)" if getattr(asked, key) is None else ""))
    return f"training with {', '.join(parts)}, precision {precision}"


def make_optimizer(
    groups: list[dict[str, Any]], lr: float, train_cfg: TrainConfig, device: torch.device, kind: str = "adamw"
) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel where the device has it: on CPU this makes the update ~3x cheaper than the
    per-tensor loop, which matters for small batches of short texts, where the update is a third of a step.
    `sgd` (plain, no momentum) is for federated SCAFFOLD sites, whose drift correction is defined for SGD steps."""
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, weight_decay=train_cfg.weight_decay)
    params = [p for group in groups for p in group["params"]]
    fused = device.type in ("cpu", "cuda") and all(p.is_floating_point() and p.device == device for p in params)
    return torch.optim.AdamW(
        groups, lr=lr, weight_decay=train_cfg.weight_decay, betas=train_cfg.adam_betas, fused=fused or None
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int, floor: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then linear or cosine decay to `floor` x the peak (or constant)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "cosine":
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return floor + (1.0 - floor) * (1.0 - progress) if kind == "linear" else 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float)}


def evaluate_split(learner: Learner, split: Any) -> dict[str, Any]:
    """Metrics of one split ({} when it is empty), each rank evaluating its share under `--nproc`."""
    return sharded_evaluate(learner, split) if len(split) else {}


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights to restore at the end. Frozen parameters never change, so they are referenced, not copied:
    multilingual-e5-small's frozen 250k-token embedding would cost another 384 MB per copy."""
    frozen = {p.data_ptr() for p in model.parameters() if not p.requires_grad}
    return {k: v if v.data_ptr() in frozen else v.detach().clone() for k, v in model.state_dict().items()}


def _backward(learner: Learner, batch: dict[str, Any], accelerator: Accelerator, model: Any) -> torch.Tensor:
    """Backward pass of one batch, part by part when the learner splits long ones (SplitsBatches): the same
    gradient, with one part's activations held at a time. Only the last part synchronises gradients across ranks."""
    parts = learner.micro_batches(batch) if isinstance(learner, SplitsBatches) else [(batch, 1.0)]
    losses = []
    for k, (part, share) in enumerate(parts):
        with accelerator.no_sync(model) if k + 1 < len(parts) else contextlib.nullcontext():
            loss = learner.loss(part) * share
            accelerator.backward(loss)
        losses.append(loss.detach())
    return torch.stack(losses).sum()


def _fit_without_gradients(learner: Learner, train_cfg: TrainConfig, data: PreparedData) -> TrainResult:
    start = time.perf_counter()
    learner.fit(data.splits["train"], data.splits.get("validation"))
    seconds = time.perf_counter() - start
    validation = learner.evaluate(data.splits["validation"]) if len(data.splits["validation"]) else {}
    steps = 0 if getattr(learner, "zero_shot", False) is True else 1  # a zero-shot learner's fit learns nothing
    entry = {"epoch": 1, "step": steps, "seconds": round(seconds, 3), "validation": _headline(validation)}
    result = TrainResult(train_cfg, [entry], validation, seconds, len(data.splits["train"]) * steps, steps)
    result.privacy = getattr(learner, "privacy", None)  # e.g. a tabular learner's MLP member trained privately
    return result


def fit(
    learner: Learner,
    config: Config,
    data: PreparedData,
    callbacks: list[Callback] | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    quiet: bool = False,
    main_metric: str = "loss",
    greater_is_better: bool = False,
    optimizer: str = "adamw",
) -> TrainResult:
    """Train `learner` in place on data.splits["train"], evaluating on "validation"; best weights restored.
    `optimizer` is `adamw` or `sgd` (`make_optimizer`)."""
    train_cfg = resolve_train_config(config.train, learner.train_defaults())
    if learner.module is None:
        return _fit_without_gradients(learner, train_cfg, data)

    on_cuda = prec.device().type == "cuda"
    accelerator = Accelerator(
        cpu=not on_cuda,  # on CUDA, Accelerate (and torchrun's ranks) use NCCL; gloo on CPUs
        gradient_accumulation_steps=train_cfg.gradient_accumulation,
        dataloader_config=DataLoaderConfiguration(split_batches=True, non_blocking=on_cuda),
    )
    if train_cfg.batch_size % accelerator.num_processes:
        raise ConfigError(
            f"train.batch_size {train_cfg.batch_size} is the global batch and must divide evenly "
            f"among {accelerator.num_processes} processes"
        )
    private_cfg = train_cfg.privacy  # DP-SGD (training/privacy.py): per-example gradients in fp32
    # a backbone's fp32 default was measured on CPUs; on CUDA, `auto` means bf16 autocast where the GPU has it
    asked = config.train.precision if on_cuda else train_cfg.precision
    precision = prec.resolve("fp32" if private_cfg else asked, accelerator.device)
    learner.precision = precision
    set_seed(train_cfg.seed)
    callbacks = list(callbacks or [])
    metric = (train_cfg.early_stopping.metric if train_cfg.early_stopping else None) or main_metric
    stopper = None
    if train_cfg.early_stopping:
        es = train_cfg.early_stopping
        stopper = EarlyStopping(metric, greater_is_better, es.patience, es.min_delta, named=es.metric is not None)
        callbacks.append(stopper)

    dataset = learner.dataset(data.splits["train"], training=True)
    lengths = learner.lengths(dataset) if hasattr(learner, "lengths") else None
    sampler = BucketBatchSampler(lengths, len(dataset), train_cfg.batch_size, train_cfg.seed)
    private = None
    if private_cfg:
        steps = max(1, math.ceil(len(dataset) / train_cfg.batch_size))
        planned = train_cfg.max_steps or steps * train_cfg.epochs
        private = PrivateTraining.plan(
            private_cfg, len(dataset), train_cfg.batch_size, planned, accelerator.num_processes
        )
        sampler = private.sampler(len(dataset), steps)
    # every new iterator draws a seed from the loader's generator; without its own, that draw comes from the global
    # RNG, and a resumed run (which re-creates the iterator mid-epoch) would see dropout masks shifted by one draw
    generator = torch.Generator().manual_seed(train_cfg.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=private.collate(learner.collate) if private else learner.collate,
        generator=generator,
        pin_memory=on_cuda,  # page-locked batches copy to the GPU asynchronously (non_blocking above)
    )

    lr = train_cfg.learning_rate
    scale = train_cfg.gradient_accumulation  # the effective batch is batch_size x gradient_accumulation
    lr *= {"none": 1.0, "linear": scale, "sqrt": math.sqrt(scale)}[train_cfg.lr_scaling]
    groups = (
        learner.param_groups(lr, train_cfg.weight_decay)
        if hasattr(learner, "param_groups")
        else [{"params": [p for p in learner.module.parameters() if p.requires_grad]}]
    )
    optimizer = make_optimizer(groups, lr, train_cfg, accelerator.device, optimizer)
    steps_per_epoch = max(1, math.ceil(len(sampler) / train_cfg.gradient_accumulation))
    total = train_cfg.max_steps or steps_per_epoch * train_cfg.epochs
    epochs = math.ceil(total / steps_per_epoch)
    warmup = int(train_cfg.warmup_ratio * total)
    scheduler = make_scheduler(optimizer, train_cfg.scheduler or "linear", warmup, total, train_cfg.min_lr_ratio)
    module = learner.module
    if private:
        module, optimizer = private.wrap(module, optimizer, accelerator.device)
    model, optimizer, loader, scheduler = accelerator.prepare(module, optimizer, loader, scheduler)
    learner.module = model
    raw_model = unwrap(accelerator.unwrap_model(model))

    state = TrainerState(max_steps=total, steps_per_epoch=steps_per_epoch, is_main_process=accelerator.is_main_process)
    control = TrainerControl()
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch, skip_batches, samples, seconds_before = 0, 0, 0, 0.0
    run = started_with(config, data.fingerprints) if checkpoint_dir is not None else {}  # what --resume matches
    if resume and checkpoint_dir is not None:
        restored = load_checkpoint(checkpoint_dir, raw_model, optimizer, scheduler, run)
        if restored is not None:
            progress, best_state = restored
            state.global_step, state.history = progress["global_step"], progress["history"]
            state.best_metric, state.best_step = progress["best_metric"], progress["best_step"]
            start_epoch, skip_batches = progress["epoch"], progress["batches_done"]
            samples, seconds_before = progress["samples"], progress["seconds"]
            if stopper is not None and progress.get("early_stopping"):
                stopper.load_state_dict(progress["early_stopping"])
    for cb in callbacks:
        cb.on_train_begin(state, control, config)

    def checkpoint(epoch: int, batches_done: int) -> None:
        if checkpoint_dir is None or not accelerator.is_main_process:
            return
        save_checkpoint(
            checkpoint_dir,
            raw_model,
            optimizer,
            scheduler,
            {
                "epoch": epoch,
                "batches_done": batches_done,
                "global_step": state.global_step,
                "history": state.history,
                "best_metric": state.best_metric,
                "best_step": state.best_step,
                "samples": samples,
                "seconds": seconds_before + time.perf_counter() - t0,
                "early_stopping": stopper.state_dict() if stopper else None,
                "run": run,
            },
            best_state,
        )

    best_metrics: dict[str, Any] | None = None  # the full validation metrics of best_state's weights

    def evaluate(epoch: int, loss: float) -> None:
        nonlocal best_state, best_metrics
        if state.history and state.history[-1]["step"] == state.global_step:
            return  # these weights were just evaluated (eval_every landed on the last step)
        learner.module = raw_model  # eval forwards bypass DDP, whose buffer syncs would wait for every rank
        try:
            metrics = evaluate_split(learner, data.splits["validation"])
        finally:
            learner.module = model
        entry = {
            "epoch": epoch + 1,
            "step": state.global_step,
            "train_loss": round(loss, 5),
            "learning_rate": scheduler.get_last_lr()[0],
            "samples_per_second": round(samples / max(1e-9, seconds_before + time.perf_counter() - t0), 2),
            "validation": _headline(metrics),
        }
        state.history.append(entry)
        value = metrics.get(metric)
        better = value is not None and (
            state.best_metric is None or (value > state.best_metric if greater_is_better else value < state.best_metric)
        )
        if better or not metrics:
            state.best_metric, state.best_step = value, state.global_step
            best_state = _snapshot(raw_model)
            best_metrics = metrics
        for cb in callbacks:
            cb.on_evaluate(state, control, {**metrics, "epoch": epoch + 1, "train_loss": loss})
        release_free_memory()  # evaluation batches are shaped unlike training ones

    map_large_blocks()
    release_free_memory()
    t0 = time.perf_counter()
    model.train()
    if not quiet and accelerator.is_main_process:
        print(settings_line(config.train, train_cfg, precision), file=sys.stderr, flush=True)
    with training_progress(quiet or not accelerator.is_main_process) as bar:
        task_id = bar.add_task("training", total=total, completed=state.global_step, loss=0.0, speed=0.0)
        for epoch in range(start_epoch, epochs):
            sampler.set_epoch(epoch)
            # accelerate re-seeds the sampler with its own count of finished passes, which restarts at 0 in a
            # resumed run: without this, every epoch after a resume would replay another epoch's order
            loader.set_epoch(epoch)
            epoch_loader = accelerator.skip_first_batches(loader, skip_batches) if skip_batches else loader
            running, count = 0.0, 0
            for i, batch in enumerate(epoch_loader, start=skip_batches):
                with accelerator.accumulate(model), prec.autocast(precision, accelerator.device):
                    if private:  # per-example gradients: one forward per batch; an empty Poisson batch still steps
                        loss = learner.loss(batch) if batch is not None else private.empty_batch_loss()
                        accelerator.backward(loss)
                    else:
                        loss = _backward(learner, batch, accelerator, model)
                    if accelerator.sync_gradients and train_cfg.max_grad_norm and not private:
                        accelerator.clip_grad_norm_(model.parameters(), train_cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                if batch is not None:
                    first = batch["input_ids"] if "input_ids" in batch else next(iter(batch.values()))
                    samples += len(first) * accelerator.num_processes
                running += loss.item()
                count += 1
                if not accelerator.sync_gradients:
                    continue
                state.global_step += 1
                speed = samples / max(1e-9, seconds_before + time.perf_counter() - t0)
                bar.update(task_id, completed=state.global_step, loss=running / count, speed=speed)
                for cb in callbacks:
                    cb.on_step_end(state, control, {"loss": running / count, "samples_per_second": speed})
                if train_cfg.eval_every and state.global_step % train_cfg.eval_every == 0:
                    evaluate(epoch, running / count)
                if train_cfg.checkpoint_every and state.global_step % train_cfg.checkpoint_every == 0:
                    checkpoint(epoch, i + 1)
                if state.global_step >= total or control.should_stop:
                    break
            skip_batches = 0
            state.epoch = epoch + 1
            if not train_cfg.eval_every or state.global_step >= total:
                evaluate(epoch, running / max(count, 1))
            if control.should_stop or state.global_step >= total:
                break
            checkpoint(epoch + 1, 0)
    seconds = seconds_before + time.perf_counter() - t0
    if private:
        private.close()
    if best_state is not None:
        raw_model.load_state_dict(best_state)
    learner.module = raw_model
    if hasattr(learner, "finish_training") and learner.finish_training():  # e.g. weight-space ensembling
        best_metrics = None
    for cb in callbacks:
        cb.on_train_end(state, control)
    if best_metrics is None:  # resumed with nothing evaluated since, or finish_training changed the weights
        best_metrics = evaluate_split(learner, data.splits["validation"])
    return TrainResult(
        train_cfg,
        state.history,
        best_metrics,
        seconds,
        samples,
        state.global_step,
        precision,
        accelerator.num_processes,
        private.spent(state.global_step) if private else None,
    )
