"""Why did the model say that: per-token attributions for text classifiers, per-pixel ones for CNNs.

TF-IDF + logistic regression is linear, so its attributions are exact (coefficient x tf-idf value of
every n-gram, shared among the tokens the n-gram spans). Transformer classifiers get integrated gradients
(Captum) over the token embeddings, from a baseline where every real token is replaced by padding. Both
satisfy completeness: the attributions sum to output(input) - output(baseline), reported beside them.
Image classifiers get integrated gradients over pixels from a black image, shown as a heat-map.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from modelyard.data.blank import is_blank
from modelyard.errors import UserError
from modelyard.learners.text import TextClassifierLearner
from modelyard.learners.tfidf import TfidfLinearLearner

IG_STEPS = 50
IMAGE_STEPS = 32  # the first try; four times as many while the attributions miss the output change
IMAGE_MAX_STEPS = 512
IMAGE_SECONDS = 60.0  # `modelyard explain`: no further try once it would take the explanation past this
QUICK_SECONDS = 0.0  # the server (its model thread serves predictions too) and the report: the first try only
CONVERGED = 0.05  # |attribution sum - (output - baseline output)| / |output - baseline output| that counts as exact
HEATMAP_MIN_SIDE = 192


def _target(learner: Any, probs: np.ndarray, label: str | None) -> int:
    if label is None:
        return int(probs.argmax())
    if label not in learner.labels:
        raise UserError(f"unknown label {label!r}", f"choose one of the model's labels, e.g. {learner.labels[0]!r}")
    return learner.labels.index(label)


def _linear(learner: TfidfLinearLearner, text: str, label: str | None) -> dict[str, Any]:
    """Exact: logit_c = intercept_c + sum_j coef_cj * x_j; each n-gram's share goes evenly to its tokens."""
    vec = learner.vectorizer
    probs = learner.predict_proba([text])[0]
    target = _target(learner, probs, label)
    row = int(np.flatnonzero(learner.classifier.classes_ == target)[0])
    coef = np.asarray(learner.classifier.coef_[row], dtype=np.float64)
    features = vec.transform([text]).tocsr()
    weight = {int(j): coef[j] * v for j, v in zip(features.indices, features.data, strict=True)}
    doc = vec.build_preprocessor()(text)
    if vec.analyzer == "char":
        units, joiner = list(" ".join(doc.split())), ""
    else:
        units, joiner = vec.build_tokenizer()(doc), " "
    low, high = vec.ngram_range
    spans: dict[int, list[tuple[int, int]]] = {}
    for n in range(low, high + 1):
        for i in range(len(units) - n + 1):
            j = vec.vocabulary_.get(joiner.join(units[i : i + n]))
            if j is not None and j in weight:
                spans.setdefault(j, []).append((i, n))
    attributions = np.zeros(len(units))
    for j, places in spans.items():
        for i, n in places:
            attributions[i : i + n] += weight[j] / len(places) / n
    intercept = float(learner.classifier.intercept_[row])
    return {
        "tokens": units,
        "attributions": attributions.round(6).tolist(),
        "label": learner.labels[target],
        "score": float(probs[target]),
        "method": "linear: coefficient x tf-idf value (exact)",
        "truncated": False,  # the vectorizer reads the whole text
        "output": intercept + float(sum(weight.values())),
        "baseline_output": intercept,
    }


def _embedding_layer(module: torch.nn.Module) -> torch.nn.Module:
    encoder = module.encoder
    if hasattr(encoder, "get_input_embeddings"):
        return encoder.get_input_embeddings()
    return encoder.tokens


