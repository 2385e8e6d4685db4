"""The config schema (pydantic), loading from YAML, `--set` overrides and path resolution.

One schema is the documentation: every section rejects unknown keys with a did-you-mean hint, and each task adds
its own `data` and `model` fields by subclassing `DataConfig` and `ModelConfig`.
"""

from __future__ import annotations

import codecs
import difflib
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from modelyard.errors import ConfigError

PATH_KEYS = ("train", "validation", "test", "noise", "annotations", "images")  # noise: audio; the rest: detection
# model paths (section, key) resolved when the folder exists: a local backbone, an assistant's intent bundle
MODEL_PATH_KEYS = (  # model keys that may name a local folder (a backbone, encoder or bundle)
    ("", "backbone"),
    ("", "encoder"),
    ("", "text_encoder"),
    ("handover", "bundle"),
    ("domain_pretraining", "texts"),
)


class StrictModel(BaseModel):
    """A config section: unknown keys are errors that suggest the closest known key."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, values: Any) -> Any:
        known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
        return refuse_unknown_keys(values, known, "key")


def refuse_unknown_keys(values: Any, known: set[str], what: str) -> Any:
    """`values` (a mapping being validated) when every key is `known`; else an `unknown_key` error naming the first
    stranger and the closest known name, or all of them when none is close."""
    if isinstance(values, dict):
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known {what}s: {', '.join(sorted(known))})"
                message = f"unknown {what} '{{key}}'{{hint}}"
                raise PydanticCustomError("unknown_key", message, {"key": key, "hint": hint})
    return values


def known_encoding(value: str) -> str:
    """`value` when Python can decode text with it; else a `bad_encoding` error (the reader would fail mid-file)."""
    try:
        codecs.lookup(value)
    except LookupError:
        raise PydanticCustomError(
            "bad_encoding",
            "'{value}' is not a known text encoding (e.g. utf-8, utf-16, gb18030, latin-1)",
            {"value": value},
        ) from None
    return value


def one_character(value: str | None, what: str, hint: str = "") -> str | None:
    """`value` as Python's csv module takes a separator or quote character: one character; else a `one_character`
    error (csv would raise a TypeError when the file is read)."""
    if value is not None and len(value) != 1:
        raise PydanticCustomError(
            "one_character",
            "{what} is one character, not {value}{hint}",
            {"what": what, "value": repr(value), "hint": hint},
        )
    return value


class FormatOptions(StrictModel):
    """How to read delimited text files; the defaults suit ordinary CSV, TSV is detected by extension."""

    sep: str | None = Field(
        None, description="one-character field separator (\\t is a tab); default ',' for .csv, tab for .tsv"
    )
    header: bool = Field(True, description="the first row names the columns; false needs `names`")
    names: list[str] | None = Field(
        None, description="column names: for a file with no header, or in place of the header row's names"
    )
    encoding: str = Field("utf-8", description="text encoding; a UTF-8 byte-order mark is always accepted")
    quoting: Literal["minimal", "none"] = "minimal"
    quotechar: str = Field('"', description="the one character that quotes a field")

    @field_validator("sep")
    @classmethod
    def _one_separator(cls, value: str | None) -> str | None:
        """The two characters `\\t` are a tab: what YAML's single quotes (`sep: '\\t'`) and a shell's `'\\t'` pass."""
        return one_character("\t" if value == "\\t" else value, "a separator", "; a tab is written \"\\t\" or '\\t'")

    @field_validator("quotechar")
    @classmethod
    def _one_quote(cls, value: str) -> str:
        return one_character(value, "a quote character")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return known_encoding(value)

    @model_validator(mode="after")
    def _columns_named(self) -> FormatOptions:
        """A file without a header must have its columns named here: the first row would name them otherwise."""
        if not self.header and not self.names:
            raise PydanticCustomError(
                "unnamed_columns", "header: false needs names, the file's column names (e.g. names: [text, label])"
            )
        return self


class SplitConfig(StrictModel):
    validation: float = Field(0.1, ge=0.0, lt=1.0, description="share of train carved off if data.validation is absent")
    test: float = Field(0.1, ge=0.0, lt=1.0, description="share of train carved off when data.test is absent")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="the split's random seed")
    stratify: bool = True

    @model_validator(mode="after")
    def _leaves_rows_to_train_on(self) -> SplitConfig:
        if self.validation + self.test >= 1:
            raise PydanticCustomError(
                "split_sum",
                "validation ({validation}) + test ({test}) carve {total:.0%} of train and leave nothing to train on; "
                "keep their sum below 1",
                {"validation": self.validation, "test": self.test, "total": self.validation + self.test},
            )
        return self


class LabelNoiseConfig(StrictModel):
    """Confident learning on out-of-fold probabilities of the training split (docs/label_noise.md)."""

    action: Literal["drop", "weight", "report"] = Field(
        "report", description="what train does with rows that look mislabelled: drop, down-weight, or only list them"
    )
    method: Literal["tfidf", "encoder", "both"] = Field(
        "tfidf", description="the out-of-fold classifier: TF-IDF, frozen bundled-encoder embeddings, or their mean"
    )
    folds: int = Field(5, ge=2, le=20)


class DomainPretrainingConfig(StrictModel):
    """Continued masked-LM pretraining of a pretrained text encoder on in-domain text before fine-tuning
    (DAPT/TAPT): the training split's texts always, plus `texts` when given."""

    texts: str | None = Field(
        None, description="an extra file of unlabelled texts: .txt one per line, or .csv/.tsv/.jsonl/.parquet"
    )
    text_column: str = Field("text", description="the column of `texts` holding the text (not for .txt)")
    steps: int = Field(1000, ge=1, description="masked-LM optimiser steps")
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-4, gt=0, description="peak rate: 6% linear warm-up, then linear decay to 0")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="share of tokens masked (BERT's 80/10/10 rule)")
    max_length: int | None = Field(None, ge=8, le=512, description="tokens; null = model.max_length or fit the texts")
    corpus_vocabulary: bool = Field(
        True,
        description="score masked positions over the tokens the texts hold, not the whole vocabulary (the same "
        "odds between those tokens; on a 250k-token vocabulary most of the head's work is saved); false = all",
    )


