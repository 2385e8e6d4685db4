"""The audio baseline (`baselines.mfcc_logreg`): MFCC statistics + logistic regression, the classic recipe a
neural model has to beat. Each clip becomes the mean and standard deviation of 20 MFCCs and of their deltas
over its voiced frames (80 numbers); standardised, then a multinomial logistic regression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from modelyard.metrics.classification import classification_metrics
from modelyard.models.audio_features import MFCC, FrontEndConfig, voice_segments

HEADLINE = ("accuracy", "macro_f1", "macro_precision", "macro_recall")
FRONT_END = FrontEndConfig(kind="mfcc", n_mels=40, n_mfcc=20)


@torch.inference_mode()
def mfcc_statistics(wave: np.ndarray, module: MFCC | None = None) -> np.ndarray:
    """(80,) mean and std of MFCCs and deltas over the voiced part of one 16 kHz waveform."""
    module = module or MFCC(FRONT_END)
    segments = voice_segments(wave)
    if segments:
        wave = wave[segments[0][0] : segments[-1][1]]
    mfcc = module(torch.from_numpy(np.ascontiguousarray(wave))[None])[0].numpy()  # (20, T)
    delta = np.diff(mfcc, axis=1) if mfcc.shape[1] > 1 else np.zeros_like(mfcc)
    return np.concatenate([mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)]).astype(np.float32)


def mfcc_logreg_baseline(
    splits: dict[str, pd.DataFrame],
    labels: list[str],
    waves: Callable[[str], np.ndarray],
    cache: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Fit on train, report headline metrics on validation and test; `waves(path)` gives 16 kHz samples and
    `cache` (path -> statistics) lets several splits of the same files (cross-validation) share the features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    module = MFCC(FRONT_END).eval()
    index = {label: i for i, label in enumerate(labels)}

    known = {} if cache is None else cache

    def features(frame: pd.DataFrame) -> np.ndarray:
        for path in frame["path"]:
            if path not in known:
                known[path] = mfcc_statistics(waves(path), module)
        return np.stack([known[p] for p in frame["path"]])

    train = splits["train"]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
    model.fit(features(train), train["label"].map(index).to_numpy())
    result: dict[str, Any] = {"features": "mean+std of 20 MFCCs and deltas (40 mel bands)"}
    for name in ("validation", "test"):
        frame = splits.get(name)
        if frame is None or frame.empty:
            continue
        frame = frame[frame["label"].isin(index)]
        pred = model.predict(features(frame))
        metrics = classification_metrics(frame["label"].map(index).tolist(), pred.tolist(), labels)
        result[name] = {k: v for k, v in metrics.items() if k in HEADLINE}
    return result
