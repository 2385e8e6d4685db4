"""Token classification (entity extraction): order numbers, product names, people, places; English or Chinese
(character-wise), from CoNLL/BIO files or JSONL character spans; predictions are character spans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from modelyard.config import Config, DataConfig, ModelConfig
from modelyard.errors import DataError
from modelyard.learners.text_inputs import coverage_warnings
from modelyard.learners.token_tagger import SPEC_FILE, TokenTaggerLearner
from modelyard.protocols import PreparedData, Text
from modelyard.tasks import register_task
from modelyard.tasks.text_classification import pretrained_dir

if TYPE_CHECKING:
    import pandas as pd

ENGLISH, MULTILINGUAL = "minilm-l6", "multilingual-e5-small"
CJK_SHARE = 0.3  # above this share of CJK characters, auto takes the multilingual encoder
SPAN_KEYS = {"start", "end", "label"}  # what a corrected span holds; other keys are dropped

STARTER = """\
# modelyard config: token classification (entity extraction)
name: my-entity-extractor
task: token_classification
data:
  train: data/train.conll           # CoNLL/BIO (token<TAB>tag per line, blank line between sentences)
                                    # or .jsonl: {"text": ..., "entities": [{"start": 0, "end": 5, "label": "PER"}]}
  validation: null                  # optional; carved from train when absent (so is test)
  test: null
  split: {validation: 0.1, test: 0.1, seed: 42}
  token_column: 0                   # CoNLL: which column holds the token, which the tag (-1: the last)
  tag_column: -1
model:
  backbone: auto                    # auto | minilm-l6 (English) | multilingual-e5-small (Chinese: per character)
  max_length: null                  # sub-tokens; null = fit the data (99th percentile, capped at 256)
train:
  epochs: null                      # null = the backbone's tuned default
  batch_size: null
  learning_rate: null
  early_stopping: {patience: 2, metric: entity_f1}
