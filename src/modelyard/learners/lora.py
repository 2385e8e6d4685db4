"""The learner for a pretrained causal LM (SmolLM2 or any local HF folder), fine-tuned with LoRA through peft.

Chat examples are rendered with the model's own chat template and the loss covers only the assistant turns
(their text and end-of-turn token). The output layer runs only where there is a target token, which saves the
vocabulary-sized matmul on every prompt position. The bundle holds the adapter and names the base model, or,
with `merge: true`, the merged weights as a complete Hugging Face folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from modelyard.errors import BundleError, ConfigError
from modelyard.fsutil import atomic_path, atomic_write_text
from modelyard.generation.decoders import HFDecoder
from modelyard.generation.generator import Prompt, TextGenerator
from modelyard.metrics.language_model import perplexity_metrics
from modelyard.models import causal_lm

IGNORE = -100
OPENING_MARK = "\x00modelyard-answer\x00"  # stands for the answer of a conversation's first turn


class HFCodec:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)


class PromptCodec(HFCodec):
    """Prompts open with the model's begin-of-text token when its tokenizer adds one (Gemma answers poorly
    without it) and the text (a rendered chat template) does not already hold it."""

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer)
        bos = tokenizer.bos_token_id
        self.bos = bos if bos is not None and tokenizer.encode("a")[:1] == [bos] else None

    def encode(self, text: str) -> list[int]:
        ids = super().encode(text)
        return ids if self.bos is None or ids[:1] == [self.bos] else [self.bos, *ids]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _eos_ids(model: torch.nn.Module, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = set(ids if isinstance(ids, list) else [ids]) | {tokenizer.eos_token_id}
    return {i for i in ids if i is not None}


class CausalLMLearner:
    def __init__(self, model: torch.nn.Module, tokenizer: Any, backbone: str, options: Any) -> None:
        self.module = model
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.options = options
        self.precision = "fp32"
        self._base = model.get_base_model() if hasattr(model, "get_base_model") else model
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad)
        self.generator = TextGenerator(
            HFDecoder(self._base, _eos_ids(self._base, tokenizer), self.pad_id, options.decode_weights),
            PromptCodec(tokenizer),
            self.render_chat,
            options.generation,
            vocab_size=len(tokenizer),
        )

    @classmethod
    def pretrained(cls, backbone: str, options: Any) -> CausalLMLearner:
        model, tokenizer = causal_lm.load(backbone)
        if options.lora is not None:
            model = _with_lora(model, options.lora)
        return cls(model, tokenizer, backbone, options)

    @classmethod
    def load(cls, directory: Path, manifest: dict[str, Any], options: Any) -> CausalLMLearner:
        """A merged bundle is a complete HF folder; an adapter bundle is merged into its base on load."""
        if (directory / "config.json").is_file():
            model, tokenizer = causal_lm.load(str(directory))
            return cls(model, tokenizer, manifest.get("base_model", manifest["backbone"]), options)
        base = manifest.get("base_model")
        if not base or not (directory / "adapter_config.json").is_file():
            raise BundleError(f"{directory}: neither merged weights (config.json) nor a LoRA adapter")
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

        model, tokenizer = causal_lm.load(base)
        config = LoraConfig(**json.loads((directory / "adapter_config.json").read_text(encoding="utf-8")))
        model = get_peft_model(model, config)
        set_peft_model_state_dict(model, load_file(directory / "model.safetensors"))
        return cls(model.merge_and_unload().eval(), tokenizer, base, options)

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def train_defaults(self) -> dict[str, Any]:
        """LoRA's usual recipe: a high LR (2e-4) with cosine decay; full fine-tuning takes a 10x lower one."""
        lr = 2e-4 if self.options.lora is not None else 2e-5
        return {"learning_rate": lr, "batch_size": 8, "epochs": 2, "scheduler": "cosine", "weight_decay": 0.0}

    def finish_training(self) -> bool:
        """Score the final validation and test splits in fp32, as the bundle is loaded back for `evaluate`,
        `report` and serving: bf16 autocast, fine for training, puts the test loss off by a fifth or more. True
        (validate again) when training ran in bf16."""
        if self.precision == "fp32":
            return False
        self.precision = "fp32"
        return True

    def encode_example(self, item: str | dict) -> tuple[list[int], list[int]]:
        return encode_example(self.tokenizer, item, self.options.max_length)

    def dataset(self, data: list[str | dict], training: bool) -> list[dict[str, list[int]]]:
        """Encoded examples, without those left with no target token by `max_length` (`validate` counts them)."""
        examples = [self.encode_example(item) for item in data]
        return [{"input_ids": i, "labels": lab} for i, lab in examples if has_target(lab)]

    def lengths(self, dataset: list[dict[str, list[int]]]) -> list[int]:
        return [len(item["input_ids"]) for item in dataset]

    def collate(self, items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Right-padded to the longest item of the batch."""
        width = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, it in enumerate(items):
            n = len(it["input_ids"])
            ids[row, :n], labels[row, :n], mask[row, :n] = (
                torch.tensor(it["input_ids"]),
                torch.tensor(it["labels"]),
                1,
            )
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def _token_losses(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of every target token; logits are computed only at the positions that predict one.

        When every row of the batch opens with the same tokens (a shared system prompt), that prefix runs once and
        its keys and values are repeated for the rows' own suffixes: the same loss and gradients, fewer tokens
        through the model. (LoRA dropout then draws one mask for the shared prefix instead of one per row.)
        """
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        shared = _shared_prefix(ids, mask, labels)
        decoder = self._base.get_decoder()
        if shared:
            cache = decoder(input_ids=ids[:1, :shared], use_cache=True).past_key_values
            cache.batch_repeat_interleave(len(ids))
            hidden = decoder(input_ids=ids[:, shared:], attention_mask=mask, past_key_values=cache).last_hidden_state
        else:
            hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, C)
        targets = labels[:, shared + 1 :]  # position t predicts token t + 1
        keep = targets != IGNORE
        logits = self._base.get_output_embeddings()(hidden[:, :-1][keep])  # (N, vocab)
        return F.cross_entropy(logits.float(), targets[keep], reduction="none")

    def token_losses(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of every target token, row by row (preference tuning sums them per answer)."""
        return self._token_losses(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._token_losses(batch).mean()

    def evaluate(self, data: list[str | dict]) -> dict[str, Any]:
        units, outputs = self.eval_outputs(data)
        return self.eval_score(data, outputs[np.argsort(units)])

    def eval_score(self, data: list[str | dict], outputs: np.ndarray) -> dict[str, Any]:
        """Mean loss over the target tokens of the split, and its perplexity; `outputs` holds each example's
        summed loss and target-token count."""
        return perplexity_metrics(outputs)

    def unit_losses(self, data: list[str | dict]) -> tuple[np.ndarray, np.ndarray]:
        """Summed loss and count of the target tokens of each example, in the split's order (the report's
        bootstrap resamples these)."""
        units, outputs = self.eval_outputs(data)
        outputs = outputs[np.argsort(units)]
        return outputs[:, 0], outputs[:, 1]

    def eval_outputs(self, data: list[str | dict], shard: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """Examples and their (summed target loss, target-token count), from every shard[1]-th of the
        length-sorted batches of 16 (ShardedEvaluation)."""
        dataset = self.dataset(data, training=False)
        order = sorted(range(len(dataset)), key=lambda i: len(dataset[i]["input_ids"]))
        batches = [order[start : start + 16] for start in range(0, len(order), 16)][shard[0] :: shard[1]]
        units = [row for rows in batches for row in rows]
        outputs = np.zeros((len(units), 2))
        if not units:
            return np.zeros(0, dtype=np.int64), outputs
        was_training = self.module.training
        self.module.eval()
        device = next(self.module.parameters()).device
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            done = 0
            for rows in batches:
                batch = {k: v.to(device) for k, v in self.collate([dataset[i] for i in rows]).items()}
                per_row = (batch["labels"][:, 1:] != IGNORE).sum(1).tolist()
                for losses in self._token_losses(batch).split(per_row):
                    outputs[done] = losses.double().sum().item(), len(losses)
                    done += 1
        self.module.train(was_training)
        return np.asarray(units, dtype=np.int64), outputs

    def generate(self, prompt: Prompt, **options: Any) -> str:
        return "".join(self.generate_stream(prompt, **options))

    def generate_stream(self, prompt: Prompt, **options: Any) -> Iterator[str]:
        self.module.eval()
        return self.generator.stream(prompt, **options)

    def predict(self, inputs: list[Prompt], top_k: int = 1) -> list[dict[str, Any]]:
        """The answer to each input: a user message (str) or a list of chat messages."""
        self.module.eval()
        return self.generator.complete([[{"role": "user", "content": p}] if isinstance(p, str) else p for p in inputs])

    def save(self, directory: Path) -> dict[str, Any]:
        extras = {"base_model": self.backbone}
        if self.options.lora is None or self.options.merge:
            self._save_merged(directory)
            return {**extras, "weights": "merged"}
        from peft import get_peft_model_state_dict

        with atomic_path(directory / "model.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(self.module).items()}, str(tmp))
        config = self.module.peft_config["default"].to_dict()
        config = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
        for key in ("peft_type", "task_type", "base_model_name_or_path", "revision", "auto_mapping"):
            config.pop(key, None)
        atomic_write_text(directory / "adapter_config.json", json.dumps(config, indent=2, default=str) + "\n")
        return {**extras, "weights": "lora-adapter", "trainable_parameters": _trainable(self.module)}

    def _save_merged(self, directory: Path) -> None:
        """Full weights with the adapter folded in, as a Hugging Face folder (the module stays usable)."""
        merged = hasattr(self.module, "merge_adapter")
        if merged:
            self.module.merge_adapter()
        state = {k.replace(".base_layer", ""): v for k, v in self._base.state_dict().items() if "lora_" not in k}
        self._base.save_pretrained(directory, state_dict=state, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        if merged:
            self.module.unmerge_adapter()


def _opening(tokenizer: Any) -> str:
    """What the template writes before the content of an assistant turn that opens the conversation (its default
    system prompt, the assistant header): that turn's context, as a rendered empty conversation would be if
    templates allowed one. Found by rendering a marker as the answer (templates may trim the content)."""
    text = tokenizer.apply_chat_template([{"role": "assistant", "content": OPENING_MARK}], tokenize=False)
    return text[: text.index(OPENING_MARK)]


def encode_example(tokenizer: Any, item: str | dict, max_length: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) with labels IGNORE outside the assistant turns; cut to `max_length` tokens."""
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    if isinstance(item, str):
        ids = [*encode(item), tokenizer.eos_token_id]
        return ids[:max_length], ids[:max_length]
    messages, ids, labels, done = item["messages"], [], [], ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        if i:
            prefix = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        else:
            prefix = _opening(tokenizer)
        full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        context = encode(prefix[len(done) :])
        answer = encode(full[len(prefix) :].rstrip("\n"))
        ids += context + answer
        labels += [IGNORE] * len(context) + answer
        done = full.rstrip("\n")
    return ids[:max_length], labels[:max_length]


