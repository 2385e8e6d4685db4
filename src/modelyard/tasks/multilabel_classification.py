"""Multi-label text classification: several labels per text (ticket tags, emotions, topics), one sigmoid per label
on the bundled encoders, per-label thresholds tuned on the validation split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelyard import precision
from modelyard.config import Config, DataConfig, DomainPretrainingConfig, ModelConfig
from modelyard.errors import DataError, ModelNotFoundError
from modelyard.learners import domain_pretraining
from modelyard.learners.multilabel import Decision, MultiLabelTextLearner, OnnxMultiLabelTextLearner
from modelyard.learners.multilabel_tfidf import TfidfOvrLearner, tfidf_ovr_baseline
from modelyard.learners.text_inputs import UNKNOWN_RATE_LIMIT, coverage_warnings, length_percentiles, unknown_rate
from modelyard.protocols import PreparedData, Text
from modelyard.tasks import register_task
from modelyard.tasks.text_classification import (
    AUTO_ENCODERS,
    SCRATCH,
    TFIDF,
    _coverage_line,
    pretrained_dir,
)

if TYPE_CHECKING:
    import pandas as pd

RARE_ROWS = 5  # training rows under which a label is flagged as too rare to learn well
FREE_TEXT_SHARE = 0.5  # distinct labels above this share of rows: the label column is probably text

STARTER = """\
# modelyard config: multi-label text classification (several labels per text: tags, emotions, topics)
name: my-multilabel-classifier
task: multilabel_classification
data:
  train: data/train.csv             # .csv .tsv .jsonl .parquet; relative paths start at this file's folder
  validation: null                  # tunes the per-label thresholds; carved from train when absent
  test: null
  split: {validation: 0.1, test: 0.1, seed: 42, stratify: false}
  text_column: text
  label_column: labels              # "billing|refund" or a JSON list ["billing", "refund"]
  label_separator: "|"
  empty_labels: drop                # drop | keep (a row with no label means "none applies")
  min_label_rows: 1                 # labels with fewer training rows are removed everywhere
model:
  backbone: auto                    # auto | minilm-l6 | multilingual-e5-small | scratch-transformer | tfidf-linear
  max_length: null
  at_least_one: null                # null = answer the best label when none passes its threshold, unless the
                                    # training data has rows without labels
train:
  epochs: null
  precision: auto
  early_stopping: {patience: 2, metric: micro_f1}
