"""Logistic regression on frozen features: the image baseline, and the starting head of LP-FT fine-tuning.

Fine-tuning a pretrained trunk under a randomly initialised head distorts the trunk's features while the head is
still wrong; starting the head from the linear probe and then fine-tuning everything (LP-FT, Kumar et al. 2022)
keeps them, which matters most on small photo sets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # scikit-learn takes seconds to import: a served model that never fits a probe needs none of it
    from sklearn.pipeline import Pipeline


def fit_probe(x: np.ndarray, y: np.ndarray) -> Pipeline:
    """Standardised features -> logistic regression, its C chosen by cross-validation on the training rows
    (C = 0.1 when a class has a single example, too few to cross-validate)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = int(np.bincount(y).min())
    classifier = LogisticRegression(max_iter=2000, C=0.1)
    if smallest >= 2:
        classifier = GridSearchCV(classifier, {"C": [0.01, 0.1, 1.0]}, cv=min(3, smallest))
    return make_pipeline(StandardScaler(), classifier).fit(x, y)


def linear_head(probe: Pipeline) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe as one linear layer's (weight (K, D), bias (K,)) over raw features, the scaler folded in.

    A binary probe has one logit margin m = w.x + b; the two-class softmax of (-m/2, m/2) gives its probabilities.
    """
    scaler, classifier = probe.steps[0][1], probe.steps[-1][1]
    classifier = getattr(classifier, "best_estimator_", classifier)
    coef = classifier.coef_ / scaler.scale_  # (K, D), or (1, D) for two classes
    intercept = classifier.intercept_ - coef @ scaler.mean_
    if coef.shape[0] == 1:
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    return torch.from_numpy(coef.astype(np.float32)), torch.from_numpy(intercept.astype(np.float32))
