"""From a table of mixed columns to one float matrix every tabular model reads, and back to the column names.

Numeric and boolean columns pass through (missing stays NaN: LightGBM routes it, the MLP gets an indicator);
categorical columns become integer codes in order of frequency, rare and unseen values sharing one "other" code;
dates become year, month, weekday and day number; free text becomes its length, its word count and TEXT_COMPONENTS
latent semantic components (TF-IDF of character 2-4-grams within words, which needs no tokenizer and serves Chinese
as well as English, reduced by truncated SVD: AutoGluon's tabular text n-grams, made dense for every member). The
encoder is saved as JSON (no pickle) and validates single request rows against the training schema for the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.categories import category_text
from modelyard.data.tabular import RARE_ROWS, RARE_SHARE, day_first, to_boolean, to_dates, to_numeric
from modelyard.errors import DataError

OTHER = "__other__"
MAX_CATEGORIES = 255  # beyond this a column's least frequent values share the "other" code
DATE_PARTS = ("year", "month", "weekday", "days")
TEXT_PARTS = ("chars", "words")
TEXT_COMPONENTS = 16
TEXT_TERMS = 2000  # the most frequent character n-grams kept per text column
TEXT_MIN_ROWS = 50  # fewer non-empty training texts than this: length and word count only


@dataclass
class TabularEncoder:
    """Column types and category vocabularies learnt on the training split."""

    types: dict[str, str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # columns of the training file a request may carry (ID, target)
    texts: dict[str, dict[str, list]] = field(default_factory=dict)  # text column: n-grams, idf, SVD components
    dayfirst: dict[str, bool] = field(default_factory=dict)  # date column: its numeric dates put the day first

    @classmethod
    def fit(cls, frame: pd.DataFrame, types: dict[str, str], ignored: list[str]) -> TabularEncoder:
        categories, texts = {}, {}
        for column, kind in types.items():
            if kind == "text":
                found = _fit_text(frame[column])
                if found:
                    texts[column] = found
            if kind != "categorical":
                continue
            counts = _category_text(frame[column]).dropna().value_counts()
            keep = counts[(counts >= RARE_ROWS) | (counts >= RARE_SHARE * len(frame))]
            categories[column] = [str(v) for v in keep.index[:MAX_CATEGORIES]]
        dayfirst = {c: bool(day_first(frame[c])) for c, kind in types.items() if kind == "date"}
        return cls(dict(types), categories, list(ignored), texts, dayfirst)

    @property
    def features(self) -> list[dict[str, Any]]:
        """The columns of the encoded matrix: name, source column, and the cardinality of categorical codes."""
        out: list[dict[str, Any]] = []
        for column, kind in self.types.items():
            if kind == "categorical":
                out.append({"name": column, "column": column, "cardinality": len(self.categories[column]) + 1})
            elif kind == "date":
                out += [{"name": f"{column}.{p}", "column": column, "cardinality": 0} for p in DATE_PARTS]
            elif kind == "text":
                parts = [*TEXT_PARTS, *(f"topic{i}" for i in range(len(self.texts.get(column, {}).get("svd", []))))]
                out += [{"name": f"{column}.{p}", "column": column, "cardinality": 0} for p in parts]
            else:
                out.append({"name": column, "column": column, "cardinality": 0})
        return out

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if f["cardinality"]]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, F) float32; absent columns are all-missing."""
        parts = []
        for column, kind in self.types.items():
            values = frame[column] if column in frame.columns else pd.Series([None] * len(frame), index=frame.index)
            if kind == "numeric":
                parts.append(to_numeric(values).to_numpy()[:, None])
            elif kind == "boolean":
                parts.append(to_boolean(values).to_numpy()[:, None])
            elif kind == "categorical":
                parts.append(self._codes(column, values)[:, None])
            elif kind == "date":
                dates = to_dates(values, self.dayfirst.get(column, False))
                days = (dates - pd.Timestamp("1970-01-01")).dt.days
                parts.append(np.stack([dates.dt.year, dates.dt.month, dates.dt.weekday, days], axis=1).astype(float))
            else:
                text = values.fillna("").astype(str)
                parts.append(np.stack([text.str.len(), text.str.split().str.len()], axis=1).astype(float))
                if column in self._topics:
                    parts.append(_text_topics(text, *self._topics[column]))
        return np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((len(frame), 0), np.float32)

    @cached_property
    def _topics(self) -> dict[str, tuple[Any, np.ndarray, np.ndarray]]:
        """Per text column, built once (not per request): the n-gram counter over its vocabulary, idf, components."""
        return {
            column: (
                _ngrams(fitted["terms"]),
                np.asarray(fitted["idf"], np.float32),
                np.asarray(fitted["svd"], np.float32),
            )
            for column, fitted in self.texts.items()
        }

    def _codes(self, column: str, values: pd.Series) -> np.ndarray:
        known = self.categories[column]
        text = _category_text(values)
        codes = pd.Categorical(text, categories=known).codes.astype(float)
        codes[(codes < 0) & text.notna().to_numpy()] = len(known)  # rare or unseen: the shared "other" code
        codes[text.isna().to_numpy()] = np.nan
        return codes

    def check_row(self, row: dict[str, Any]) -> list[str]:
        """Raise DataError for an unknown column or a value of the wrong type; return notes on unseen
        categories (they are scored as the rare "other" category) and absent columns (scored as missing)."""
        if not isinstance(row, dict):
            raise DataError(
                f"a row is an object of column: value, not {type(row).__name__}",
                'a table model reads rows: `modelyard predict BUNDLE --input rows.csv`, or {"rows": [{...}]} over HTTP',
            )
        unknown = [c for c in row if c not in self.types and c not in self.ignored]
        if unknown:
            raise DataError(
                f"unknown column(s) {', '.join(map(repr, unknown))}; the model reads: {', '.join(self.types)}"
            )
        notes, missing = [], []
        for column, kind in self.types.items():
            value = row.get(column)
            if _is_missing(value):
                missing.append(column)
                continue
            if isinstance(value, dict | list):
                raise DataError(f"{column}: expected a single value, got a {type(value).__name__}")
            if kind == "numeric" and (isinstance(value, bool) or np.isnan(to_numeric(pd.Series([value])).iloc[0])):
                shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                raise DataError(f"{column}: expected a finite number, got {shown}")
            if kind == "boolean" and np.isnan(to_boolean(pd.Series([value])).iloc[0]):
                raise DataError(f"{column}: expected true/false (or 1/0, yes/no), got {value!r}")
            if kind == "date" and pd.isna(to_dates(pd.Series([value]), self.dayfirst.get(column, False)).iloc[0]):
                raise DataError(f"{column}: expected a date such as 2024-01-31, got {value!r}")
            if kind == "categorical" and category_text(value) not in self.categories[column]:
                notes.append(f"{column}: category {value!r} unseen or rare in training, scored as 'other'")
        if missing:
            notes.append(f"scored as missing values: {', '.join(missing)}")
        return notes

    def check_frame(self, frame: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
        """Vectorised `check_row` for batch files: positions of rows whose value has the wrong type
        (`wrong_type`, scored as missing) or a category unseen or rare in training (`unseen`, scored as other)."""
        found: dict[str, dict[str, list[int]]] = {"wrong_type": {}, "unseen": {}}
        for column, kind in self.types.items():
            if column not in frame.columns:
                continue
            values = frame[column]
            given = values.notna().to_numpy()
            if values.dtype.kind not in "iufb":  # only text cells can be blank (no Python call per number)
                given = given & ~values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy()
            if kind == "categorical":
                bad, key = given & ~_category_text(values).isin(self.categories[column]).to_numpy(), "unseen"
            else:
                parse = {"numeric": to_numeric, "boolean": to_boolean}.get(kind)
                if parse is not None:
                    parsed = parse(values)
                elif kind == "date":
                    parsed = to_dates(values, self.dayfirst.get(column, False))
                else:
                    parsed = values
                bad, key = given & pd.isna(parsed).to_numpy(), "wrong_type"
                if kind == "numeric" and pd.api.types.is_bool_dtype(values):
                    bad = given
            if bad.any():
                found[key][column] = np.flatnonzero(bad).tolist()
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "types": self.types,
            "categories": self.categories,
            "ignored": self.ignored,
            "texts": self.texts,
            "dayfirst": self.dayfirst,
        }

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> TabularEncoder:
        categories = {column: _folded(known) for column, known in spec["categories"].items()}
        return cls(spec["types"], categories, spec.get("ignored", []), spec.get("texts", {}), spec.get("dayfirst", {}))


