"""The small protocol every task satisfies, and the data structures passed between the layers.

Data flows one way: config -> `Task.prepare` (read, clean, split, profile) -> `Task.build` (a `Learner`: model +
preprocessing) -> the shared trainer (`training.loop.fit`, which only calls the Learner's methods) -> the bundle
(`Learner.save`) -> `Task.load` -> `Learner.predict` (CLI, Python API, server).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticCustomError

from modelyard.config import Config, DataConfig, ModelConfig
from modelyard.data.blank import is_blank

if TYPE_CHECKING:
    import torch

BLANK_TEXT = "blank or whitespace only: there is no text to predict"


def _not_blank(text: str) -> str:
    """A text to classify, tag or answer has words: a blank one would get a confident answer about nothing, so it
    is refused as training, `explain` and `predict --input` refuse it."""
    if is_blank(text):
        raise PydanticCustomError("blank_text", BLANK_TEXT)
    return text


Text = Annotated[str, AfterValidator(_not_blank)]
"""The `Input` of a task that reads one non-blank text; a generator's prompt is plain `str` (an empty prompt is
free generation from the start token)."""


def reads_text(input_type: Any) -> bool:
    """Whether a task's `Input` is one text (blank or not)."""
    return input_type is str or input_type is Text


@dataclass
class PreparedData:
    """Clean, split data plus the report `validate` prints and `train` logs.

    `splits` maps "train", "validation", "test" to whatever the task works with (usually a pandas DataFrame).
    `fingerprints` maps each split to {"sha256": ..., "rows": ...}; they go into the bundle manifest.
    """

    splits: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class Learner(Protocol):
    """A model plus its preprocessing: what is trained, saved in a bundle, loaded and served.

    Gradient-trained learners expose `module` (the torch module the trainer optimises) and `dataset`, `collate`,
    `loss`; learners trained otherwise (scikit-learn) set `module = None` and implement `fit(train, validation)`.
    Optional capabilities, detected with hasattr: `lengths(dataset)` for length-bucketed batches,
    `param_groups(lr, weight_decay)`, `finish_training() -> bool` (after the best weights are restored; True when
    it changed them, so they are validated again), `generate(...)`, `explain(...)`, `embed(inputs)`,
    `reference_profile(train)`.
    """

    module: torch.nn.Module | None
    backbone: str

    def train_defaults(self) -> dict[str, Any]:
        """Tuned `train.*` defaults for this backbone, used wherever the config left a value empty."""
        ...

    def dataset(self, data: Any, training: bool) -> torch.utils.data.Dataset:
        """Items the trainer batches with `collate`; `training` turns on augmentation."""
        ...

    def collate(self, items: list[Any]) -> dict[str, torch.Tensor]: ...

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Metrics on one split (DESIGN.md metric names), computed in eval mode."""
        ...

    def predict(self, inputs: list[Any], top_k: int = 1) -> list[dict[str, Any]]:
        """One JSON-able answer per input; inputs have the shape of the task's `Input` type."""
        ...

    def save(self, directory: Path) -> dict[str, Any]:
        """Write weights (safetensors) and preprocessing into `directory`; return manifest extras (e.g. labels)."""
        ...


@runtime_checkable
class ChangedAfterTraining(Protocol):
    """A learner whose `finish_training` changes the weights after the last evaluation of training (weight-space
    averaging): the learning curve is of the weights before it, the headline of the weights kept."""

    def kept_after_training(self) -> str | None:
        """How the kept weights came from the last ones evaluated; None when this model kept those."""
        ...