"""


class MultiLabelDataConfig(DataConfig):
    text_column: str = "text"
    label_column: str = "labels"
    label_separator: str = Field(
        "|", min_length=1, description='splits a cell into labels; JSON lists (["a", "b"]) are read as lists'
    )
    empty_labels: Literal["drop", "keep"] = Field(
        "drop", description="a row without labels: drop it (missing), or keep it as 'no label applies'"
    )
    min_label_rows: int = Field(1, ge=1, description="labels with fewer training rows are removed from every split")


class MultiLabelModelConfig(ModelConfig):
    backbone: str = Field(
        "auto",
        description="auto, a bundled encoder (minilm-l6, multilingual-e5-small), scratch-transformer, "
        "tfidf-linear, or a local Hugging Face folder",
    )
    max_length: int | None = Field(None, ge=8, le=512)
    at_least_one: bool | None = Field(
        None,
        description="answer the best label when none passes its threshold; null = yes unless the training data "
        "has rows without labels",
    )
    dropout: float = Field(0.1, ge=0, lt=1)
    attention_dropout: float = Field(0.1, ge=0, lt=1)
    head_init: Literal["linear_probe", "random"] = Field(
        "random",
        description="pretrained only: linear_probe starts the head from one logistic regression per label on the "
        "frozen encoder's embeddings (LP-FT), then fine-tunes everything at one rate",
    )
    head_lr_multiplier: float = Field(20.0, gt=0, description="the random head learns this many times faster")
    layer_decay: float = Field(1.0, gt=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="targets move this far towards 0.5")
    extend_vocabulary: bool = False
    freeze_embeddings: bool | None = None
    micro_batch_tokens: int = Field(4096, ge=64, description="longer training batches run in parts of this size")
    domain_pretraining: DomainPretrainingConfig | None = Field(
        None, description="pretrained only: continued masked-LM before fine-tuning (as text_classification)"
    )
    tokenizer: Literal["auto", "char", "wordpiece"] = Field("auto", description="scratch-transformer only")
    vocab_size: int = Field(8000, ge=100)
    hidden_size: int = Field(256, ge=16)
    layers: int = Field(3, ge=1)
    heads: int = Field(4, ge=1)


def _read(path: str, data: MultiLabelDataConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Text and label sets of one file; missing label cells (and empty sets unless kept) dropped and counted."""
    import pandas as pd

    from modelyard.data.cleaning import clean_labelled
    from modelyard.data.label_sets import parse_column
    from modelyard.data.readers import read_table, require_columns

    frame, read = read_table(path, data.format, data.max_rows)
    require_columns(frame, {"text_column": data.text_column, "label_column": data.label_column}, path)
    sets = parse_column(frame[data.label_column], data.label_separator, path, data.label_column)
    empty = sets.map(lambda s: s is not None and len(s) == 0)
    if data.empty_labels == "drop":
        sets = sets.map(lambda s: None if s is not None and len(s) == 0 else s)
    canonical = sets.map(lambda s: None if s is None else data.label_separator.join(s))
    frame = pd.DataFrame({"text": frame[data.text_column], "label": canonical}, index=frame.index)
    if data.empty_labels == "keep":  # "" is a real answer here: clean only the text column
        missing = sets.isna()
        frame = frame[~missing]
        frame, cleaning = clean_labelled(frame, "text", None)
        cleaning.missing_label = int(missing.sum())
    else:
        frame, cleaning = clean_labelled(frame, "text", "label")
    frame["text"] = frame["text"].astype(str)
    frame["labels"] = sets.loc[frame.index]
    info = {"read": read.as_dict(), "cleaning": cleaning.as_dict(), "summary": cleaning.summary()}
    info["empty_label_sets"] = int(empty.sum())
    return frame, info


