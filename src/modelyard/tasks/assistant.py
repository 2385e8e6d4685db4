"""A grounded assistant: documents (or an index) + a chat model + a system prompt, served as /v1/chat/completions
that answers from retrieved passages, cites them, declines when they do not hold the answer and hands over to a
person for configured intents. "Training" indexes the documents and calibrates the decline threshold on labelled
questions; the bundle holds the index, the prompt, the threshold and the chat (and intent) model.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import string
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field, field_validator

from modelyard import bundle
from modelyard.config import Config, DataConfig, ModelConfig, StrictModel
from modelyard.data.blank import is_blank
from modelyard.data.jsonl import json_lines
from modelyard.errors import BundleError, ConfigError, DataError, ModelNotFoundError
from modelyard.generation.options import GenerationOptions
from modelyard.home import home
from modelyard.models import catalog
from modelyard.protocols import PreparedData, Text
from modelyard.retrieval import chunking
from modelyard.retrieval.index import MANIFEST, build, is_index
from modelyard.retrieval.readers import SUFFIXES, list_documents
from modelyard.tasks import config_from_dict, get_task, register_task

STARTER = """\
# modelyard config: a grounded assistant (docs/assistant.md)
name: my-assistant
task: assistant
data:
  train: docs/                      # documents (.md .txt .html .pdf), indexed at train; or a `modelyard index` folder
  validation: questions.jsonl       # {"question": ..., "answers": [...]}; "answers": [] = not in the documents
  test: null                        # optional; carved from validation (split.test) when absent
model:
  backbone: smollm2-135m            # chat model: smollm2-135m | gemma3-270m | text_generation bundle | HF folder
  encoder: minilm-l6                # indexing a documents folder: minilm-l6 | multilingual-e5-small
  system_prompt: You are the customer-service assistant of our product. Be brief and polite.
  passages: 3                       # passages shown to the chat model and cited
  decline_on: reranked              # the score the threshold applies to: reranked (first passage) | cosine
  decline_threshold: null           # null: chosen on the validation questions; or a score such as 0.7
  handover: null                    # {bundle: intent-classifier/, intents: [human_agent], min_confidence: 0.6}
  memory: {turns: 6, sessions: 1000, idle_minutes: 60}
  generation: {max_new_tokens: 96, temperature: 0.0}
"""
# short, deterministic answers that do not repeat the passages back
GENERATION_DEFAULTS = {"max_new_tokens": 96, "temperature": 0.0, "repetition_penalty": 1.1}
DEFAULT_PROMPT = "You are a helpful customer-service assistant. Be brief and polite."


class AssistantDataConfig(DataConfig):
    train: str = Field(..., description="a documents folder (indexed at train time) or a `modelyard index` folder")
    question_field: str = "question"
    answers_field: str = Field("answers", description="gold answer strings; an empty list: not in the documents")


class Handover(StrictModel):
    bundle: str = Field(..., description="a text classification bundle that names the intent of a message")
    intents: list[str] = Field(..., min_length=1, description="intents that go to a person instead of the model")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    message: str = Field(
        "I'm handing you over to a colleague who can help with {intent}. Please hold on.",
        description="the answer given instead; {intent} is replaced by the intent's name (write { } as {{ }})",
    )

    @field_validator("message")
    @classmethod
    def _only_the_intent_placeholder(cls, message: str) -> str:
        """A placeholder other than {intent} would fail at every hand-over, after the model was trained."""
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(message) if name is not None]
            unknown = [f"{{{name}}}" for name in fields if name != "intent"]
            if not unknown:
                message.format(intent="support")
        except (ValueError, KeyError, IndexError, AttributeError) as err:
            raise ValueError(f"not a valid template ({err}); write literal braces as {{{{ }}}}") from None
        if unknown:
            raise ValueError(f"unknown placeholder {', '.join(unknown)}: only {{intent}} is filled in")
        return message


class Memory(StrictModel):
    turns: int = Field(6, ge=0, le=100, description="earlier messages of a session the chat model sees")
    sessions: int = Field(1000, ge=1, description="sessions a server keeps (least recently used dropped first)")
    idle_minutes: float = Field(60, gt=0, description="a session unused this long is forgotten")


class AssistantModelConfig(ModelConfig):
    backbone: str = Field("smollm2-135m", description="chat model: a bundled name, a text_generation bundle, HF dir")
    encoder: str = Field("minilm-l6", description="encoder for indexing a documents folder")
    chunk_size: int | None = Field(
        150, ge=1, description="words per chunk: whole SQuAD paragraphs put the answer in the first passage more often"
    )
    overlap: int | None = Field(30, ge=0)
    system_prompt: str = Field(DEFAULT_PROMPT, min_length=1)
    passages: int = Field(3, ge=1, le=10, description="passages given to the chat model and cited")
    candidates: int = Field(10, ge=1, le=100, description="hybrid-search hits re-ranked to choose the passages")
    rerank_weight: float = Field(0.75, ge=0.0, le=1.0, description="cosine weight against normalised BM25")
    sentence_weight: float = Field(
        0.75, ge=0.0, description="re-ranking weight of the best sentence's share of the question's words"
    )
    decline_on: Literal["reranked", "cosine"] = Field(
        "reranked",
        description="the score the decline threshold applies to: the first passage's re-ranked score, or the cosine "
        "of the question to its closest chunk (separates answerable questions less well: docs/assistant.md)",
    )
    decline_threshold: float | None = Field(None, description="null: calibrated on data.validation questions")
    decline_rate: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="calibrating: the lowest threshold declining this share of unanswerable "
        "validation questions (null: the best balanced accuracy)",
    )
    decline_message: str = "I don't know: the documents I can search do not answer that."
    handover: Handover | None = None
    memory: Memory = Field(default_factory=Memory)
    decode_weights: Literal["int4", "float"] = "int4"
    generation: GenerationOptions = Field(default_factory=lambda: GenerationOptions(**GENERATION_DEFAULTS))

    @field_validator("generation", mode="before")
    @classmethod
    def _generation_defaults_per_key(cls, value: Any) -> Any:
        """Setting one generation key keeps the assistant's defaults for the others."""
        return {**GENERATION_DEFAULTS, **value} if isinstance(value, dict) else value