def has_target(labels: list[int]) -> bool:
    """Whether an encoded example has a token to learn (position 0 predicts nothing)."""
    return any(t != IGNORE for t in labels[1:])


def count_cut_away(backbone: str, splits: dict[str, list], max_length: int) -> dict[str, int]:
    """How many examples of each split `max_length` leaves with no answer token (training and scoring drop them),
    with the backbone's tokenizer and chat template only: what `validate` can tell without loading the model."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(causal_lm.resolve(backbone))
    return {
        name: sum(not has_target(encode_example(tokenizer, item, max_length)[1]) for item in items)
        for name, items in splits.items()
    }


def check_target_modules(backbone: str, names: list[str]) -> None:
    """ConfigError unless every name of `model.lora.target_modules` names modules of the backbone (as peft matches
    them: the full dotted name or its ending), listing its linear layers; the model is built on the meta device,
    so no weights are read."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(causal_lm.resolve(backbone)))
    modules = [name for name, _ in model.named_modules() if name]
    unknown = [n for n in names if not any(m == n or m.endswith("." + n) for m in modules)]
    if unknown:
        linear = sorted({m.rsplit(".", 1)[-1] for m, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)})
        raise ConfigError(
            f"model.lora.target_modules: {', '.join(unknown)} names no module of {backbone}",
            f"its linear layers: {', '.join(linear)} (or all-linear)",
        )


def _shared_prefix(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, least: int = 8) -> int:
    """Length of the prefix common to every row that predicts no target (0 when shorter than `least` tokens or
    the batch has one row): its hidden states are needed only as keys and values for the rest."""
    if len(ids) < 2:
        return 0
    same = ((ids == ids[:1]) & (mask == 1)).all(0)
    common = int(same.long().cumprod(0).sum())
    has_target = (labels != IGNORE).any(0)
    first_target = int(has_target.long().argmax()) if bool(has_target.any()) else ids.shape[1]
    shared = min(common, first_target - 1)
    return shared if shared >= least else 0


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _with_lora(model: torch.nn.Module, lora: Any) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