class DataConfig(StrictModel):
    """Files and split rules shared by every task; tasks subclass it to add their column names."""

    train: str
    validation: str | None = None
    test: str | None = None
    split: SplitConfig = Field(default_factory=SplitConfig)
    format: FormatOptions = Field(default_factory=FormatOptions)
    max_rows: int | None = Field(None, ge=1, description="at most this many rows per file (a .txt corpus: lines)")
    label_noise: LabelNoiseConfig | None = Field(None, description="audit the training labels (text classification)")


class ModelConfig(StrictModel):
    """Model options; tasks subclass it. `backbone` names a bundled model, a local folder or an architecture."""

    backbone: str = "auto"


class EarlyStopping(StrictModel):
    patience: int = Field(2, ge=1)
    metric: str | None = Field(None, description="validation metric to watch; default: the task's main metric")
    min_delta: float = 0.0


class PrivacyConfig(StrictModel):
    """Differentially private training (DP-SGD): per-example gradients clipped to `max_grad_norm`, Gaussian noise
    sized so the whole run spends at most (epsilon, delta), batches drawn by Poisson sampling."""

    epsilon: float = Field(8.0, gt=0, allow_inf_nan=False, description="the privacy budget the whole run may spend")
    delta: float = Field(1e-5, gt=0, allow_inf_nan=False, lt=1, description="keep below 1 / (training rows)")
    max_grad_norm: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="each example's gradient is clipped to this L2 norm"
    )
    train_layers: int = Field(
        2,
        ge=0,
        description="pretrained text encoders: the head and this many top encoder layers train, the rest "
        "is frozen (fewer noisy parameters, cheaper per-example gradients)",
    )


