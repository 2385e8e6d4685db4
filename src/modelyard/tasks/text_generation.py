"""Text generation: a small GPT pretrained from scratch on a corpus, or a bundled chat LLM tuned with LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from modelyard.config import Config, DataConfig, ModelConfig, StrictModel
from modelyard.data import text_corpus
from modelyard.errors import ConfigError, DataError, ModelNotFoundError
from modelyard.generation.options import GenerationOptions
from modelyard.models import catalog
from modelyard.protocols import PreparedData
from modelyard.tasks import register_task

SCRATCH = "gpt-scratch"

STARTER = """\
# modelyard config: text generation
name: my-text-generator
task: text_generation
data:
  train: data/corpus.txt            # .txt (or a folder of them), JSONL/JSON with a text field, or chat JSONL
  split: {validation: 0.1, test: 0.1, seed: 42}   # a corpus is split in contiguous blocks from its end
  text_field: text                  # JSONL/JSON: the field holding the text (a list of lines is joined)
model:
  backbone: gpt-scratch             # gpt-scratch | smollm2-135m | gemma3-270m (LoRA on chat data) | /path/to/hf-model
  tokenizer: char                   # gpt-scratch: char | bpe (learnt from the training text)
  layers: 4
  heads: 4
  hidden_size: 128
  context: 128                      # tokens the model sees at once
  lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: all-linear}   # pretrained backbones only
  merge: false                      # true: the bundle holds merged full weights instead of the adapter
  generation: {max_new_tokens: 128, temperature: 0.8, top_k: 50}
train:
  max_steps: 2000                   # or epochs
  batch_size: null                  # null = the backbone's tuned default
  learning_rate: null
  scheduler: null                   # cosine with warm-up by default
  eval_every: 500
  precision: auto
"""


class GenerationDataConfig(DataConfig):
    text_field: str = Field("text", description="JSONL/JSON field with the text; a list of strings is joined")
    messages_field: str = Field("messages", description="JSONL field with OpenAI-style chat messages")
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    passages_field: str = Field("passages", description="JSONL field with retrieved passages (faithfulness)")


class LoraOptions(StrictModel):
    r: int = Field(16, ge=1, le=512)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt, or all-linear (every linear layer but the output)"
    )


class GenerationModelConfig(ModelConfig):
    backbone: str = Field(
        SCRATCH, description="gpt-scratch, smollm2-135m, gemma3-270m (multilingual base), or a local HF folder"
    )
    tokenizer: Literal["char", "bpe"] = Field("char", description="gpt-scratch: learnt from the training text")
    vocab_size: int = Field(2048, ge=64, description="bpe vocabulary size")
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    hidden_size: int = Field(128, ge=8)
    context: int = Field(128, ge=8, le=4096, description="gpt-scratch: tokens per context window")
    dropout: float = Field(0.0, ge=0, lt=1)
    max_length: int = Field(
        512,
        ge=16,
        description="pretrained backbones: tokens per training example; an example whose answer it cuts away "
        "entirely is left out (validate counts them); training or test data left with none is refused",
    )
    lora: LoraOptions | None = Field(default_factory=LoraOptions, description="null fine-tunes every weight")
    merge: bool = Field(False, description="store merged full weights instead of the LoRA adapter")
    decode_weights: Literal["int4", "float"] = Field(
        "int4",
        description="pretrained backbones: weights generation reads on the CPU: int4 (weight-only, output layer "
        "int8; ~3x faster, answers as close to fp32 as bf16's) or float (the trained weights as they are)",
    )
    generation: GenerationOptions = Field(
        default_factory=GenerationOptions, description="defaults for predict, generate and the server"
    )


def _read(config: Config, path: str) -> list[tuple[str, str | dict]]:
    """The file's items, each with where it comes from ("FILE: line N")."""
    data: GenerationDataConfig = config.data
    fields = text_corpus.Fields(
        data.text_field, data.messages_field, data.prompt_field, data.completion_field, data.passages_field
    )
    return text_corpus.read_located(path, fields, data.max_rows)


