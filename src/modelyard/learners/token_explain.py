"""Why did the extractor tag that entity: integrated gradients (Captum) of the entity's tag logits with respect to
the token embeddings, as the text classifiers are explained (evaluation/explain.py).

The explained output is the sum, over the entity's words, of the logit of the tag each word was given (B-PER,
I-PER, ...), read at the word's first sub-token; the baseline replaces every real token by padding and keeps the
special tokens. Completeness holds: the attributions sum to output - baseline_output (up to the reported delta).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from modelyard.data.blank import is_blank
from modelyard.data.entities import split_words, tag_spans
from modelyard.errors import UserError

if TYPE_CHECKING:
    from modelyard.learners.token_tagger import TokenTaggerLearner

IG_STEPS = 50


def _entity(
    learner: TokenTaggerLearner, text: str, label: str | None
) -> tuple[dict[str, Any], list[int], list[int], list[int]]:
    """The entity to explain; the token ids prediction read its first word in (the whole text, or for a text past
    max_length the window that word was tagged in); the positions in them and the tag ids of its words."""
    if label is not None and label not in learner.labels:
        raise UserError(
            f"unknown entity type {label!r}", f"choose one of the model's types: {', '.join(learner.labels)}"
        )
    words = split_words(text)
    probs = learner.word_probabilities([text])[0]  # (W, tags)
    best = probs.argmax(-1)
    tags = [learner.tags[i] for i in best]
    spans = tag_spans(text, words, tags, [float(probs[w, i]) for w, i in enumerate(best)])
    chosen = [s for s in spans if label is None or s["label"] == label]
    if not chosen:
        what = f"no {label} entity" if label else "no entity"
        raise UserError(f"{what} found in this text: nothing to explain", "explain a text the model finds entities in")
    entity = chosen[0]
    windows, where = learner._windows(*learner._encode([text], learner._untruncated)[0])
    inside = [w for w, (start, end) in enumerate(words) if entity["start"] <= start and end <= entity["end"]]
    read = [w for w in inside if where[w][0] >= 0]  # a word the tokenizer makes nothing of has no logit
    window = where[read[0]][0]
    kept = [w for w in read if where[w][0] == window]  # an entity across two windows: the words tagged in this one
    return entity, windows[window], [where[w][1] for w in kept], [int(best[w]) for w in kept]


def explain_entity(
    learner: TokenTaggerLearner, text: str, label: str | None = None, steps: int = IG_STEPS
) -> dict[str, Any]:
    """{"tokens", "attributions", "entity", "label", "score", "method", "output", "baseline_output"} for the
    first predicted entity of `text` (of type `label` when given)."""
    from captum.attr import LayerIntegratedGradients  # a second to import: only when asked to explain

    if not isinstance(text, str) or is_blank(text):
        raise UserError("explain needs a non-empty text")
    entity, window, positions, tag_ids = _entity(learner, text, label)
    module = getattr(learner.module, "module", learner.module)
    module.eval()
    device = next(module.parameters()).device
    ids = torch.tensor([window], device=device)  # (1, T)
    mask = torch.ones_like(ids)
    special_ids = [i for i, token in learner.backend.get_added_tokens_decoder().items() if token.special]
    special = torch.isin(ids[0], torch.tensor(special_ids, device=device))  # (T,)
    baseline = torch.where(special, ids[0], torch.tensor(learner.spec["pad_id"], device=device))[None]  # (1, T)
    where, tag = torch.tensor(positions, device=device), torch.tensor(tag_ids, device=device)

    def entity_logit(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = module(input_ids, attention_mask.expand(input_ids.shape[0], -1))  # (B, T, tags)
        return logits[:, where, tag].float().sum(-1)  # (B,)

    with torch.inference_mode(False), torch.enable_grad():
        with torch.no_grad():
            out = entity_logit(torch.cat([ids, baseline]), mask).cpu()  # (2,)
        embeddings = module.encoder.get_input_embeddings()
        attr, delta = LayerIntegratedGradients(entity_logit, embeddings).attribute(
            ids,
            baselines=baseline,
            additional_forward_args=(mask,),
            n_steps=steps,
            internal_batch_size=steps,
            return_convergence_delta=True,
        )
    per_token = attr.sum(-1)[0].detach().float().cpu()  # (T,)
    keep = ~special.cpu()
    return {
        "tokens": [learner.backend.id_to_token(int(i)) for i in ids[0].cpu()[keep]],
        "attributions": per_token[keep].numpy().round(6).tolist(),
        "entity": entity,
        "label": entity["label"],
        "score": entity["score"],
        "method": f"integrated gradients over token embeddings of the entity's tag logits ({steps} steps, "
        "padding baseline)",
        "output": float(out[0]),
        "baseline_output": float(out[1]),
        "convergence_delta": float(delta.abs().max()),
    }