@register_task("multilabel_classification")
class MultiLabelClassificationTask:
    DataConfig: ClassVar = MultiLabelDataConfig
    ModelConfig: ClassVar = MultiLabelModelConfig
    Input: ClassVar = Text
    main_metric: ClassVar = "micro_f1"
    validation_metrics: ClassVar = (  # what multilabel_metrics reports: tune.metric, train.early_stopping.metric
        "micro_f1",
        "macro_f1",
        "micro_precision",
        "micro_recall",
        "macro_precision",
        "macro_recall",
        "samples_f1",
        "subset_accuracy",
        "hamming_loss",
        "labels_per_row",
    )
    greater_is_better: ClassVar = True
    feedback_metric: ClassVar = "micro_f1"  # `retrain` scores held-out feedback on whole label sets

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        from modelyard.data.label_sets import label_counts
        from modelyard.data.splits import fingerprint, make_splits

        data: MultiLabelDataConfig = config.data
        files, infos, warnings = {}, {}, []
        for which in ("train", "validation", "test"):
            if path := getattr(data, which):
                files[which], infos[which] = _read(path, data)
        train = files["train"]
        if train.empty:
            raise DataError(f"{data.train}: no usable rows after cleaning ({infos['train']['summary']})")
        _refuse_free_text(train, data)
        splits, notes = make_splits(train, files.get("validation"), files.get("test"), data.split, None)
        counts = label_counts(splits["train"]["labels"])
        dropped = sorted(label for label, n in counts.items() if n < data.min_label_rows)
        if dropped:
            warnings.append(
                f"{len(dropped)} labels have fewer than {data.min_label_rows} training rows and were removed "
                f"(data.min_label_rows): {', '.join(dropped[:10])}"
            )
        labels = sorted(label for label in counts if label not in dropped)
        if len(labels) < 2:
            raise DataError(
                f"{data.train}: column '{data.label_column}' has {len(labels)} label(s) "
                f"({', '.join(labels) or 'none'}) with at least {data.min_label_rows} training rows",
                "multi-label classification needs at least two labels",
            )
        for name in splits:
            splits[name] = _restrict(splits[name], labels, data, name, warnings)
        warnings.extend(_label_warnings(splits, labels, data))
        seen = set(splits["train"]["text"].str.strip().str.lower())
        leakage = {n: int(splits[n]["text"].str.strip().str.lower().isin(seen).sum()) for n in ("validation", "test")}
        warnings.extend(f"leakage: {n} {name} texts also appear in train" for name, n in leakage.items() if n)
        texts = splits["train"]["text"].tolist()
        sizes = splits["train"]["labels"].map(len)
        report = {
            "files": infos,
            "splits": {n: len(f) for n, f in splits.items()},
            "split_notes": notes,
            "labels": {n: dict(sorted(label_counts(f["labels"]).items())) for n, f in splits.items()},
            "num_labels": len(labels),
            "labels_per_row": {
                "mean": round(float(sizes.mean()), 3),
                "max": int(sizes.max()),
                "empty": int((sizes == 0).sum()),
            },
            "rows_with_several_labels": int((sizes > 1).sum()),
            "label_separator": data.label_separator,
            "text_length_chars": length_percentiles([len(t) for t in texts]),
            "leakage": leakage,
            "tokenizer": self._coverage(config, texts),
        }
        warnings += coverage_warnings(report["tokenizer"], config.model.backbone == "auto")
        prints = {n: fingerprint(f, ["text", "label"]) for n, f in splits.items()}
        prepared = PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)
        candidates = self.candidates(config, prepared)
        report["backbone_choice"] = [{"backbone": b, "reason": why} for b, why in candidates]
        if settings := config.model.domain_pretraining:  # the file, column and values, before any training
            chosen = [b for b, _ in candidates]
            tuned = [b for b in chosen if b not in (TFIDF, SCRATCH)]
            report["domain_pretraining"] = domain_pretraining.check(
                settings, config.data.format, chosen, tuned, len(texts)
            )
        return prepared

    def _coverage(self, config: Config, texts: list[str]) -> dict[str, Any]:
        """Unknown-token rate of the named encoder, or of the bundled ones in order up to the first that fits."""
        backbone = config.model.backbone
        if backbone in (SCRATCH, TFIDF):
            return {}
        if backbone != "auto":  # what `build` would refuse is refused here, before any training
            return {"name": backbone, "unknown_rate": round(unknown_rate(pretrained_dir(backbone), texts[:2000]), 4)}
        checked = []
        for name in AUTO_ENCODERS:
            try:
                rate = round(unknown_rate(pretrained_dir(name), texts[:2000]), 4)
                checked.append({"name": name, "unknown_rate": rate})
            except ModelNotFoundError as err:
                checked.append({"name": name, "error": err.message})
            if checked[-1].get("unknown_rate", 1.0) < UNKNOWN_RATE_LIMIT:
                break
        return {**checked[-1], "checked": checked[:-1]} if len(checked) > 1 else checked[0]

    def candidates(self, config: Config, data: PreparedData) -> list[tuple[str, str]]:
        """`auto`: the first bundled encoder whose tokenizer covers the data, else TF-IDF + logistic regression."""
        if config.model.backbone != "auto":
            return [(config.model.backbone, "named in the config")]
        cov = data.report.get("tokenizer", {})
        lines = [_coverage_line(c) for c in [*cov.get("checked", []), cov] if c]
        if cov.get("unknown_rate", 1.0) < UNKNOWN_RATE_LIMIT:
            return [(cov["name"], "; ".join(lines))]
        return [(TFIDF, "; ".join(lines) + ": TF-IDF + one-vs-rest logistic regression")]

    def _decision(self, config: Config, data: PreparedData, labels: list[str]) -> Decision:
        at_least_one = config.model.at_least_one
        if at_least_one is None:
            at_least_one = not (data.splits["train"]["labels"].map(len) == 0).any()
        return Decision.default(labels, at_least_one, config.data.label_separator)

    def build(self, config: Config, data: PreparedData) -> MultiLabelTextLearner | TfidfOvrLearner:
        labels = _labels(data)
        decision = self._decision(config, data, labels)
        backbone = config.model.backbone
        if backbone == TFIDF:
            return TfidfOvrLearner(decision)
        texts = data.splits["train"]["text"].tolist()
        if backbone == SCRATCH:
            learner = MultiLabelTextLearner.scratch(config.model, labels, texts)
        else:
            path = domain_pretraining.encoder_for(pretrained_dir(backbone), backbone, config, data)
            learner = MultiLabelTextLearner.pretrained(path, backbone, config.model, labels, texts)
        learner.prepare_decision(decision, data.splits["validation"])
        if learner.probe_head:
            learner.start_head_from_probe(data.splits["train"], precision.resolve(config.train.precision))
        return learner

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        decision = self._decision(config, data, _labels(data))
        splits = data.splits
        return {"tfidf_logreg": tfidf_ovr_baseline(splits["train"], splits["validation"], splits["test"], decision)}

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
        """`evaluate --data FILE`: its rows as the model scores them, held to no training-only check (how many
        labels, free text); labels the model never learnt are removed and named, and rows left without any
        dropped (their true set is not empty, it is unknown)."""
        from modelyard.data.cleaning import dropped_note

        data: MultiLabelDataConfig = config.data.model_copy(update={"max_rows": None})
        frame, info = _read(path, data)
        notes = dropped_note(path, info)
        known = set(labels)
        unseen = sorted({label for s in frame["labels"] for label in s if label not in known})
        if unseen:
            kept = frame["labels"].map(lambda s: tuple(label for label in s if label in known))
            lost = ((kept.map(len) == 0) & (frame["labels"].map(len) > 0)).to_numpy()
            frame = frame.assign(labels=kept, label=kept.map(data.label_separator.join))[~lost]
            notes.append(
                f"{path}: labels the model never saw removed from its rows ({', '.join(unseen[:5])}); "
                f"{int(lost.sum())} rows left with no label dropped"
            )
        if frame.empty:
            raise DataError(
                f"{path}: no row has a label the model knows",
                f"its labels: {', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}",
            )
        return frame, notes

    def feedback_label(self, config: Config, label: Any) -> list[str]:
        """A corrected label SET (a list, a JSON list, or labels joined by data.label_separator), sorted; the
        feedback paths then check each label against the bundle's."""
        return list(_label_set(config.data, label))

    def feedback_example(self, config: Config, value: Any, label: Any) -> dict[str, Any] | None:
        """`retrain`: a logged text with its corrected set is a training row (an empty set written as `[]`)."""
        if not isinstance(value, str):
            return None
        labels = _label_set(config.data, label)
        cell = config.data.label_separator.join(labels) if labels else "[]"
        return {"text": value, "label": cell, "labels": labels}

    def retrain_layout(self, config: Config, report: dict[str, Any]) -> dict[str, Any]:
        data = {"text_column": "text", "label_column": "label"}
        return {"label": "label", "columns": ["text", "label"], "score_columns": ["labels"], "data": data}

    def load(self, directory: Path, manifest: dict[str, Any], config: Config):
        import json

        labels = manifest["labels"]
        if manifest["backbone"] == TFIDF:
            return TfidfOvrLearner.load(directory, labels)
        spec = json.loads((directory / "text_model.json").read_text(encoding="utf-8"))
        runtime = OnnxMultiLabelTextLearner if manifest.get("runtime") == "onnxruntime" else MultiLabelTextLearner
        return runtime.load(directory, config.model, labels, spec)