def _integrated_gradients(learner: TextClassifierLearner, text: str, label: str | None, steps: int) -> dict[str, Any]:
    """Integrated gradients of the target logit w.r.t. the token embeddings; special tokens stay in the
    baseline, every other token becomes padding. For a multi-label model the logit is that label's own (its
    sigmoid is the score), so any label can be explained, not only the best."""
    from captum.attr import LayerIntegratedGradients  # a second to import: only when asked to explain

    module = getattr(learner.module, "module", learner.module)
    module.eval()
    tok = learner.tokenizer
    device = next(module.parameters()).device
    ids = torch.tensor([learner.encode([text])[0]], device=device)  # (1, T)
    mask = torch.ones_like(ids)
    special_ids = tok.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True)
    special = torch.tensor(special_ids, device=device).bool()
    baseline = torch.where(special, ids[0], torch.tensor(tok.pad_token_id or 0, device=device))[None]  # (1, T)

    def logits(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return module(input_ids, attention_mask.expand(input_ids.shape[0], -1))  # (B, num_labels)

    with torch.no_grad():
        out = logits(torch.cat([ids, baseline]), mask).float().cpu()  # (2, num_labels)
    probs = learner.activate(out.numpy())[0]  # the scores predict answers: a softmax, or a sigmoid per label
    target = _target(learner, probs, label)
    ig = LayerIntegratedGradients(logits, _embedding_layer(module))
    attr, delta = ig.attribute(
        ids,
        baselines=baseline,
        target=target,
        additional_forward_args=(mask,),
        n_steps=steps,
        internal_batch_size=steps,
        return_convergence_delta=True,
    )
    per_token = attr.sum(-1)[0].detach().float().cpu()  # (T,)
    keep = ~special.cpu()
    return {
        **_truncation(learner, text, int(keep.sum())),
        "tokens": tok.convert_ids_to_tokens(ids[0].cpu()[keep].tolist()),
        "attributions": per_token[keep].numpy().round(6).tolist(),
        "label": learner.labels[target],
        "score": float(probs[target]),
        "method": f"integrated gradients over token embeddings ({steps} steps, padding baseline)",
        "output": float(out[0, target]),
        "baseline_output": float(out[1, target]),
        "convergence_delta": float(delta.abs().max()),
    }


def _truncation(learner: TextClassifierLearner, text: str, explained: int) -> dict[str, Any]:
    """Whether the model read only the first `explained` tokens of `text` (its `max_length`, special tokens
    included), and if so how many the whole text has: the rest weighs in neither the answer nor its explanation."""
    prefixed = learner.spec.get("text_prefix", "") + text  # as `encode` reads it, before it truncates
    whole = len(learner.tokenizer(prefixed, add_special_tokens=False, verbose=False)["input_ids"])
    if whole <= explained:
        return {"truncated": False}
    return {"truncated": True, "text_tokens": whole, "max_length": learner.spec["max_length"]}


def _is_image_learner(learner: Any) -> bool:
    return hasattr(learner, "to_image") and hasattr(learner, "prep") and getattr(learner, "differentiable", False)


def _heatmap(image: np.ndarray, strength: np.ndarray) -> str:
    """The input (H, W, 3 in 0..1) with attribution strength (H, W) laid over it, as a base64 PNG."""
    from matplotlib import colormaps
    from PIL import Image

    scale = np.percentile(strength, 99) or 1.0
    heat = colormaps["inferno"](np.clip(strength / scale, 0, 1))[..., :3]
    blended = (0.45 * image + 0.55 * heat).clip(0, 1)
    picture = Image.fromarray((blended * 255).astype(np.uint8))
    if picture.width < HEATMAP_MIN_SIDE:  # small inputs (e.g. 32 px) are upscaled so people can see them
        factor = -(-HEATMAP_MIN_SIDE // picture.width)
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def explain_image(
    model: Any, item: Any, label: str | None = None, steps: int = IMAGE_STEPS, seconds: float = IMAGE_SECONDS
) -> dict[str, Any]:
    """Integrated gradients over pixels from a black image; `heatmap` is a base64 PNG of where they lie. The
    attributions sum to output - baseline_output only as far as the path integral converged: `converged` and
    `relative_delta` say how far, after up to IMAGE_MAX_STEPS steps within `seconds` (deep CNNs such as
    EfficientNet need many)."""
    learner = model.learner
    module = getattr(learner.module, "module", learner.module)
    module.eval()
    prep = learner.prep
    device = next(module.parameters()).device
    pixels = prep.eval_transform()(learner.to_image(item))[None].float().to(device)  # (1, 3, H, W), normalised
    mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1)
    baseline = (torch.zeros_like(pixels) - mean) / std  # black, normalised the same way
    with torch.inference_mode(False), torch.enable_grad():
        with torch.no_grad():
            out = module(torch.cat([pixels, baseline])).float().cpu()  # (2, num_labels)
        probs = out[0].softmax(-1).numpy()
        target = _target(learner, probs, label)
        gap = float(out[0, target] - out[1, target])
        attr, delta, steps = _pixel_gradients(module, pixels, baseline, target, steps, gap, seconds)
    shown = (pixels * std + mean)[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()  # (H, W, 3)
    strength = attr[0].detach().abs().sum(0).cpu().numpy()  # (H, W)
    relative = delta / max(abs(gap), 1e-6)
    return {
        "heatmap": _heatmap(shown, strength),
        "label": learner.labels[target],
        "score": float(probs[target]),
        "method": f"integrated gradients over pixels ({steps} steps, black-image baseline)",
        "output": float(out[0, target]),
        "baseline_output": float(out[1, target]),
        "attribution_sum": float(attr.sum()),
        "convergence_delta": delta,
        "relative_delta": round(relative, 4),
        "converged": relative <= CONVERGED,
        "steps": steps,
    }


def _pixel_gradients(
    module: torch.nn.Module,
    pixels: torch.Tensor,
    baseline: torch.Tensor,
    target: int,
    steps: int,
    gap: float,
    seconds: float,
) -> tuple[torch.Tensor, float, int]:
    """Integrated gradients, retried with four times the steps while they miss the output change `gap` by more
    than CONVERGED of it, up to IMAGE_MAX_STEPS and `seconds`: (attributions, |delta|, steps used)."""
    from captum.attr import IntegratedGradients  # a second to import: only when asked to explain

    ig = IntegratedGradients(module)
    started = time.monotonic()
    while True:
        began = time.monotonic()
        attr, delta = ig.attribute(
            pixels,
            baselines=baseline,
            target=target,
            n_steps=steps,
            internal_batch_size=8,
            return_convergence_delta=True,
        )
        miss, took = float(delta.abs().max()), time.monotonic() - began
        done = miss <= CONVERGED * abs(gap) or steps * 4 > IMAGE_MAX_STEPS
        if done or time.monotonic() - started + 4 * took > seconds:
            return attr, miss, steps
        steps *= 4


@runtime_checkable
class SelfExplaining(Protocol):
    """A learner with its own exact attributions (e.g. TreeSHAP reason codes of tabular models)."""

    explainable: bool

    def explain(self, item: Any, label: str | None = None) -> dict[str, Any]: ...


def can_explain(model: Any) -> bool:
    learner = model.learner
    if isinstance(learner, SelfExplaining):
        return learner.explainable
    if isinstance(learner, TextClassifierLearner):
        return learner.differentiable  # not an ONNX Runtime or int8 export
    return isinstance(learner, TfidfLinearLearner) or _is_image_learner(learner)


def explain(model: Any, item: Any, label: str | None = None, seconds: float = IMAGE_SECONDS) -> dict[str, Any]:
    """Attributions for one input of any explainable model: tokens for text, a heat-map for images (whose
    integrated gradients may be retried with more steps within `seconds`)."""
    if isinstance(model.learner, SelfExplaining):
        return model.learner.explain(item, label)
    if _is_image_learner(model.learner):
        return explain_image(model, item, label, seconds=seconds)
    if isinstance(model.learner, (TfidfLinearLearner, TextClassifierLearner)):
        return explain_text(model, item, label)
    raise unavailable(model)  # whatever the input: the model, not the input, is what cannot be explained


EXPLAINABLE = (
    "text classifiers and entity models ({text}; a multi-label model with a transformer backbone), image "
    "classifiers ({image}) and table models ({row})"
)
CLI_INPUTS = {"text": "--text", "image": "--image", "row": "--row"}
HTTP_INPUTS = {"text": "input: the text", "image": "input: the image as base64", "row": "input: {column: value}"}


def unavailable(model: Any, over_http: bool = False) -> UserError:
    """Why this model cannot be explained: an export (which has no gradients to follow), or its kind of model;
    the remedy in the CLI's options, or (`over_http`) in /v1/explain's fields and without the bundle's path."""
    manifest = model.manifest
    if manifest.get("runtime", "torch") != "torch" or manifest.get("quantize"):
        runtime = "an ONNX Runtime" if manifest.get("runtime") == "onnxruntime" else "a PyTorch"
        int8 = " int8" if manifest.get("quantize") else ""
        source = manifest.get("export", {}).get("source", {}).get("path")
        subject = "this model" if over_http else getattr(model, "path", "this model")
        if over_http:
            hint = "serve the bundle it was exported from to explain its predictions"
        elif source:
            hint = f"explain the bundle it was exported from: modelyard explain {source} ..."
        else:
            hint = "explain the bundle `modelyard train` wrote, not an exported copy"
        return UserError(
            f"{subject}: {runtime}{int8} export cannot be explained (explanations need the gradients of the "
            "trained PyTorch model)",
            hint,
        )
    backbone = getattr(model.learner, "backbone", None)  # not every learner has one: the refusal must not fail
    kind = f"{manifest.get('task')} models" + (f" ({backbone})" if backbone else "")
    inputs = HTTP_INPUTS if over_http else CLI_INPUTS
    return UserError(f"explanations are not available for {kind}", "explain works for " + EXPLAINABLE.format(**inputs))


def explain_text(model: Any, text: str, label: str | None = None, steps: int = IG_STEPS) -> dict[str, Any]:
    """{"tokens", "attributions", "label", "score", "method", "output", "baseline_output", "truncated"} for one
    text; attributions are for `label` (default: the predicted one) and sum to output - baseline_output. A text
    longer than the model's `max_length` is explained (and predicted) from its first tokens only: `truncated` is
    then true, with `text_tokens` (the whole text's) and `max_length`."""
    learner = model.learner
    if not isinstance(text, str) or is_blank(text):
        raise UserError("explain needs a non-empty text")
    if isinstance(learner, TfidfLinearLearner):
        return _linear(learner, text, label)
    if isinstance(learner, TextClassifierLearner):
        with torch.inference_mode(False), torch.enable_grad():
            return _integrated_gradients(learner, text, label, steps)
    raise unavailable(model)
