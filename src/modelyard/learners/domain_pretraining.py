"""In-domain masked-LM pretraining of a pretrained text encoder before fine-tuning ("Don't Stop Pretraining",
Gururangan et al. 2020: DAPT on unlabelled in-domain text, TAPT on the task's own texts).

The bundled encoders ship no MLM head, so one is initialised (transformers' own, its decoder tied to the word
embeddings); only the encoder is kept. The adapted encoder is cached under MODELYARD_CACHE by a fingerprint of
the backbone, the texts and the settings, so several fine-tuning runs (seeds, learning rates) share one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from modelyard import precision as prec
from modelyard.config import DomainPretrainingConfig, FormatOptions
from modelyard.errors import ConfigError, DataError, ModelNotFoundError
from modelyard.fsutil import atomic_write_json
from modelyard.home import cache_dir, cache_lock
from modelyard.learners.text import MAX_AUTO_LENGTH, NO_DECAY, RECOMPUTE_TOKENS, freeze_word_embeddings, set_recompute
from modelyard.learners.text_inputs import fit_max_length, split_rows
from modelyard.training.loop import make_scheduler
from modelyard.training.memory import release_free_memory
from modelyard.training.progress import training_progress

CACHE_KIND = "domain-pretraining"
SUMMARY = "domain_pretraining.json"
WARMUP_RATIO = 0.06
# The first share of the steps trains the new head alone, on the encoder's unchanged outputs: the untrained head's
# first gradients (loss ~ln(vocabulary)) would otherwise flow into the encoder and disturb what it knows.
HEAD_FIRST = 0.1
CURVE_POINTS = 20  # loss points kept in the summary
VERSION = 1  # bump when the procedure changes, so old cached encoders are not reused


def read_texts(settings: DomainPretrainingConfig, fmt: FormatOptions) -> list[str]:
    """The extra unlabelled texts (none when `texts` is unset), read with the data's `data.format` (encoding,
    separator, quoting) as the training files are; a clear error naming the file and column."""
    if not settings.texts:
        return []
    from modelyard.data.readers import read_table

    where = f"model.domain_pretraining.texts {settings.texts}"
    if not Path(settings.texts).exists():  # the reader's own hint names data.train / data.test
        raise DataError(f"{where}: file not found", "check model.domain_pretraining.texts in the config")
    try:
        frame, _ = read_table(settings.texts, fmt)
    except DataError as err:
        raise DataError(f"{where}: {err.message}", err.hint) from None
    column = "text" if Path(settings.texts).suffix.lower() == ".txt" else settings.text_column
    if column not in frame.columns:
        raise DataError(
            f"{where}: no column '{column}' (columns: {', '.join(map(str, frame.columns[:10]))})",
            "set model.domain_pretraining.text_column",
        )
    texts = [t for t in frame[column].dropna().astype(str).str.strip() if t]
    if not texts:
        raise DataError(f"{where}: column '{column}' holds no text")
    return texts


def check(
    settings: DomainPretrainingConfig,
    fmt: FormatOptions,
    backbones: list[str],
    pretrained: list[str],
    training_texts: int,
) -> dict[str, int]:
    """What `validate` says about the setting: refused when no candidate fine-tunes a pretrained encoder (it
    would be silently ignored), else the extra file read (file, column and values checked) and counted."""
    if not pretrained:
        raise ConfigError(
            f"model.domain_pretraining: backbone {', '.join(backbones)} does not fine-tune a pretrained encoder, "
            "so there is nothing to pretrain",
            "name minilm-l6, multilingual-e5-small or a local Hugging Face folder, or set it to null",
        )
    return {"training_texts": training_texts, "extra_texts": len(read_texts(settings, fmt))}


def corpus(train: list[str], extra: list[str], held_out: list[str]) -> tuple[list[str], int]:
    """The training texts plus the extra ones, without any extra text equal to a validation or test text (the
    encoder must not have read the texts it is scored on); returns the texts and how many were left out."""
    unseen = {t.strip().lower() for t in held_out}
    kept = [t for t in extra if t.strip().lower() not in unseen]
    return [*train, *kept], len(extra) - len(kept)


def _fingerprint(parts: dict[str, Any], texts: list[str]) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace") + b"\0")
    return digest.hexdigest()[:20]


def _weights_identity(path: Path) -> list[tuple[str, int, int]]:
    """Names, sizes and mtimes of a backbone folder's files: a re-converted or edited model is a new key."""
    return sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in path.iterdir() if p.is_file())