def _label_set(data: MultiLabelDataConfig, label: Any) -> tuple[str, ...]:
    """One correction's labels; a DataError for anything that is not a set of labels."""
    from modelyard.data.label_sets import parse_cell

    hint = f'send a list of labels (["joy", "love"]) or labels joined by {data.label_separator!r}'
    if not isinstance(label, str | list) or any(isinstance(x, dict | list) for x in label):
        raise DataError(f"the label set {str(label)[:60]!r} is not a list of labels", hint)
    labels = parse_cell(label, data.label_separator)
    if not labels and data.empty_labels == "drop":
        raise DataError(
            "an empty label set: this model was trained with data.empty_labels: drop, so every answer has a label",
            hint,
        )
    inside = [x for x in labels or () if data.label_separator in x]
    if inside:
        raise DataError(f"label {inside[0]!r} contains the label separator {data.label_separator!r}", hint)
    return labels or ()


def _labels(data: PreparedData) -> list[str]:
    from modelyard.data.label_sets import label_counts

    return sorted(label_counts(data.splits["train"]["labels"]))


def _refuse_free_text(train: pd.DataFrame, data: MultiLabelDataConfig) -> None:
    """A label column of free text (e.g. the text column named twice) gives nearly one 'label' per row."""
    from modelyard.data.label_sets import label_counts

    distinct = len(label_counts(train["labels"]))
    if len(train) >= 20 and distinct > FREE_TEXT_SHARE * len(train):
        example = train["label"].iloc[0]
        raise DataError(
            f"{data.train}: column '{data.label_column}' has {distinct} different labels in {len(train)} rows "
            f"(e.g. {str(example)[:60]!r}): it looks like free text, not labels",
            f"set data.label_column to the column of labels; several labels per cell are split on "
            f"data.label_separator ({data.label_separator!r})",
        )