@runtime_checkable
class ShardedEvaluation(Protocol):
    """A learner whose `evaluate` is one pass over fixed batches of independent units (rows, text windows,
    examples, forecast origins), then one score over all their outputs. Under `train --nproc N` each rank runs
    every N-th of those same batches and rank 0 scores the gathered outputs: one process's metrics, N times faster.
    """

    def eval_outputs(self, data: Any, shard: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """(units, outputs) of the batches `shard` = (rank, ranks) runs: unit indices and one output row each."""
        ...

    def eval_score(self, data: Any, outputs: np.ndarray) -> dict[str, Any]:
        """The metrics of `data` from every unit's output, in unit order."""
        ...


@runtime_checkable
class SplitsBatches(Protocol):
    """A learner whose loss is a mean over independent rows: the loop runs a long batch as parts (micro-batches)
    whose losses, weighted by their share of the rows, sum to the batch's loss. The gradient and the optimizer step
    are the batch's; activation memory is a part's."""

    def micro_batches(self, batch: dict[str, torch.Tensor]) -> list[tuple[dict[str, torch.Tensor], float]]:
        """(part, share of the batch's rows) pairs covering `batch`; `[(batch, 1.0)]` when it is short enough."""
        ...


@runtime_checkable
class DescribesInputs(Protocol):
    """A learner whose raw inputs must not be stored (audio: voices are personal data, and large) and are
    monitored through a few numbers instead: the prediction log keeps `describe_input(item)` in place of the
    input; the learner's `reference_profile` / `feature_drift` compare those numbers with the training data's."""

    def describe_input(self, item: Any) -> dict[str, float]:
        """A few named numbers about one parsed input (e.g. duration, loudness, SNR, silence share)."""
        ...


@runtime_checkable
class LogsOutputs(Protocol):
    """A learner whose answers are logged in another shape than they are returned (an assistant: as its chat
    completions log theirs, so feedback on either becomes preference pairs alike): the prediction log keeps
    `logged_output(answer)` in place of the answer."""

    def logged_output(self, answer: dict[str, Any]) -> dict[str, Any]:
        """One answer as the prediction log keeps it."""
        ...


@runtime_checkable
class MeasuresInputs(Protocol):
    """A learner whose inputs cost time by their length (audio): the server adds up `input_seconds` over a
    request, from the files' headers, and refuses one over its limit before decoding anything."""

    def input_seconds(self, item: Any) -> float:
        """The length of one raw request input in seconds; ValueError when it cannot be used."""
        ...


class Task(Protocol):
    """A kind of problem. One module in `tasks/` per task, registered with `@register_task`."""

    name: ClassVar[str]
    DataConfig: ClassVar[type[DataConfig]]
    ModelConfig: ClassVar[type[ModelConfig]]
    Input: ClassVar[Any]  # the type of one item of `/v1/predict` "inputs" (Text, str, or a pydantic model)
    main_metric: ClassVar[str]
    greater_is_better: ClassVar[bool]

    def starter_config(self) -> str:
        """A commented YAML config that `modelyard init` writes."""
        ...

    def prepare(self, config: Config) -> PreparedData: ...

    def build(self, config: Config, data: PreparedData) -> Learner:
        """Choose the backbone (saying which and why in `data.report`), build the untrained learner."""
        ...

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        """Simple reference models fitted on the same split, scored on validation and test."""
        ...

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> Learner: ...


InputModel = BaseModel  # tasks with structured inputs define a pydantic model for one input


def check_top_k(model: Any, top_k: int, option: str = "--top-k") -> None:
    """Refuse `top_k` above 1 for a model with no classes to rank (a recommender, forecaster, generator), which
    would answer as if it had not been given; a recommender's own count is each request's `k`. `option`: how the
    caller spells it (`--top-k` on the command line, `top_k` in a request)."""
    from modelyard.errors import UserError

    if top_k == 1 or model.labels:
        return
    hint = f"leave {option} out"
    if "k" in getattr(model.task.Input, "model_fields", {}):
        hint = 'each input\'s "k" sets how many items come back, e.g. {"user": "196", "k": ' + f"{top_k}}}"
    raise UserError(f"{option} {top_k}: a {model.manifest.get('task', 'this task')} model has no classes to rank", hint)


def validate_input(model: type[BaseModel], item: Any) -> Any:
    """One structured request input, or a DataError naming each bad field (HTTP 422, CLI exit 1)."""
    from pydantic import ValidationError

    from modelyard.errors import DataError

    if isinstance(item, model):
        return item
    try:
        return model.model_validate(item)
    except ValidationError as err:
        raise DataError(
            "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in err.errors()),
            _object_hint(model) if isinstance(item, str) else None,
        ) from None


def _object_hint(model: type[BaseModel]) -> str:
    """For a text given where an object is read (`predict --text 196` to a recommender): its keys, and how."""
    keys = ", ".join(f'"{name}"' for name in model.model_fields)
    return f"one input is an object with the keys {keys}, not a text: modelyard predict BUNDLE --input rows.jsonl"
