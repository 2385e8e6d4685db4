"""The baseline beside every image model: frozen pretrained EfficientNet-Lite0 features + logistic regression.

What fine-tuning must beat. Features are computed once per image, with the evaluation transform.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from modelyard.data.images import load_image
from modelyard.learners.image_inputs import EFFICIENTNET, Preprocessing
from modelyard.learners.linear_probe import fit_probe
from modelyard.metrics.classification import classification_metrics
from modelyard.models import efficientnet

HEADLINE = ("accuracy", "macro_f1", "macro_precision", "macro_recall")
BATCH = 32


@torch.inference_mode()
def extract(trunk: torch.nn.Module, paths: list[str], prep: Preprocessing) -> np.ndarray:
    """(N, 1280) pooled features of the ImageNet trunk, through `prep`'s evaluation transform."""
    transform = prep.eval_transform()
    out = []
    for start in range(0, len(paths), BATCH):
        pixels = torch.stack([transform(load_image(p, prep.resize)) for p in paths[start : start + BATCH]])
        out.append(trunk(pixels).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, efficientnet.FEATURES), dtype=np.float32)


def frozen_features_baseline(splits: dict[str, pd.DataFrame], labels: list[str], prep: Preprocessing) -> dict[str, Any]:
    """Fit on train features, report headline metrics on validation and test (`baselines.frozen_features`);
    `prep` is the evaluation transform, the fine-tuned model's own for a like-for-like comparison."""
    trunk = efficientnet.imagenet_model().eval()
    trunk.reset_classifier(0)
    index = {label: i for i, label in enumerate(labels)}
    train = splits["train"]
    x = extract(trunk, train["path"].tolist(), prep)
    y = train["label"].map(index).to_numpy()
    classifier = fit_probe(x, y)
    result: dict[str, Any] = {"backbone": EFFICIENTNET, "image_size": prep.image_size}
    for name in ("validation", "test"):
        frame = splits.get(name)
        if frame is None or frame.empty:
            continue
        frame = frame[frame["label"].isin(index)]
        pred = classifier.predict(extract(trunk, frame["path"].tolist(), prep))
        metrics = classification_metrics(frame["label"].map(index).tolist(), pred.tolist(), labels)
        result[name] = {k: v for k, v in metrics.items() if k in HEADLINE}
    return result