def _ngrams(terms: list[str] | None = None) -> Any:
    """Character 2-4-grams within words, lower-cased; fitted (the TEXT_TERMS most frequent) or over `terms`."""
    from sklearn.feature_extraction.text import CountVectorizer

    limits = {"vocabulary": terms} if terms else {"max_features": TEXT_TERMS, "min_df": 2}
    return CountVectorizer(analyzer="char_wb", ngram_range=(2, 4), dtype=np.float32, **limits)


def _tfidf(counts: Any, idf: np.ndarray) -> Any:
    """Sublinear term frequency times idf, each row scaled to unit length (TfidfTransformer's defaults)."""
    from sklearn.preprocessing import normalize

    counts = counts.tocsr(copy=True)
    counts.data = 1.0 + np.log(counts.data)
    return normalize(counts.multiply(idf[None, :]).tocsr())


def _fit_text(values: pd.Series) -> dict[str, list] | None:
    """The n-gram vocabulary, idf weights and SVD components of one text column, or None when it holds too few
    texts (or too few distinct n-grams) to learn topics from."""
    from sklearn.decomposition import TruncatedSVD

    text = values.dropna().astype(str)
    text = text[text.str.strip() != ""]
    if len(text) < TEXT_MIN_ROWS:
        return None
    vectorizer = _ngrams()
    try:
        counts = vectorizer.fit_transform(text)
    except ValueError:  # no n-gram appears twice
        return None
    rank = min(TEXT_COMPONENTS, counts.shape[1] - 1, len(text) - 1)
    if rank < 1:
        return None
    idf = (np.log((1 + len(text)) / (1 + (counts > 0).sum(0).A1)) + 1).astype(np.float32)
    svd = TruncatedSVD(rank, random_state=0).fit(_tfidf(counts, idf))
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    return {"terms": terms, "idf": idf.round(6).tolist(), "svd": svd.components_.astype(np.float32).round(6).tolist()}