class TrainConfig(StrictModel):
    """Optimisation settings. A value left empty takes the chosen backbone's tuned default (`train` prints the values
    it runs with, each default marked)."""

    epochs: int | None = Field(None, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (overrides epochs)")
    batch_size: int | None = Field(None, ge=1, description="the global batch, split among --nproc processes")
    learning_rate: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant"] | None = None
    min_lr_ratio: float | None = Field(None, ge=0, le=1, description="decay to this fraction of the peak rate")
    adam_betas: tuple[float, float] | None = Field(None, description="AdamW's (beta1, beta2)")
    max_grad_norm: float | None = Field(1.0, gt=0)
    gradient_accumulation: int = Field(1, ge=1)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = Field(42, ge=0, le=2**32 - 1, description="seeds every random number generator")
    early_stopping: EarlyStopping | None = Field(default_factory=EarlyStopping)
    eval_every: int | None = Field(None, ge=1, description="evaluate every N steps; default once per epoch")
    checkpoint_every: int | None = Field(None, ge=1, description="checkpoint every N steps; default once per epoch")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none", description="scale the learning rate with gradient accumulation (the effective batch size)"
    )
    time_limit_s: float | None = Field(
        None, gt=0, description="wall-clock budget for trying candidates (tabular backbone auto); null = none"
    )
    privacy: PrivacyConfig | None = Field(None, description="train with DP-SGD; null = ordinary training")


class ParamRange(StrictModel):
    """One searched value: `choices`, or a range `low`..`high` (on a log scale with `log`, in steps of `step`)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _a_range_optuna_can_sample(self) -> ParamRange:
        if self.choices is not None:
            return self
        if self.low is None or self.high is None:
            raise ValueError("give either choices or low and high")
        if self.low > self.high:
            raise ValueError(f"low {self.low:g} is above high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, not {self.low:g}")
        if self.log and self.step is not None:  # Optuna samples a log range continuously
            raise ValueError("give either log or step, not both")
        return self


class TuneConfig(StrictModel):
    metric: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    params: dict[str, ParamRange] = Field(default_factory=dict)


class FederatedConfig(StrictModel):
    """`modelyard federate`: how a round copes with sites that drop out and how the server applies the sites'
    updates (docs/federated.md)."""

    min_sites: int | None = Field(
        None,
        ge=1,
        description="sites whose updates a round needs; fewer and the round is retried, then the federation "
        "fails. Default: half the sites, rounded up (at least 2 with secure aggregation)",
    )
    round_retries: int = Field(2, ge=0, description="times a round short of min_sites is run again before failing")
    round_timeout_s: float = Field(
        600.0, gt=0, description="--listen: seconds the server waits for the sites' updates before closing a round"
    )
    dropout: float = Field(
        0.0, ge=0, lt=1, description="simulation: each site fails to report in each round with this probability"
    )
    server_optimizer: Literal["sgd", "momentum", "adam"] = Field(
        "sgd",
        description="how the sites' average update moves the global model: sgd at rate 1 is FedAvg, momentum "
        "is FedAvgM, adam is FedAdam (Reddi et al. 2021); batch norm statistics are always averaged",
    )
    server_lr: float | None = Field(
        None,
        gt=0,
        description="the server optimiser's rate; default 1 (sgd), 1 - server_momentum (momentum: an "
        "effective rate of 1, Hsu et al. 2019), 0.01 (adam)",
    )
    server_momentum: float = Field(0.9, ge=0, lt=1, description="momentum's beta, adam's beta1")
    local_loss: Literal["plain", "balanced"] = Field(
        "plain",
        description="a site's training loss: plain cross-entropy, or balanced softmax (each site adds the log of "
        "its own label counts to the logits while training, Ren et al. 2020), for label-skewed sites; "
        "tabular classification MLPs only",
    )
    local_steps: int | None = Field(
        None,
        ge=1,
        description="a site's optimiser steps per round, in place of --local-epochs full passes: few steps over "
        "many rounds keep label-skewed sites from drifting apart (1 is FedSGD; with server_optimizer adam, Adam on "
        "the sites' joint gradient); default rounds then take as many steps as the centralised epochs",
    )
    local_optimizer: Literal["adamw", "sgd"] = Field(
        "adamw",
        description="the optimiser of a site's local steps: adamw (the shared loop's), or plain sgd (no "
        "momentum; set train.learning_rate to an SGD rate, e.g. 0.1); SCAFFOLD's correction is defined for SGD",
    )


class Costs(StrictModel):
    false_positive: float = Field(1.0, ge=0, allow_inf_nan=False)
    false_negative: float = Field(1.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _some_error_costs(self) -> Costs:
        # with both at 0 every threshold costs nothing: the search would pick one above every score, flag no row
        if self.false_positive == 0 and self.false_negative == 0:
            raise PydanticCustomError(
                "no_costs",
                "false_positive and false_negative are both 0, so every threshold costs nothing and none would be "
                "chosen fairly: give at least one a cost above 0 (e.g. {false_positive: 1, false_negative: 5}), "
                "or leave evaluation.costs out",
            )
        return self


class EvaluationConfig(StrictModel):
    """How a model is judged: a binary classifier's threshold from costs or a recall target and its group metrics;
    a generator's answer-quality metrics."""

    costs: Costs | None = Field(None, description="decision threshold = minimum expected cost on validation")
    target_recall: float | None = Field(None, gt=0, le=1, description="threshold reaching this recall instead")
    groups: list[str] = Field(default_factory=list, description="protected columns: answers per group, gaps")
    metrics: list[
        Literal["rouge_l", "bleu", "chrf", "exact_match", "token_f1", "faithfulness", "recall_at_k", "mrr"]
    ] = Field(
        default_factory=list,
        description="text generation (chat data): answer every test prompt and score it against the reference "
        "answer (rouge_l: summaries; bleu, chrf: translation; exact_match, token_f1: question answering; "
        "faithfulness: share of the answer found in the example's `passages`; recall_at_k, mrr: the example's "
        "`retrieved_ids` against its `relevant_ids`)",
    )