def _tokenizer_with_mask(path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.mask_token is None:  # the e5 package's tokenizer has XLM-R's <mask> without declaring it
        if tokenizer.convert_tokens_to_ids("<mask>") not in (None, tokenizer.unk_token_id):
            tokenizer.mask_token = "<mask>"
        else:
            raise ModelNotFoundError(
                f"{path}: the tokenizer has no mask token, so masked-LM pretraining cannot run on it",
                "set model.domain_pretraining: null",
            )
    return tokenizer


def _masked_lm(path: Path):
    """transformers' masked-LM model of the encoder; its head starts untrained when the folder has none."""
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()  # the load report lists the head's missing weights: expected here
    try:
        model = AutoModelForMaskedLM.from_pretrained(str(path))
    finally:
        logging.set_verbosity(level)
    heads = [m for name, m in model.named_children() if name != model.base_model_prefix]
    if len(heads) != 1:
        raise ModelNotFoundError(f"{path}: no single masked-LM head for a {type(model).__name__}")
    return model, heads[0]


class CorpusDecoder(torch.nn.Module):
    """The head's output layer cut to the token ids the pretraining texts hold (`kept`): the masked tokens are
    always among them, and the odds between them are those of the whole layer, at a fraction of its work."""

    def __init__(self, decoder: torch.nn.Linear, kept: torch.Tensor):
        super().__init__()
        self.decoder = decoder  # shared, not copied: it is tied to the word embeddings
        self.register_buffer("kept", kept, persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        bias = None if self.decoder.bias is None else self.decoder.bias[self.kept]
        return F.linear(hidden, self.decoder.weight[self.kept], bias)


def restrict_to_corpus(model, head: torch.nn.Module, ids: list[list[int]]) -> torch.Tensor | None:
    """Swap the head's output layer for a `CorpusDecoder` over the tokens in `ids`; returns the map from a token
    id to its column (-1 for tokens the texts lack), or None when the head has no single output layer to cut."""
    decoder = model.get_output_embeddings()
    kept = torch.tensor(sorted({i for row in ids for i in row}), dtype=torch.long)
    for parent in head.modules():
        for name, child in parent.named_children():
            if child is decoder:
                setattr(parent, name, CorpusDecoder(decoder, kept))
                remap = torch.full((decoder.out_features,), -1, dtype=torch.long)
                remap[kept] = torch.arange(len(kept))
                return remap
    return None


def _step_loss(
    encoder,
    head,
    batch: dict[str, torch.Tensor],
    micro_tokens: int,
    device: torch.device,
    head_only: bool,
    remap: torch.Tensor | None,
) -> float:
    """Forward and backward of one batch in parts; the MLM head runs on the masked positions alone (a 250k-token
    vocabulary's logits for every position would be batch x length x 250k floats). `head_only`: no gradient
    reaches the encoder. `remap`: token id -> the restricted head's column."""
    total = int((batch["labels"] != -100).sum())  # at least one: see `mask_at_least_one`
    loss_sum = 0.0
    for part, _ in split_rows(batch, micro_tokens):
        width = part["input_ids"].shape[1]
        labels = part["labels"][:, :width].to(device)
        picked = labels != -100
        if not picked.any():
            continue
        set_recompute(encoder, not head_only and part["input_ids"].numel() > RECOMPUTE_TOKENS)
        with torch.set_grad_enabled(not head_only):
            hidden = encoder(
                input_ids=part["input_ids"].to(device), attention_mask=part["attention_mask"].to(device)
            ).last_hidden_state  # (B, T, H)
        logits = head(hidden[picked])  # (M, V): masked positions only
        targets = labels[picked] if remap is None else remap[labels[picked]]
        loss = F.cross_entropy(logits.float(), targets, reduction="sum") / total
        loss.backward()
        loss_sum += float(loss.detach())
    return loss_sum


def mask_at_least_one(batch: dict[str, torch.Tensor], tokenizer) -> bool:
    """Mask one random maskable token of a batch the collator left without any (a small mlm_probability on short
    texts does), so every step has a loss to learn from; False when the batch holds no token that can be masked."""
    if (batch["labels"] != -100).any():
        return True
    special = torch.tensor(tokenizer.all_special_ids)
    maskable = (batch["attention_mask"] == 1) & ~torch.isin(batch["input_ids"], special)
    candidates = maskable.nonzero()  # (N, 2): row, position
    if len(candidates) == 0:
        return False
    row, position = candidates[int(torch.randint(len(candidates), ()))].tolist()
    batch["labels"][row, position] = batch["input_ids"][row, position]
    batch["input_ids"][row, position] = tokenizer.mask_token_id
    return True


def _mean_or_none(losses: list[float]) -> float | None:
    """Rounded mean of the finite losses; None (JSON null, not NaN) when a diverged run left none."""
    finite = [x for x in losses if math.isfinite(x)]
    return round(float(np.mean(finite)), 4) if finite else None


def _keep_unused_weights(original: Path, out: Path) -> None:
    """Copy weights the masked-LM model has no place for (BERT's pooler) from the original, so the adapted folder
    loads as completely as the original did (no "newly initialized" report; fine-tuning drops the pooler anyway)."""
    from safetensors.torch import load_file, save_file

    source, target = original / "model.safetensors", out / "model.safetensors"
    if not (source.is_file() and target.is_file()):
        return
    adapted = load_file(str(target))
    missing = {k: v for k, v in load_file(str(source)).items() if k not in adapted}
    if missing:
        save_file({**adapted, **missing}, str(target), metadata={"format": "pt"})


def adapt(
    path: Path,
    backbone: str,
    texts: list[str],
    settings: DomainPretrainingConfig,
    options: Any,
    asked_precision: str,
    seed: int,
    quiet: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """The encoder at `path` after `settings.steps` masked-LM steps on `texts`, as a Hugging Face folder in the
    cache (computed once per fingerprint; a concurrent run waits for it), and a summary for metrics.json."""
    device = prec.device()
    precision = prec.resolve(asked_precision, device)  # the shared loop's choice: bf16 autocast where fast
    key = _fingerprint(
        {
            "version": VERSION,
            "backbone": backbone,
            "files": _weights_identity(path),
            "settings": settings.model_dump(exclude={"texts", "text_column"}),
            "freeze_embeddings": options.freeze_embeddings,
            "max_length": options.max_length,
            "micro_batch_tokens": options.micro_batch_tokens,
            "precision": precision,
            "seed": seed,
        },
        texts,
    )
    root = cache_dir(CACHE_KIND)
    target = root / f"{Path(backbone).name}-{key}"
    with cache_lock(target):
        if (target / SUMMARY).is_file():
            summary = json.loads((target / SUMMARY).read_text(encoding="utf-8"))
            return target, {**summary, "cached": True}
        staging = root / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        # its own random stream: the fine-tuning that follows draws the same head and dropout whether the
        # encoder came from the cache or was just computed
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            summary = _pretrain(path, texts, settings, options, device, precision, seed, staging, quiet)
        summary = {**summary, "backbone": backbone, "fingerprint": key, "extra_texts_file": settings.texts}
        atomic_write_json(staging / SUMMARY, summary)
        os.replace(staging, target)
    return target, {**summary, "cached": False}


def _pretrain(
    path: Path,
    texts: list[str],
    settings: DomainPretrainingConfig,
    options: Any,
    device: torch.device,
    precision: str,
    seed: int,
    out: Path,
    quiet: bool,
) -> dict[str, Any]:
    from transformers import DataCollatorForLanguageModeling

    torch.manual_seed(seed)  # the collator draws its masks from torch's global generator
    rng = np.random.default_rng(seed)
    tokenizer = _tokenizer_with_mask(path)
    model, head = _masked_lm(path)
    encoder = model.base_model
    frozen = freeze_word_embeddings(encoder, options.freeze_embeddings, 0)  # as fine-tuning will: see README
    limit = min(MAX_AUTO_LENGTH, getattr(model.config, "max_position_embeddings", 512))
    max_length = settings.max_length or options.max_length or fit_max_length(tokenizer, texts, limit)
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    remap = restrict_to_corpus(model, head, ids) if settings.corpus_vocabulary else None
    output_vocabulary = model.config.vocab_size if remap is None else int((remap >= 0).sum())
    if remap is not None:
        remap = remap.to(device)
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=settings.mlm_probability)
    model.to(device).train()
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(0.0 if any(k in name for k in NO_DECAY) else 0.01, []).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": p, "weight_decay": d} for d, p in groups.items()],
        lr=settings.learning_rate,
        fused=device.type in ("cpu", "cuda") or None,
    )
    scheduler = make_scheduler(optimizer, "linear", int(WARMUP_RATIO * settings.steps), settings.steps)
    params = [p for group in groups.values() for p in group]
    batch_size = min(settings.batch_size, len(ids))
    head_steps = int(HEAD_FIRST * settings.steps)
    order: list[int] = []
    losses: list[float] = []
    release_free_memory()
    start = time.perf_counter()
    with training_progress(quiet) as bar:
        task_id = bar.add_task("domain pretraining", total=settings.steps, completed=0, loss=0.0, speed=0.0)
        for step in range(settings.steps):
            if len(order) < batch_size:  # a new pass over the texts, shuffled
                order += rng.permutation(len(ids)).tolist()
            rows, order = order[:batch_size], order[batch_size:]
            batch = collate([{"input_ids": ids[i]} for i in rows])
            if not mask_at_least_one(batch, tokenizer):
                continue  # nothing to predict in these texts (all special or unknown tokens)
            with prec.autocast(precision, device):
                loss = _step_loss(encoder, head, batch, options.micro_batch_tokens, device, step < head_steps, remap)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss)
            speed = (step + 1) * batch_size / max(1e-9, time.perf_counter() - start)
            bar.update(task_id, completed=step + 1, loss=float(np.nanmean(losses[-50:])), speed=speed)
    seconds = time.perf_counter() - start
    if not losses:
        raise DataError(
            f"model.domain_pretraining: no step had a token to mask in {len(texts)} texts, so the encoder learned "
            "nothing",
            "check model.domain_pretraining.texts and the training texts, or set model.domain_pretraining: null",
        )
    set_recompute(encoder, False)
    encoder.to("cpu").save_pretrained(str(out))  # the encoder alone, in safetensors; the head is dropped
    _keep_unused_weights(path, out)
    tokenizer.save_pretrained(str(out))
    window = max(1, math.ceil(len(losses) / 10))
    every = max(1, len(losses) // CURVE_POINTS)
    return {
        "texts": len(texts),
        "steps": settings.steps,
        "batch_size": batch_size,
        "learning_rate": settings.learning_rate,
        "mlm_probability": settings.mlm_probability,
        "max_length": max_length,
        "output_vocabulary": output_vocabulary,
        "frozen_embeddings": frozen,
        "head_only_steps": head_steps,
        "steps_trained": len(losses),
        "loss_first": _mean_or_none(losses[:window]),
        "loss_last": _mean_or_none(losses[-window:]),
        "loss_curve": [[i + 1, _mean_or_none([losses[i]])] for i in range(every - 1, len(losses), every)],
        "seconds": round(seconds, 2),
        "texts_per_second": round(settings.steps * batch_size / max(seconds, 1e-9), 2),
        "device": device.type,
        "precision": precision,
    }


def encoder_for(path: Path, backbone: str, config: Any, data: Any) -> Path:
    """The folder to fine-tune: `path` itself, or with `model.domain_pretraining` set, the encoder after masked-LM
    on the training texts and the extra file's (cached); its summary goes to the data report and metrics.json."""
    settings = config.model.domain_pretraining
    if settings is None:
        return path
    from modelyard.training.distributed import is_main_process

    held_out = [t for name in ("validation", "test") for t in data.splits[name]["text"]]
    texts, dropped = corpus(data.splits["train"]["text"].tolist(), read_texts(settings, config.data.format), held_out)
    folder, summary = adapt(
        path, backbone, texts, settings, config.model, config.train.precision, config.train.seed, not is_main_process()
    )
    data.report["domain_pretraining"] = {**summary, "extra_texts_dropped_as_held_out": dropped}
    return folder