def _text_topics(text: pd.Series, counter: Any, idf: np.ndarray, svd: np.ndarray) -> np.ndarray:
    """(N, components) projections of each text's TF-IDF vector; an empty text projects to zeros."""
    return np.asarray(_tfidf(counter.transform(text), idf) @ svd.T, dtype=float)


def _folded(known: list[str]) -> list[str]:
    """A saved vocabulary as `category_text` writes its values ("2.0" of an older bundle read as "2"), each at its
    position (its code); kept as saved when two entries would fold into one."""
    folded = [category_text(v) or v for v in known]
    return folded if len(set(folded)) == len(folded) else list(known)


def _category_text(values: pd.Series) -> pd.Series:
    if values.dtype.kind in "iub":  # whole numbers and booleans: str() of each, vectorised (batch files are big)
        return pd.Series(values.to_numpy().astype(str).astype(object), index=values.index, name=values.name)
    return values.map(category_text)


def _is_missing(value: Any) -> bool:
    """A cell scored as missing: None, a blank text, or pandas' markers (NaN, NaT, NA), which a row taken from a
    DataFrame (`to_dict("records")`) holds where a file is empty, as `predict --input` reads it."""
    if isinstance(value, str):
        return not value.strip()
    nan = isinstance(value, float | np.floating) and np.isnan(value)
    return value is None or value is pd.NaT or value is pd.NA or nan