def _restrict(
    frame: pd.DataFrame, labels: list[str], data: MultiLabelDataConfig, name: str, warnings: list[str]
) -> pd.DataFrame:
    """Keep only known labels in each row; a row left with none is dropped, whatever `empty_labels` says: its true
    set is unknown, not empty (a row that had no label follows `empty_labels`, in `_read`)."""
    known = set(labels)
    kept = frame["labels"].map(lambda s: tuple(label for label in s if label in known))
    removed = sorted({label for s in frame["labels"] for label in s if label not in known})
    if removed and name != "train":
        warnings.append(f"{name}: labels not in train removed from its rows ({', '.join(removed[:5])})")
    emptied = (kept.map(len) == 0) & (frame["labels"].map(len) > 0)
    frame = frame.assign(labels=kept, label=kept.map(data.label_separator.join))
    if emptied.any():
        warnings.append(f"{name}: {int(emptied.sum())} rows dropped: none of their labels is kept")
        frame = frame[~emptied]
    return frame


def _label_warnings(splits: dict[str, pd.DataFrame], labels: list[str], data: MultiLabelDataConfig) -> list[str]:
    """Labels too rare to learn, or without a validation example to tune their threshold on."""
    from modelyard.data.label_sets import label_counts
    from modelyard.metrics.multilabel import MIN_POSITIVES

    found = []
    train = label_counts(splits["train"]["labels"])
    rare = sorted((n, label) for label, n in train.items() if n < RARE_ROWS)
    if rare:
        shown = ", ".join(f"{label} ({n})" for n, label in rare[:8])
        found.append(f"{len(rare)} labels have fewer than {RARE_ROWS} training rows: {shown}")
    validation = label_counts(splits["validation"]["labels"])
    shared = [label for label in labels if validation.get(label, 0) < MIN_POSITIVES]
    if shared and len(splits["validation"]):
        found.append(
            f"{len(shared)} labels have fewer than {MIN_POSITIVES} validation rows and share one tuned threshold "
            f"instead of their own (e.g. {', '.join(shared[:5])})"
        )
    if not len(splits["validation"]):
        found.append("no validation rows: every label's threshold stays at 0.5")
    if splits["train"]["labels"].map(len).max() <= 1:
        found.append(
            f"no training row has more than one label (separator {data.label_separator!r}): "
            "if that is right, text_classification fits this data better"
        )
    return found