PII_KINDS = ("email", "phone", "card", "iban", "cn_id", "ip", "person")
PiiKind = Literal["email", "phone", "card", "iban", "cn_id", "ip", "person"]
RedactTarget = Literal["log", "report", "monitoring", "tracking"]


class RedactionConfig(StrictModel):
    """The top-level `privacy:` section: personal data is redacted wherever data leaves the user's control, on by
    default in every place (docs/privacy.md); `redact: []` turns it off."""

    redact: list[RedactTarget] = Field(
        default_factory=lambda: ["log", "report", "monitoring", "tracking"],
        description="log: served inputs in predictions.db; report: example rows in the HTML report; monitoring: "
        "outputs in predictions.db (feedback labels are stored as sent); tracking: data reports logged to MLflow",
    )
    detectors: list[PiiKind] = Field(default_factory=lambda: list(PII_KINDS), description="kinds to look for")
    hash_salt: str | None = Field(
        None,
        description="stable pseudonyms (<EMAIL:3f2a9c1b>, HMAC-SHA256 with this salt) instead of <EMAIL>; "
        "${NAME} reads the environment variable NAME so the secret stays out of files",
    )
    phone_regions: list[str] = Field(
        default_factory=lambda: ["CN", "US", "GB"],
        description="regions whose national-format numbers are recognised; +country-code numbers always are",
    )

    @model_validator(mode="after")
    def _regions_are_codes(self) -> RedactionConfig:
        bad = [r for r in self.phone_regions if not (len(r) == 2 and r.isalpha() and r.isupper())]
        if bad:
            raise ValueError(f"phone_regions: {bad} are not ISO 3166 region codes such as CN, US, GB")
        return self


