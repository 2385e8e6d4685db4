"""TF-IDF + logistic regression: the baseline beside every text model, and a candidate backbone (`tfidf-linear`).

Saved without pickle: the vocabulary and idf weights as JSON/safetensors, the linear layer as safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file, save_file

from modelyard.fsutil import atomic_path, atomic_write_json
from modelyard.metrics.classification import classification_metrics, top_k_answers
from modelyard.models.tokenizers import cjk_share

if TYPE_CHECKING:  # scikit-learn and pandas take seconds to import: loading any text bundle imports this module
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression


def make_vectorizer(texts: list[str]) -> TfidfVectorizer:
    """Character n-grams for CJK text (no spaces between words), word uni+bigrams otherwise."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if cjk_share(texts[:2000]) > 0.3:
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2, max_features=200_000)
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000)


class TfidfLinearLearner:
    """A scikit-learn learner with the same interface as the neural ones (module is None: trained by `fit`)."""

    module = None
    backbone = "tfidf-linear"

    def __init__(
        self,
        labels: list[str],
        vectorizer: TfidfVectorizer | None = None,
        classifier: LogisticRegression | None = None,
    ) -> None:
        self.labels = labels
        self.vectorizer = vectorizer
        self.classifier = classifier

    def train_defaults(self) -> dict[str, Any]:
        return {"epochs": 1, "batch_size": 1, "learning_rate": 1.0}

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame | None = None) -> None:
        from sklearn.linear_model import LogisticRegression

        texts = train["text"].tolist()
        self.vectorizer = make_vectorizer(texts)
        features = self.vectorizer.fit_transform(texts)
        y = train["label"].map({label: i for i, label in enumerate(self.labels)}).to_numpy()
        self.classifier = LogisticRegression(C=10.0, max_iter=2000)
        weights = train["weight"].to_numpy() if "weight" in train else None  # data.label_noise action: weight
        self.classifier.fit(features, y, sample_weight=weights)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        probs = self.classifier.predict_proba(self.vectorizer.transform(texts))
        full = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        full[:, self.classifier.classes_] = probs
        return full

    def evaluate(self, data: pd.DataFrame) -> dict[str, Any]:
        index = {label: i for i, label in enumerate(self.labels)}
        pred = self.predict_proba(data["text"].tolist()).argmax(1)
        return classification_metrics(data["label"].map(index).tolist(), pred.tolist(), self.labels)

    def predict(self, inputs: list[str], top_k: int = 1) -> list[dict[str, Any]]:
        return top_k_answers(self.predict_proba([str(x) for x in inputs]), self.labels, top_k)

    def save(self, directory: Path) -> dict[str, Any]:
        vec = self.vectorizer
        params = {
            k: v
            for k, v in vec.get_params().items()
            if k in ("analyzer", "ngram_range", "sublinear_tf", "lowercase", "norm", "token_pattern")
        }
        vocab = {term: int(i) for term, i in vec.vocabulary_.items()}
        atomic_write_json(directory / "tfidf.json", {"params": params, "vocabulary": vocab})
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file(
                {
                    "idf": vec.idf_.astype(np.float64),
                    "coef": np.ascontiguousarray(self.classifier.coef_, dtype=np.float32),  # sklearn: F-order
                    "intercept": self.classifier.intercept_.astype(np.float32),
                    "classes": self.classifier.classes_.astype(np.int64),
                },
                str(tmp),
            )
        return {"labels": self.labels}

    @classmethod
    def load(cls, directory: Path, labels: list[str]) -> TfidfLinearLearner:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        spec = json.loads((directory / "tfidf.json").read_text(encoding="utf-8"))
        params = spec["params"]
        params["ngram_range"] = tuple(params["ngram_range"])
        tensors = load_file(str(directory / "model.safetensors"))
        vec = TfidfVectorizer(vocabulary=spec["vocabulary"], **params)
        vec.idf_ = tensors["idf"]
        clf = LogisticRegression()
        clf.coef_, clf.intercept_, clf.classes_ = tensors["coef"], tensors["intercept"], tensors["classes"]
        return cls(labels, vec, clf)


def tfidf_baseline(train: pd.DataFrame, splits: dict[str, pd.DataFrame], labels: list[str]) -> dict[str, Any]:
    """Fit on train, report headline metrics on each given split (what `baselines.tfidf_logreg` holds)."""
    learner = TfidfLinearLearner(labels)
    learner.fit(train)
    headline = ("accuracy", "macro_f1", "macro_precision", "macro_recall")
    return {
        name: {k: v for k, v in learner.evaluate(frame).items() if k in headline}
        for name, frame in splits.items()
        if len(frame)
    }