def check_settings_take_effect(model: AssistantModelConfig) -> None:
    """Refuse pairs of settings of which one would be silently ignored or cut short. Checked when data is prepared
    (validate, train), not when a bundle loads: a bundle trained with such a pair still serves as it always did."""
    if model.passages > model.candidates:
        raise ConfigError(
            f"model.passages ({model.passages}) is more than model.candidates ({model.candidates}): the passages are "
            f"chosen among the candidates, so only {model.candidates} would be given",
            "set model.passages at most model.candidates",
        )
    if model.decline_threshold is not None and model.decline_rate is not None:
        raise ConfigError(
            f"model.decline_threshold ({model.decline_threshold}) and model.decline_rate ({model.decline_rate}) are "
            "both set: a fixed threshold is not calibrated, so decline_rate would be ignored",
            "set one of them",
        )


def read_questions(path: str, data: AssistantDataConfig) -> list[dict[str, Any]]:
    """Labelled questions from JSONL: each with its text, gold answers and whether the documents hold one."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: questions file not found", 'give a JSONL file of {"question", "answers"}')
    rows = []
    for number, line in enumerate(json_lines(file.read_text(encoding="utf-8")), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {number} is not JSON ({err.msg})") from None
        question = item.get(data.question_field) if isinstance(item, dict) else None
        answers = item.get(data.answers_field, []) if isinstance(item, dict) else None
        if not isinstance(question, str) or is_blank(question):
            raise DataError(f"{path}: line {number} has no '{data.question_field}' text")
        if not isinstance(answers, list) or not all(isinstance(a, str) and a for a in answers):
            raise DataError(f"{path}: line {number}: '{data.answers_field}' must be a list of non-empty strings")
        rows.append({"question": question, "answers": answers, "answerable": bool(answers)})
    if not rows:
        raise DataError(f"{path}: no questions")
    return rows


def _documents(path: str) -> list[str]:
    folder = Path(path)
    if is_index(folder):
        try:
            return sorted(json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"])
        except (ValueError, KeyError, OSError) as err:
            raise DataError(f"{folder}: unreadable index manifest ({err})", "index the documents again") from None
    docs = list_documents(folder)  # a clear error when it is not a folder
    if not docs:
        raise DataError(f"{folder} holds no documents", f"add {', '.join(sorted(SUFFIXES))} files to it")
    return [p.relative_to(folder).as_posix() for p in docs]


def _bundle_task(path: Path) -> str | None:
    try:
        return json.loads((path / bundle.MANIFEST).read_text(encoding="utf-8")).get("task")
    except (ValueError, OSError):
        return None


def check_chat_model(backbone: str) -> str:
    """What the chat backbone is (catalog, bundle, hf); a clear error for anything else."""
    if backbone in catalog.CATALOG and catalog.CATALOG[backbone].kind == "causal-lm":
        catalog.locate(backbone)
        return "catalog"
    path = Path(backbone).expanduser()
    if (path / bundle.MANIFEST).is_file():
        if _bundle_task(path) != "text_generation":
            raise ConfigError(f"model.backbone: {backbone} is a {_bundle_task(path)} bundle, not a chat model")
        return "bundle"
    if catalog.is_local_hf_dir(backbone):
        check_hf_chat_folder(path)
        return "hf"
    raise ModelNotFoundError(
        f"model.backbone: unknown chat model '{backbone}'",
        f"use {', '.join(catalog.names('causal-lm'))}, a text_generation bundle folder, or a local HF folder",
    )


def check_hf_chat_folder(path: Path) -> None:
    """A local Hugging Face folder answers chat only as a causal LM whose tokenizer has a chat template."""
    try:
        architectures = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (ValueError, OSError, AttributeError) as err:
        raise ConfigError(f"model.backbone: {path}/config.json is unreadable ({err})") from None
    if not any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        raise ConfigError(
            f"model.backbone: {path} is not a chat model (architectures {architectures}, not a causal LM)",
            f"use {', '.join(catalog.names('causal-lm'))}, a text_generation bundle, or an HF chat model folder",
        )
    if not _has_chat_template(path):
        raise ConfigError(
            f"model.backbone: {path} has no chat template (tokenizer_config.json chat_template or chat_template.jinja)",
            "use the instruction-tuned (chat) version of the model",
        )


def _has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        tokenizer = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    return isinstance(tokenizer, dict) and bool(tokenizer.get("chat_template"))


def load_bundle(path: Path) -> Any:
    """A bundle's learner (checksums verified), without the loader (which sits above the tasks)."""
    manifest = bundle.verify(path)
    try:
        raw = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise BundleError(f"{path}: config.yaml is unreadable ({err})") from None
    config = config_from_dict(raw, str(path / "config.yaml"))
    learner = get_task(config.task).load(path, manifest, config)
    learner.bundle_path = path
    return learner