class Config(StrictModel):
    """A whole run: what to train, on which data, how, and under which name."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    task: str
    data: SerializeAsAny[DataConfig]
    model: SerializeAsAny[ModelConfig] = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tune: TuneConfig | None = None
    federated: FederatedConfig | None = None
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    privacy: RedactionConfig = Field(default_factory=RedactionConfig)
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _task_sections(cls, values: Any, info: ValidationInfo) -> Any:
        """Validate `data` and `model` with the task's own section classes, found by the resolver the caller
        passes in the validation context (the task registry sits above this schema and is never imported here)."""
        if not isinstance(values, dict) or "task" not in values:
            return values
        resolve: SectionResolver | None = (info.context or {}).get("sections")
        if resolve is None:
            raise TypeError("Config needs a section resolver: use modelyard.tasks.load_config or config_from_dict")
        data_section, model_section = resolve(str(values["task"]))
        values = dict(values)
        for key in ("train", "evaluation", "privacy"):  # a section whose keys are all commented out: its defaults
            if key in values and values[key] is None:
                del values[key]
        if isinstance(values.get("data"), dict):
            values["data"] = _section(data_section, values["data"], "data")
        model = values.get("model")
        if not isinstance(model, model_section):
            values["model"] = _section(model_section, {} if model is None else model, "model")
        return values


def _section(cls: type[StrictModel], value: Any, key: str) -> StrictModel:
    """`value` validated as the task's section `cls`; its errors located under `key` (`data.split.seed`), which
    validating the section on its own would lose."""
    try:
        return cls.model_validate(value)
    except ValidationError as err:
        # a custom error type carries its finished message; pydantic formats none without a context
        located = [
            {
                "type": PydanticCustomError(e["type"], e["msg"], e.get("ctx")),
                "loc": (key, *e["loc"]),
                "input": e["input"],
            }
            for e in err.errors()
        ]
        raise ValidationError.from_exception_data(err.title, located) from None


SectionResolver = Callable[[str], tuple[type[DataConfig], type[ModelConfig]]]


def unknown_task(name: str, known: list[str]) -> PydanticCustomError:
    """The error a section resolver raises for a task name nobody registered, with a did-you-mean hint."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return PydanticCustomError(
        "unknown_task",
        "unknown task '{name}'{hint}; known tasks: {known}",
        {"name": name, "hint": hint, "known": ", ".join(known)},
    )


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        if e["type"] == "unknown_key":  # the misspelt key is the place to point at
            loc = f"{loc}.{e['ctx']['key']}" if loc else str(e["ctx"]["key"])
        lines.append(f"{source}: {loc or '(top level)'}: {e['msg']}{_yaml_typed(e)}")
    return "\n".join(lines)


def _yaml_typed(error: Any) -> str:
    """For a text field given a number, boolean or mapping: YAML read the value so (007, true, a: b), so say to
    quote it."""
    value = error.get("input")
    if error["type"] != "string_type" or isinstance(value, str) or value is None:
        return ""
    kind = "a boolean" if isinstance(value, bool) else "a mapping" if isinstance(value, dict) else "a number"
    return f" (YAML read the value as {kind}, {value!r}: put it in quotes to keep it as written)"


def parse_value(text: str) -> Any:
    """A `--set` value is read as YAML: numbers, booleans, null and lists work as in the file."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=1")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section")
            node = child
        node[parts[-1]] = parse_value(value)
    return raw


def resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative data paths (and local backbone folders) resolve against the config file's folder."""
    data = raw.get("data")
    if isinstance(data, dict):
        for key in PATH_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value:
                given = Path(value).expanduser()
                data[key] = str(given if given.is_absolute() else (base / given).resolve())
    model = raw.get("model")
    for section, key in MODEL_PATH_KEYS:
        node = model.get(section) if isinstance(model, dict) and section else model
        value = node.get(key) if isinstance(node, dict) else None
        if not isinstance(value, str) or Path(value).is_absolute():
            continue
        if key not in ("backbone", "encoder", "text_encoder") or "/" in value or value.startswith("."):  # or a name
            candidate = (base / value).resolve()
            if candidate.exists():
                node[key] = str(candidate)
    return raw


def parse_config(raw: dict[str, Any], source: str, sections: SectionResolver) -> Config:
    """Validate a config mapping; `sections` gives the task's own `data` and `model` section classes."""
    try:
        return Config.model_validate(raw, context={"sections": sections})
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load` that refuses a key given twice in one mapping: a second `train:` pasted into a config would
    otherwise replace the first without a word."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys on purpose
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):  # construct_mapping below refuses it with its own message
            continue
        if key in lines:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key '{key}' appears twice (lines {lines[key]} and {line}); the second would win",
                key_node.start_mark,
            )
        lines[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_config(path: str | Path, overrides: list[str] | None, sections: SectionResolver) -> Config:
    """Read a YAML config, apply `--set` overrides, resolve paths, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", "write one with `modelyard init TASK --output FILE`")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_UniqueKeyLoader)  # a SafeLoader: no tags run
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys name, task, data, model, train")
    raw = apply_overrides(raw, overrides or [])
    raw = resolve_paths(raw, path.resolve().parent)
    return parse_config(raw, str(path), sections)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