def _check_references(config: Config, splits: dict[str, list], kind: str, places: dict[str, list[str]]) -> dict:
    """What `evaluation.metrics` needs of the examples it scores (the test split, or all of an evaluation file):
    chat examples ending in the reference answer after a prompt, and `passages` for faithfulness. Examples are
    named by their file and line (`places`, per split)."""
    data: GenerationDataConfig = config.data
    if kind != "chat":
        raise ConfigError(
            "evaluation.metrics scores answers against references: it needs chat or prompt/completion data",
            f"{data.train} holds plain text",
        )
    name = "test" if splits.get("test") else "train"
    for where, item in zip(places[name], splits[name], strict=True):
        if item["messages"][-1]["role"] != "assistant":
            raise DataError(
                f"{where}: the example does not end with an assistant answer (evaluation.metrics compares the "
                "model's answer with it)"
            )
        if len(item["messages"]) < 2:
            raise DataError(
                f"{where}: the example is only an assistant answer: evaluation.metrics needs a message before it "
                "for the model to answer",
                "scored examples need a prompt and the reference answer",
            )
        if "faithfulness" in config.evaluation.metrics and not item.get("passages"):
            raise DataError(
                f"{where}: the example has no '{data.passages_field}' (faithfulness checks the answer against them)",
                "give every example its retrieved passages, or drop faithfulness from evaluation.metrics",
            )
        ranking = {"recall_at_k", "mrr"} & set(config.evaluation.metrics)
        if ranking and not ("retrieved_ids" in item and item.get("relevant_ids")):
            raise DataError(
                f"{where}: the example needs 'retrieved_ids' and non-empty 'relevant_ids' for "
                f"{', '.join(sorted(ranking))}",
                "give every example the ids its retriever returned (best first) and the relevant ids",
            )
    return {"metrics": list(config.evaluation.metrics), "scored_examples": len(splits[name]), "split": name}


def _check_max_length(config: Config, splits: dict[str, list]) -> list[str]:
    """Warnings naming the chat examples whose answer `model.max_length` cuts away entirely (training and scoring
    leave them out); DataError when that is every training example, or every example of a test split (its metrics
    would be empty, and `evaluate` and `retrain` would have nothing to compare)."""
    from modelyard.learners.lora import count_cut_away

    limit = config.model.max_length
    cut = count_cut_away(config.model.backbone, splits, limit)
    hint = "raise model.max_length (tokens per example, the prompt and chat template included)"
    if cut["train"] == len(splits["train"]):
        raise DataError(
            f"{config.data.train}: model.max_length {limit} cuts away the answer of every training example "
            f"({cut['train']}): nothing to train on",
            hint,
        )
    if splits.get("test") and cut["test"] == len(splits["test"]):
        where = config.data.test or f"the test split of {config.data.train}"
        raise DataError(
            f"{where}: model.max_length {limit} cuts away the answer of every test example ({cut['test']}): "
            "no test example could be scored",
            hint,
        )
    return [
        f"{cut[name]} of {len(items)} {name} examples have no answer token within model.max_length {limit} and "
        "are left out"
        for name, items in splits.items()
        if cut[name]
    ]


def _size(items: list[str | dict]) -> int:
    return sum(len(i) if isinstance(i, str) else sum(len(m["content"]) for m in i["messages"]) for i in items)


