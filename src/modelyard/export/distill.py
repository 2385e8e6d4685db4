"""`modelyard distill`: a smaller student trained on a teacher's soft labels through the shared trainer.

The teacher's class probabilities on the training split are computed once; the student's loss mixes the KL
divergence to them at temperature T (scaled by T², Hinton et al. 2015) with cross-entropy on the hard labels.
The student bundle is written like any trained bundle and compared with its teacher in `distill.json`.
"""

from __future__ import annotations

import resource
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed

from modelyard import bundle, loader, pipeline
from modelyard.config import apply_overrides
from modelyard.errors import UserError
from modelyard.evaluation.model_card import write_model_card
from modelyard.export import parity
from modelyard.export.exporter import ExportResult, default_output, refuse_changed_data, refuse_unrelated_output
from modelyard.fsutil import atomic_write_json, replace_dir, sha256_file
from modelyard.learners import few_shot
from modelyard.protocols import Learner
from modelyard.tasks import config_from_dict
from modelyard.training.loop import fit

REPORT = "distill.json"
# the student trains on a neural text classifier's logits; no other task's learner exposes them to the loss
TEACHER_TASKS = ("text_classification",)
# train settings the teacher's backbone chose; the student takes its own tuned defaults unless told otherwise
BACKBONE_DEFAULTS = ("epochs", "batch_size", "learning_rate", "scheduler", "max_steps")


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from probabilities: log p differs from the logits only by a per-row constant."""
    z = np.log(np.clip(probs, 1e-12, None)) / temperature
    z = np.exp(z - z.max(1, keepdims=True))
    return (z / z.sum(1, keepdims=True)).astype(np.float32)


class _WithTeacher(torch.utils.data.Dataset):
    def __init__(self, base: torch.utils.data.Dataset, soft: torch.Tensor) -> None:
        self.base, self.soft = base, soft

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.base[i], "teacher": self.soft[i]}


class DistillationLearner:
    """The student learner with a distillation loss; everything but training is the student's own."""

    def __init__(self, student: Learner, soft: np.ndarray, temperature: float, alpha: float) -> None:
        self.student = student
        self.soft = torch.from_numpy(soft)
        self.temperature = temperature
        self.alpha = alpha
        self.backbone = student.backbone

    @property
    def module(self) -> torch.nn.Module:
        return self.student.module

    @module.setter
    def module(self, value: torch.nn.Module) -> None:  # the trainer swaps in its wrapped module
        self.student.module = value

    @property
    def precision(self) -> str:
        return self.student.precision

    @precision.setter
    def precision(self, value: str) -> None:
        self.student.precision = value

    def train_defaults(self) -> dict[str, Any]:
        return self.student.train_defaults()

    def dataset(self, data: Any, training: bool) -> torch.utils.data.Dataset:
        base = self.student.dataset(data, training)
        if not training:
            return base
        if len(base) != len(self.soft):
            raise ValueError(f"{len(base)} training items but {len(self.soft)} teacher predictions")
        return _WithTeacher(base, self.soft)

    def lengths(self, dataset: _WithTeacher) -> list[int]:
        return self.student.lengths(dataset.base)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.student.collate([{k: v for k, v in item.items() if k != "teacher"} for item in items])
        if "teacher" in items[0]:
            batch["teacher"] = torch.stack([item["teacher"] for item in items])
        return batch

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        return self.student.param_groups(lr, weight_decay)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.student.logits(batch).float()  # (B, K)
        hard = F.cross_entropy(logits, batch["labels"], reduction="none")  # (B,)
        # data.label_noise action weight: a row that looks mislabelled counts for the probability of its label, as
        # in the teacher's training; the teacher's soft labels are not that label, so they keep their full weight
        hard = (hard * batch["weight"]).mean() if "weight" in batch else hard.mean()
        log_student = F.log_softmax(logits / self.temperature, dim=-1)
        soft = F.kl_div(log_student, batch["teacher"], reduction="batchmean") * self.temperature**2
        return self.alpha * soft + (1 - self.alpha) * hard

    def evaluate(self, data: Any) -> dict[str, Any]:
        return self.student.evaluate(data)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def distill(
    teacher_ref: str | Path,
    student: str = "scratch-transformer",
    output: str | Path | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    overrides: Sequence[str] = (),
    quiet: bool = False,
    latency_samples: int = 100,
) -> ExportResult:
    """Train `student` (a backbone name) on the teacher's data and soft labels; write and compare its bundle."""
    if temperature <= 0 or not 0 <= alpha <= 1:
        raise UserError(f"--temperature {temperature} / --alpha {alpha}: need temperature > 0 and 0 <= alpha <= 1")
    teacher = loader.load(teacher_ref)
    backbone = teacher.manifest.get("backbone")
    if teacher.config.task not in TEACHER_TASKS:
        raise UserError(
            f"{teacher.path}: distillation supports text classification teachers only; this is a "
            f"{teacher.config.task} model ({backbone})",
            "to make it smaller or faster, export it instead: `modelyard export BUNDLE --format onnx` "
            "(add --quantize int8 where offered)",
        )
    if not parity.can_compare(teacher.learner):
        raise UserError(
            f"{teacher.path}: this classifier ({backbone}) gives distill no outputs on its training inputs to learn "
            "from (distillation reads a neural teacher's logits)",
            "distill from a neural classifier bundle, e.g. minilm-l6 or scratch-transformer",
        )
    output = Path(output).resolve() if output else default_output(teacher, f"distilled-{student}")
    bundle.refuse_output_over(output, teacher.path, "teacher")
    refuse_unrelated_output(output, teacher.path)
    raw = teacher.config.model_dump(mode="json")
    raw["model"]["backbone"] = student
    raw["train"].update(dict.fromkeys(BACKBONE_DEFAULTS))
    config = config_from_dict(apply_overrides(raw, list(overrides)), f"{teacher.path / 'config.yaml'}")
    if getattr(config.model, "zero_shot", False):  # a zero-shot model embeds label names: nothing to train
        raise UserError(
            f"'{student}' would be a zero-shot model (model.zero_shot: true, from the teacher's config), which "
            "learns nothing from soft labels",
            "add --set model.zero_shot=false",
        )
    task = teacher.task
    _refuse_few_shot(config.model.backbone, student)  # before any data is read, where the name says it
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    # as `train` reads it: with the teacher's data.label_noise the student sees its rows and weights
    data = pipeline.prepared_for_training(task, config)
    refuse_changed_data(teacher, data.fingerprints)
    backbone = pipeline.backbone_candidates(task, config, data)[0][0]  # `auto` resolved as train resolves it
    _refuse_few_shot(backbone, student)
    config = config.model_copy(update={"model": config.model.model_copy(update={"backbone": backbone})})
    set_seed(config.train.seed)
    learner = task.build(config, data)
    if getattr(learner, "module", None) is None or not hasattr(learner, "logits"):
        raise UserError(
            f"'{student}' is not trained by gradient descent, so it cannot learn from soft labels",
            "choose a neural student such as scratch-transformer",
        )
    inputs, _ = teacher.learner.export_examples(data.splits["train"])
    soft = soften(teacher.learner.export_outputs(inputs), temperature)
    wrapped = DistillationLearner(learner, soft, temperature, alpha)
    result = fit(
        wrapped, config, data, quiet=quiet, main_metric=task.main_metric, greater_is_better=task.greater_is_better
    )
    resolved = config.model_copy(update={"train": result.train})
    # the student is finished beside `output` and swapped in whole: a kill before its report and provenance are
    # sealed leaves no bundle that looks trained by `train` (which a rerun would then refuse to replace)
    staging = output.parent / f".{output.name}.distill-{uuid.uuid4().hex[:8]}"
    try:
        extra = pipeline.training_extras(data)
        pipeline.write_results(staging, task, data, [(resolved, learner, result)], cpu0, wall0, False, extra=extra)
        report = _compare(teacher, loader.load(staging), data, backbone, temperature, alpha, result, latency_samples)
        replace_dir(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(output, report, True)


def _refuse_few_shot(backbone: str, student: str) -> None:
    """A few-shot learner trains on sentence pairs and fits its head by regression: no step of it reads the
    teacher's soft labels of the training rows."""
    encoder, method = few_shot.split_method(backbone)
    if method == "few-shot":
        chosen = "" if backbone == student else f" (what --student {student} chose for this data)"
        raise UserError(
            f"'{backbone}'{chosen} is a few-shot model, trained on sentence pairs, so it cannot learn from soft labels",
            f"name a fine-tuned student: --student {encoder} or scratch-transformer",
        )


def _compare(
    teacher: loader.Model,
    model: loader.Model,
    data: Any,
    student: str,
    temperature: float,
    alpha: float,
    result: Any,
    latency_samples: int,
) -> dict[str, Any]:
    """Compare the student bundle (still in its staging folder) with its teacher, write `distill.json`, and seal
    the bundle with its provenance (`distilled_from`) and a model card that says whose student it is."""
    report = {
        "student": student,
        "teacher": {"path": str(teacher.path), "backbone": teacher.manifest.get("backbone")},
        "distillation": {
            "temperature": temperature,
            "alpha": alpha,
            "epochs": result.history[-1]["epoch"] if result.history else 0,
        },
        "size_mb": {"teacher": parity.size_mb(teacher.path), "student": parity.size_mb(model.path)},
        **parity.compare(
            teacher.learner,
            model.learner,
            parity.checked_split(data.splits, teacher.learner),
            ("teacher", "student"),
            latency_samples,
        ),
    }
    atomic_write_json(model.path / REPORT, report)
    source = {
        "path": str(teacher.path),
        "manifest_sha256": sha256_file(teacher.path / bundle.MANIFEST),
        "temperature": temperature,
        "alpha": alpha,
    }
    manifest = {**model.manifest, "distilled_from": source}
    write_model_card(model.path, manifest)
    bundle.seal(model.path, manifest)
    return report
