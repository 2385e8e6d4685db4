"""TF-IDF + one-vs-rest logistic regression for label sets: the baseline beside every multi-label model, and a
backbone of its own (`tfidf-linear`). Thresholds are tuned on validation as for the neural model, so the two are
compared on equal terms. Saved without pickle: vocabulary as JSON, idf and one linear layer as safetensors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file, save_file

from modelyard.fsutil import atomic_path, atomic_write_json
from modelyard.learners.multilabel import Decision
from modelyard.learners.tfidf import make_vectorizer
from modelyard.metrics.multilabel import label_matrix

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer

HEADLINE = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "micro_precision", "micro_recall")


class TfidfOvrLearner:
    """One logistic regression per label on shared TF-IDF features (module is None: trained by `fit`)."""

    module = None
    backbone = "tfidf-linear"

    def __init__(self, decision: Decision, vectorizer: TfidfVectorizer | None = None) -> None:
        self.decision = decision
        self.labels = decision.labels
        self.vectorizer = vectorizer
        self.coef = np.zeros((len(self.labels), 0), dtype=np.float32)  # (L, F)
        self.intercept = np.zeros(len(self.labels), dtype=np.float32)  # (L,)

    def train_defaults(self) -> dict[str, Any]:
        return {"epochs": 1, "batch_size": 1, "learning_rate": 1.0}

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame | None = None) -> None:
        """Fit every label's regression; a label present in every row or none gets a constant score."""
        from sklearn.linear_model import LogisticRegression

        texts = train["text"].tolist()
        self.vectorizer = make_vectorizer(texts)
        features = self.vectorizer.fit_transform(texts)
        y = label_matrix(train["labels"].tolist(), self.labels)
        self.coef = np.zeros((len(self.labels), features.shape[1]), dtype=np.float32)
        for j in range(len(self.labels)):
            share = y[:, j].mean()
            if 0 < share < 1:
                # liblinear: 20x less CPU than lbfgs for one binary problem on sparse n-grams (GoEmotions slice)
                model = LogisticRegression(C=10.0, solver="liblinear", max_iter=2000).fit(features, y[:, j])
                self.coef[j], self.intercept[j] = model.coef_[0], model.intercept_[0]
            else:
                self.intercept[j] = 20.0 if share else -20.0
        if validation is not None and len(validation):
            self.decision.tune(
                label_matrix(validation["labels"].tolist(), self.labels),
                self.predict_proba(validation["text"].tolist()),
            )

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        logits = self.vectorizer.transform(texts) @ self.coef.T + self.intercept  # (N, L)
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))

    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        y = label_matrix(data["labels"].tolist(), self.labels)
        return self.decision.score(y, self.predict_proba(data["text"].tolist()))

    def predict(self, inputs: list[str], top_k: int = 1) -> list[dict[str, Any]]:
        return self.decision.answers(self.predict_proba([str(x) for x in inputs]), top_k)

    def save(self, directory: Path) -> dict[str, Any]:
        vec = self.vectorizer
        keep = ("analyzer", "ngram_range", "sublinear_tf", "lowercase", "norm", "token_pattern")
        params = {k: v for k, v in vec.get_params().items() if k in keep}
        vocab = {term: int(i) for term, i in vec.vocabulary_.items()}
        atomic_write_json(directory / "tfidf.json", {"params": params, "vocabulary": vocab})
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file({"idf": vec.idf_.astype(np.float64), "coef": self.coef, "intercept": self.intercept}, str(tmp))
        self.decision.save(directory)
        return {"labels": self.labels}

    @classmethod
    def load(cls, directory: Path, labels: list[str]) -> TfidfOvrLearner:
        from sklearn.feature_extraction.text import TfidfVectorizer

        spec = json.loads((directory / "tfidf.json").read_text(encoding="utf-8"))
        params = {**spec["params"], "ngram_range": tuple(spec["params"]["ngram_range"])}
        tensors = load_file(str(directory / "model.safetensors"))
        vectorizer = TfidfVectorizer(vocabulary=spec["vocabulary"], **params)
        vectorizer.idf_ = tensors["idf"]
        learner = cls(Decision.load(directory, labels), vectorizer)
        learner.coef, learner.intercept = tensors["coef"], tensors["intercept"]
        return learner


def tfidf_ovr_baseline(
    train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, decision: Decision
) -> dict[str, Any]:
    """Fit on train, tune thresholds on validation, report the headline metrics on validation and test."""
    learner = TfidfOvrLearner(decision)
    learner.fit(train, validation)
    splits = {"validation": validation, "test": test}
    return {
        name: {k: v for k, v in learner.evaluate(frame).items() if k in HEADLINE}
        for name, frame in splits.items()
        if len(frame)
    }