@register_task("text_generation")
class TextGenerationTask:
    DataConfig: ClassVar = GenerationDataConfig
    ModelConfig: ClassVar = GenerationModelConfig
    Input: ClassVar = str
    main_metric: ClassVar = "loss"
    evaluation_keys: ClassVar = frozenset({"metrics"})  # the `evaluation` keys it reads
    validation_metrics: ClassVar = ("loss", "perplexity")  # perplexity_metrics, per token
    greater_is_better: ClassVar = False
    generates_text: ClassVar = True  # the server adds the OpenAI-compatible generation routes

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        data: GenerationDataConfig = config.data
        located = _read(config, data.train)
        train = [item for _, item in located]
        kind = text_corpus.kind(train, [where for where, _ in located])
        read = {w: _read(config, getattr(data, w)) for w in ("validation", "test") if getattr(data, w)}
        given = {w: [item for _, item in found] for w, found in read.items()}
        carve = {w: 0.0 if w in given else getattr(data.split, w) for w in ("validation", "test")}
        splits = text_corpus.split(train, carve["validation"], carve["test"], data.split.seed)
        splits.update(given)
        for name, items in given.items():
            if text_corpus.kind(items, [where for where, _ in read[name]]) != kind:
                raise DataError(f"{getattr(data, name)}: {name} data is not the same kind ({kind}) as train")
        if not _size(splits["train"]):
            raise DataError(f"{data.train}: nothing left to train on after the split")
        if config.model.backbone != SCRATCH:
            self._check_backbone(config.model.backbone)  # what `build` would refuse, `validate` refuses first
            lora = config.model.lora
            if lora is not None and lora.target_modules != "all-linear":
                from modelyard.learners.lora import check_target_modules

                check_target_modules(config.model.backbone, lora.target_modules)
        warnings = _check_max_length(config, splits) if config.model.backbone != SCRATCH and kind == "chat" else []
        if config.model.backbone != SCRATCH and kind == "corpus":
            warnings.append("plain text with a pretrained chat model: the loss covers every token")
        report = {
            "kind": kind,
            "splits": {n: len(s) for n, s in splits.items()},
            "characters": {n: _size(s) for n, s in splits.items()},
            "split_notes": [
                "corpus: contiguous blocks from the end (test last)"
                if kind == "corpus"
                else f"chat examples: random split (seed {data.split.seed})"
            ],
        }
        if config.evaluation.metrics:
            places = {w: [where for where, _ in found] for w, found in read.items()}
            if kind == "chat":  # where each carved example sits in the train file
                carved = text_corpus.chat_split(len(train), carve["validation"], carve["test"], data.split.seed)
                for name, rows in carved.items():
                    places.setdefault(name, [located[i][0] for i in rows])
            report["evaluation"] = _check_references(config, splits, kind, places)
        prints = {n: text_corpus.fingerprint(s) for n, s in splits.items()}
        return PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)

    def build(self, config: Config, data: PreparedData):
        backbone = config.model.backbone
        if backbone == SCRATCH:
            from modelyard.learners.gpt import GPTLearner

            data.report["backbone"] = "gpt-scratch: a GPT trained from scratch with a tokenizer learnt from the text"
            return GPTLearner.scratch(config.model, data.splits["train"])
        self._check_backbone(backbone)
        from modelyard.learners.lora import CausalLMLearner

        data.report["backbone"] = f"{backbone}: pretrained causal LM" + (" with LoRA" if config.model.lora else "")
        return CausalLMLearner.pretrained(backbone, config.model)

    @staticmethod
    def _check_backbone(backbone: str) -> None:
        if backbone in catalog.CATALOG and catalog.CATALOG[backbone].kind == "causal-lm":
            catalog.locate(backbone)
            return
        if not catalog.is_local_hf_dir(backbone):
            raise ModelNotFoundError(
                f"unknown backbone '{backbone}' for text_generation",
                f"use {SCRATCH}, {', '.join(catalog.names('causal-lm'))}, or a local Hugging Face folder",
            )

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        return {}

    def load(self, directory: Path, manifest: dict[str, Any], config: Config):
        if manifest["backbone"] == SCRATCH:
            from modelyard.learners.gpt import GPTLearner, OnnxGPTLearner

            runtime = OnnxGPTLearner if manifest.get("runtime") == "onnxruntime" else GPTLearner
            return runtime.load(directory, config.model)
        from modelyard.learners.lora import CausalLMLearner

        return CausalLMLearner.load(directory, manifest, config.model)