def check_handover(handover: Handover | None) -> dict[str, Any] | None:
    """The intent bundle exists, classifies, and knows every hand-over intent."""
    if handover is None:
        return None
    path = Path(handover.bundle).expanduser()
    if not (path / bundle.MANIFEST).is_file():
        raise ModelNotFoundError(
            f"model.handover.bundle: {handover.bundle} is not a model bundle",
            "train an intent classifier first (modelyard train examples/support_intents.yaml --output DIR), or set "
            "model.handover to null",
        )
    manifest = bundle.read_manifest(path)
    if manifest.get("task") != "text_classification":
        raise ConfigError(
            f"model.handover.bundle: {handover.bundle} is a {manifest.get('task')} bundle; hand-over needs a "
            "text_classification bundle that names the intent of a message",
            "train one on labelled messages, e.g. modelyard train examples/support_intents.yaml --output DIR",
        )
    labels = manifest.get("labels") or []
    if not labels:
        raise ConfigError(f"model.handover.bundle: {handover.bundle} ({manifest.get('task')}) has no intent labels")
    for intent in handover.intents:
        if intent not in labels:
            close = difflib.get_close_matches(intent, labels, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"model.handover.intents: '{intent}' is not a label of {path}", f"{hint}labels: {labels}")
    return {"bundle": str(path), "task": manifest.get("task"), "labels": len(labels), "intents": handover.intents}


def check_chunking(model: AssistantModelConfig) -> None:
    """The chunking `build` will use for a new index, named by its config keys (train would refuse it later)."""
    size = model.chunk_size or chunking.DEFAULT_SIZE
    overlap = chunking.DEFAULT_OVERLAP if model.overlap is None else model.overlap
    given = model.overlap is not None and "overlap" in model.model_fields_set
    chunking.check(size, overlap, ("model.chunk_size", "model.overlap"), "" if given else "the default")


