"""The bundle's MiniLM classifier rebuilt from plain transformers + torch, for peer servers (LitServe, BentoML).

It runs in the peers' own virtual environments, so it imports nothing from modelyard: the bundle's encoder
config (encoder/), tokenizer (tokenizer/), weights (model.safetensors: `encoder.*` in Hugging Face BERT names,
`head.*` the linear head) and labels (modelyard.json) are read as files. Same architecture as
modelyard.models.encoder_classifier: mean-pooled token states, then the linear head; same max_length, same
precision (bf16 autocast when the bundle says bf16) and the same torch thread count as `modelyard serve`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoTokenizer


class MiniLMClassifier:
    """Texts in, one {"label", "score"} per text out: the whole batch in one padded forward pass."""

    def __init__(self, bundle: str | Path, threads: int | None = None) -> None:
        bundle = Path(bundle)
        torch.set_num_threads(threads or int(os.environ.get("PEER_THREADS", "0")) or len(os.sched_getaffinity(0)))
        spec = json.loads((bundle / "text_model.json").read_text())
        if spec.get("kind") != "hf":
            raise SystemExit(f"{bundle} is not a Hugging Face encoder bundle (kind={spec.get('kind')!r})")
        self.labels = json.loads((bundle / "modelyard.json").read_text())["labels"]
        self.max_length = int(spec["max_length"])
        self.bf16 = spec.get("precision") == "bf16"
        self.tokenizer = AutoTokenizer.from_pretrained(str(bundle / "tokenizer"))
        self.encoder = AutoModel.from_config(
            AutoConfig.from_pretrained(str(bundle / "encoder")), add_pooling_layer=False
        )
        weights = load_file(str(bundle / "model.safetensors"))
        encoder_weights = {k[len("encoder.") :]: v for k, v in weights.items() if k.startswith("encoder.")}
        encoder_weights = {k: v for k, v in encoder_weights.items() if not k.startswith("pooler.")}
        missing, unexpected = self.encoder.load_state_dict(encoder_weights, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise SystemExit(f"weights do not fit the encoder: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.head = torch.nn.Linear(weights["head.weight"].shape[1], weights["head.weight"].shape[0])
        self.head.load_state_dict({"weight": weights["head.weight"], "bias": weights["head.bias"]})
        self.encoder.eval()
        self.head.eval()

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> list[dict]:
        batch = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            states = self.encoder(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.head(pooled)
        probs = torch.softmax(logits.float(), dim=-1)
        scores, best = probs.max(dim=-1)
        return [
            {"label": self.labels[i], "score": float(s)} for i, s in zip(best.tolist(), scores.tolist(), strict=True)
        ]