"""


class EntityDataConfig(DataConfig):
    text_column: str = Field("text", description="JSONL key of the text (also the column `predict --input` reads)")
    entities_column: str = Field("entities", description="JSONL key of the list of {start, end, label} spans")
    token_column: int = Field(0, description="CoNLL/BIO: the column of the token (0 = first)")
    tag_column: int = Field(-1, description="CoNLL/BIO: the column of the BIO tag (-1 = last)")


class EntityModelConfig(ModelConfig):
    backbone: str = Field(
        "auto", description="auto, minilm-l6, multilingual-e5-small, or a local Hugging Face folder (fast tokenizer)"
    )
    max_length: int | None = Field(None, ge=8, le=512)
    dropout: float = Field(0.1, ge=0, lt=1)
    freeze_embeddings: bool | None = Field(
        None, description="keep the word-embedding matrix fixed; null = when it is over 2/3 of the encoder"
    )


def _read(path: str, data: EntityDataConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    import pandas as pd

    from modelyard.data.entities import read_entities

    examples, report = read_entities(
        path,
        text_field=data.text_column,
        entities_field=data.entities_column,
        token_column=data.token_column,
        tag_column=data.tag_column,
        max_rows=data.max_rows,
    )
    return pd.DataFrame(examples, columns=["text", "entities"]), report.as_dict()


def _type_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entities in frame["entities"]:
        for span in entities:
            counts[span["label"]] = counts.get(span["label"], 0) + 1
    return dict(sorted(counts.items()))


@register_task("token_classification")
class TokenClassificationTask:
    DataConfig: ClassVar = EntityDataConfig
    ModelConfig: ClassVar = EntityModelConfig
    Input: ClassVar = Text
    main_metric: ClassVar = "entity_f1"
    # what entity_metrics reports: tune.metric, train.early_stopping.metric
    validation_metrics: ClassVar = ("entity_f1", "entity_precision", "entity_recall", "macro_f1", "token_accuracy")
    greater_is_better: ClassVar = True
    feedback_metric: ClassVar = "entity_f1"  # `retrain` scores held-out span corrections entity by entity

    def starter_config(self) -> str:
        return STARTER

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
        """`evaluate --data FILE`: its examples as the model scores them, held to no training-only check (a file
        without a single entity is fine to score: every span the model finds is then a false positive); entity
        types the model never learnt are named, as they count as misses."""
        data: EntityDataConfig = config.data.model_copy(update={"max_rows": None})
        frame, _ = _read(path, data)
        if frame.empty:
            raise DataError(f"{path}: no examples to score")
        unseen = sorted(set(_type_counts(frame)) - set(labels))
        notes = [f"{path}: entity types the model never learnt count as misses ({', '.join(unseen)})"] if unseen else []
        return frame, notes

    def prepare(self, config: Config) -> PreparedData:
        from modelyard.data.splits import fingerprint, make_splits
        from modelyard.learners.text_inputs import length_percentiles
        from modelyard.models.tokenizers import cjk_share

        data: EntityDataConfig = config.data
        files, reads, warnings = {}, {}, []
        for which in ("train", "validation", "test"):
            if path := getattr(data, which):
                files[which], reads[which] = _read(path, data)
        splits, notes = make_splits(files["train"], files.get("validation"), files.get("test"), data.split, None)
        types = _type_counts(splits["train"])
        if not types:
            raise DataError(f"{data.train}: no entities in the training split", "tag some spans (B-TYPE/I-TYPE)")
        for name in ("validation", "test"):
            unseen = sorted(set(_type_counts(splits[name])) - set(types))
            if unseen:
                warnings.append(
                    f"{name}: entity types not in train ({', '.join(unseen)}): the model cannot predict them, "
                    "they count as misses"
                )
        for info in reads.values():
            if info.get("repaired_bio"):
                warnings.append(
                    f"{info['file']}: {info['repaired_bio']} I- tags did not continue an entity of their type and "
                    f"were read as B- (first: {info['first_repair']})"
                )
        widened = [f"{info['file']}: {info['widened']}" for info in reads.values() if info.get("widened")]
        if widened:  # counted where the files were read, so the warning and each file's report agree
            warnings.append(
                f"entities that start or end inside a word are widened to whole words ({', '.join(widened)})"
            )
        texts = splits["train"]["text"].tolist()
        share = cjk_share(texts[:2000])
        report = {
            "files": reads,
            "splits": {n: len(f) for n, f in splits.items()},
            "split_notes": notes,
            "entity_types": {n: _type_counts(f) for n, f in splits.items()},
            "text_length_chars": length_percentiles([len(t) for t in texts]),
            "cjk_share": round(share, 3),
            "tokenizer": self._coverage(config, texts, share),
        }
        warnings += coverage_warnings(report["tokenizer"])
        prints = {n: fingerprint(f, ["text", "entities"]) for n, f in splits.items()}
        return PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)

    @staticmethod
    def _coverage(config: Config, texts: list[str], share: float) -> dict[str, Any]:
        """The encoder training would use and its unknown-token rate; a missing encoder fails here, as in train."""
        from modelyard.learners.text_inputs import unknown_rate

        name = _choose(config.model.backbone, share)
        return {"name": name, "unknown_rate": round(unknown_rate(pretrained_dir(name), texts[:2000]), 4)}

    def candidates(self, config: Config, data: PreparedData) -> list[tuple[str, str]]:
        backbone = config.model.backbone
        if backbone != "auto":
            return [(backbone, "named in the config")]
        share = data.report["cjk_share"]
        chosen = _choose(backbone, share)
        return [(chosen, f"{share:.0%} of the training characters are CJK: {chosen} tags them")]

    def build(self, config: Config, data: PreparedData) -> TokenTaggerLearner:
        types = list(_type_counts(data.splits["train"]))
        tags = ["O", *(f"{p}-{t}" for t in types for p in ("B", "I"))]
        texts = data.splits["train"]["text"].tolist()
        backbone = config.model.backbone
        return TokenTaggerLearner.pretrained(pretrained_dir(backbone), backbone, config.model, tags, texts)

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        from modelyard.learners.tag_memory import memory_baseline

        evals = {n: data.splits[n] for n in ("validation", "test")}
        return {"most_frequent_tag": memory_baseline(data.splits["train"], evals)}

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> TokenTaggerLearner:
        spec = json.loads((directory / SPEC_FILE).read_text(encoding="utf-8"))
        if manifest.get("runtime") == "onnxruntime":
            from modelyard.learners.token_onnx import OnnxTokenTaggerLearner

            return OnnxTokenTaggerLearner.load(directory, spec)
        return TokenTaggerLearner.load(directory, spec)

    def feedback_label(self, config: Config, label: Any) -> list[dict[str, Any]]:
        """Corrected entity spans: a list (or, in a CSV cell, a JSON text) of {start, end, label} character
        offsets, kept as such (other keys dropped, the label stripped as training strips it); `feedback_example`
        checks them against the logged text."""
        if isinstance(label, str):
            try:
                label = json.loads(label)
            except json.JSONDecodeError:
                label = None
        if not isinstance(label, list) or not all(isinstance(s, dict) and set(s) >= SPAN_KEYS for s in label):
            raise DataError(
                "entity feedback must be a list of {start, end, label} spans",
                'e.g. [{"start": 0, "end": 5, "label": "PER"}] (character offsets, end exclusive; [] for none)',
            )
        return [_feedback_span(span) for span in label]

    def feedback_example(self, config: Config, value: Any, label: Any) -> dict[str, Any] | None:
        """`retrain`: the logged text with its corrected spans (inside the text, not overlapping) is an example.
        A text logged with personal data redacted is refused: the offsets count characters of the original text,
        which was never stored, so they would tag the wrong characters of the logged one."""
        from modelyard.data.entities import check_spans
        from modelyard.privacy.redact import PLACEHOLDER

        if not isinstance(value, str):
            return None
        if (found := PLACEHOLDER.search(value)) is not None:
            raise DataError(
                f"the logged text was redacted (it holds {found.group()} where personal data was), so spans counted "
                "in the original text cannot be checked against it or trained on",
                "correct such texts in your own training data; span feedback works for texts logged unredacted "
                "(docs/token_classification.md, Feedback and retrain)",
            )
        return {"text": value, "entities": check_spans(value, self.feedback_label(config, label), "the spans")}

    def retrain_layout(self, config: Config, report: dict[str, Any]) -> dict[str, Any]:
        """Spans are lists: the challenger's files are JSONL, read back exactly as the frozen test split."""
        data = {"text_column": "text", "entities_column": "entities"}
        return {"label": "entities", "columns": ["text", "entities"], "suffix": "jsonl", "data": data}


def _feedback_span(span: dict[str, Any]) -> dict[str, Any]:
    """A corrected span as it is stored: start, end and the label without surrounding spaces."""
    label = span["label"].strip() if isinstance(span["label"], str) else span["label"]
    return {"start": span["start"], "end": span["end"], "label": label}


def _choose(backbone: str, cjk_share: float) -> str:
    if backbone != "auto":
        return backbone
    return MULTILINGUAL if cjk_share > CJK_SHARE else ENGLISH