def _fingerprint(items: list[Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(items, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    return {"sha256": digest, "rows": len(items)}


def _chat_learner(backbone: str, options: AssistantModelConfig) -> Any:
    """The chat model, with the assistant's generation defaults."""
    from modelyard.learners.lora import CausalLMLearner
    from modelyard.tasks.text_generation import GenerationModelConfig

    if check_chat_model(backbone) == "bundle":
        learner = load_bundle(Path(backbone).expanduser())
        if not hasattr(learner, "render_chat"):
            raise ConfigError(f"model.backbone: {backbone} is not a chat model (trained from scratch on a corpus)")
    else:
        settings = GenerationModelConfig(backbone=backbone, lora=None, decode_weights=options.decode_weights)
        learner = CausalLMLearner.pretrained(backbone, settings)
    learner.generator.defaults = options.generation
    return learner


@register_task("assistant")
class AssistantTask:
    DataConfig: ClassVar = AssistantDataConfig
    ModelConfig: ClassVar = AssistantModelConfig
    Input: ClassVar = Text
    main_metric: ClassVar = "balanced_accuracy"
    evaluation_keys: ClassVar = frozenset({"metrics"})  # the `evaluation` keys it reads
    greater_is_better: ClassVar = True
    assists: ClassVar = True  # the server adds the grounded /v1/chat/completions (serving/assistant_routes.py)
    exports: ClassVar = False  # an index and a chat model: served as they are, never exported

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        data: AssistantDataConfig = config.data
        model: AssistantModelConfig = config.model
        documents = _documents(data.train)
        kind = check_chat_model(model.backbone)
        if not is_index(data.train):
            from modelyard.retrieval.encoder import encoder_folder

            encoder_folder(model.encoder)
            check_chunking(model)
        check_settings_take_effect(model)
        handover = check_handover(model.handover)
        validation = read_questions(data.validation, data) if data.validation else []
        test = read_questions(data.test, data) if data.test else []
        if validation and not test and data.split.test:
            import random

            shuffled = random.Random(data.split.seed).sample(validation, len(validation))
            cut = max(1, round(len(shuffled) * data.split.test)) if len(shuffled) > 1 else 0
            test, validation = shuffled[:cut], shuffled[cut:]
        splits = {"train": documents, "validation": validation, "test": test}
        carved = f"carved from validation ({data.split.test:.0%}, seed {data.split.seed})" if test else ""
        sources = {"train": data.train, "validation": data.validation or "", "test": data.test or carved}
        report = {
            "documents": {"source": "index" if is_index(data.train) else "folder", "files": len(documents)},
            "chat_model": {"backbone": model.backbone, "kind": kind},
            "questions": {
                name: {
                    "answerable": sum(q["answerable"] for q in qs),
                    "unanswerable": sum(not q["answerable"] for q in qs),
                }
                for name, qs in (("validation", validation), ("test", test))
            },
            "handover": handover,
            "sources": sources,  # the model card's Data table: no split is carved from the documents
        }
        source = "index folder" if is_index(data.train) else "documents"
        report["splits"] = {source: len(documents), "validation": len(validation), "test": len(test)}
        report["split_notes"] = [
            f"{name} questions: {counts['answerable']} answerable, {counts['unanswerable']} not in the documents"
            for name, counts in report["questions"].items()
        ]
        report["backbone"] = f"chat model {model.backbone} ({kind})" + (
            f"; hand-over of {', '.join(handover['intents'])} by {handover['bundle']}" if handover else ""
        )
        warnings = []
        if model.decline_threshold is None and not validation:
            warnings.append("no validation questions: the decline threshold is the MiniLM default, not calibrated")
        if validation and not all(sum(q["answerable"] is a for q in validation) for a in (True, False)):
            warnings.append("calibrating the decline threshold needs answerable AND unanswerable validation questions")
        prints = {name: _fingerprint(items) for name, items in splits.items()}
        return PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)

    def build(self, config: Config, data: PreparedData):
        """Index the documents (incrementally, into MODELYARD_HOME/indexes/NAME) and load the chat model."""
        from modelyard.learners.assistant import AssistantLearner
        from modelyard.retrieval.index import Index

        model: AssistantModelConfig = config.model
        folder = Path(config.data.train)
        if not is_index(folder):
            target = home() / "indexes" / config.name
            update = build(folder, target, model.encoder, model.chunk_size, model.overlap)
            data.report["index"] = {"chunks": update.chunks, "embedded": update.embedded_chunks, "folder": str(target)}
            folder = target
        intents = load_bundle(Path(model.handover.bundle).expanduser()) if model.handover else None
        data.report["backbone"] = f"{model.backbone}: chat model answering from retrieved passages"
        return AssistantLearner(Index.load(folder), _chat_learner(model.backbone, model), model, intents)

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        return {}

    def evaluation_file(self, config: Config, path: str) -> list[dict[str, Any]]:
        """`evaluate --data FILE`: FILE holds labelled questions (the documents stay those of the bundle)."""
        return read_questions(path, config.data)

    def load(self, directory: Path, manifest: dict[str, Any], config: Config):
        from modelyard.learners.assistant import AssistantLearner, read_state
        from modelyard.retrieval.index import Index

        model: AssistantModelConfig = config.model
        backbone = str(directory / "chat") if (directory / "chat").is_dir() else model.backbone
        intents = load_bundle(directory / "intents") if (directory / "intents").is_dir() else None
        chat = _chat_learner(backbone, model)
        return AssistantLearner(Index.load(directory / "index"), chat, model, intents, read_state(directory))
