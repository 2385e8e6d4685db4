"""A task's learner, seen by a federation: the global model the server builds, the gradient-trained part a site
trains locally with the shared loop, and a site's rows turned into that part's training data.

Supported: text_classification with a pretrained or scratch encoder (the learner itself is trained), and
tabular_classification / tabular_regression with the MLP member (`learners.tabular_mlp.MLPMember`); the column
encoder, label set and numeric scaling are fitted once by the server and shipped to every site with the weights.
"""

from __future__ import annotations

import json
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.config import Config
from modelyard.errors import ConfigError, DataError
from modelyard.learners import tabular_post as post
from modelyard.learners.tabular import TabularLearner
from modelyard.learners.tabular_mlp import Arrays, MLPMember
from modelyard.learners.text import TextClassifierLearner
from modelyard.protocols import Learner, PreparedData
from modelyard.tasks import get_task

TABULAR = ("tabular_classification", "tabular_regression")
SUPPORTED = ("text_classification", *TABULAR)
PACKAGE_MANIFEST = "federation.json"


def check_task(config: Config) -> None:
    if config.task not in SUPPORTED:
        raise ConfigError(
            f"federated training supports {', '.join(SUPPORTED)}; this config's task is {config.task}",
            "train it centrally with `modelyard train`",
        )


def resolve_backbone(config: Config) -> tuple[Config, str]:
    """The gradient-trained backbone a federation averages: `auto` picks MiniLM (text) or the MLP (tables)."""
    backbone = config.model.backbone
    if config.task in TABULAR:
        if backbone == "lightgbm":
            raise ConfigError("model.backbone lightgbm cannot be federated: trees are not averaged", "use mlp")
        chosen, why = "mlp", "the MLP member: its weights are averaged (LightGBM trees are not)"
    elif backbone == "tfidf-linear":
        raise ConfigError("model.backbone tfidf-linear is fitted in one pass, not federated", "use minilm-l6")
    elif backbone == "auto":
        chosen, why = "minilm-l6", "auto: MiniLM, the bundled English encoder (federate does not compare backbones)"
    else:
        chosen, why = backbone, "named in the config"
    return config.model_copy(update={"model": config.model.model_copy(update={"backbone": chosen})}), why


def build_global(config: Config, data: PreparedData) -> Learner:
    """The untrained global model, from the server's data (labels, tokenizer, column encoder, scaling)."""
    learner = get_task(config.task).build(config, data)
    if isinstance(learner, TabularLearner):
        x, y = learner.spec.encoder.transform(data.splits["train"]), learner.targets(data.splits["train"])
        kind, classes = learner.spec.kind, len(learner.spec.labels or [])
        cards = [f["cardinality"] for f in learner.spec.encoder.features]
        score = lambda yy, out: post.main_score(kind, yy, out)  # noqa: E731
        learner.mlp = MLPMember.build(
            cards, 1 if kind == "regression" else classes, kind, learner.options["mlp"], score
        )
        learner.mlp.standardise(x, y)
        learner.spec.weights = {"mlp": 1.0}
        learner.spec.candidates.append({"backbone": "mlp", "note": "federated averaging"})
    elif not isinstance(learner, TextClassifierLearner) or learner.module is None:
        raise ConfigError(f"backbone {config.model.backbone} has no gradient-trained weights to federate")
    return learner


def local_learner(learner: Learner) -> Learner:
    """The part trained by the shared loop: the MLP member of a tabular learner, else the learner itself."""
    return learner.mlp if isinstance(learner, TabularLearner) else learner


def local_data(learner: Learner, frame: pd.DataFrame) -> Any:
    """A site's rows as the local learner's training split; rows whose label the global model lacks are dropped."""
    labels = getattr(learner, "labels", None)
    column = learner.spec.target if isinstance(learner, TabularLearner) else "label"
    if isinstance(learner, TabularLearner):
        wanted = [*learner.spec.encoder.types, learner.spec.target]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise DataError(
                f"this site's data lacks {len(missing)} of the model's columns: {', '.join(missing[:10])}",
                "every site's table needs the columns of the server's (same names)",
            )
    if labels and not frame[column].astype(str).str.strip().isin(labels).any():
        raise DataError(f"none of this site's {len(frame)} rows has a label the global model knows ({labels[:5]})")
    if isinstance(learner, TabularLearner):
        spec = learner.spec
        if spec.labels:
            frame = frame[frame[spec.target].astype(str).str.strip().isin(spec.labels)]
        x, y = spec.encoder.transform(frame), learner.targets(frame)
        return Arrays(x, learner.mlp.target(y))
    return frame[frame["label"].isin(learner.labels)]


def empty(data: Any) -> Any:
    return Arrays(data.x[:0], data.y[:0]) if isinstance(data, Arrays) else data.iloc[:0]


def label_values(config: Config, frame: pd.DataFrame) -> np.ndarray:
    """The labels a Dirichlet partition skews by."""
    if config.task == "tabular_regression":
        raise ConfigError("--partition dirichlet splits by class; tabular_regression has none", "use --partition iid")
    column = config.data.target_column if config.task in TABULAR else "label"
    return frame[column].astype(str).to_numpy()


def finish(learner: Learner, validation: pd.DataFrame, config: Config) -> None:
    """After the last round, what centralised training also fits on validation: a tabular binary model's
    calibration map and decision threshold (the server holds the validation split)."""
    if not isinstance(learner, TabularLearner) or learner.spec.kind != "binary" or not len(validation):
        return
    y = learner.targets(validation)
    scores = learner.mlp.outputs(learner.spec.encoder.transform(validation))[:, 1]
    learner.spec.calibration = post.fit_calibration(y, scores, config.model.calibration)
    learner.spec.threshold = post.choose_threshold(
        y, post.calibrate(scores, learner.spec.calibration), config.evaluation
    )


def package(learner: Learner, config: Config) -> bytes:
    """The global model's architecture and preprocessing as a tar.gz, so every site builds exactly this model."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        extras = learner.save(Path(tmp))
        manifest = {"task": config.task, "backbone": learner.backbone, **extras}
        (Path(tmp) / PACKAGE_MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        buffer = BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(tmp, arcname=".")
        return buffer.getvalue()


def unpackage(blob: bytes, directory: Path, config: Config) -> Learner:
    """A site's copy of the global model from `package`'s bytes (its own config gives data columns only)."""
    with tarfile.open(fileobj=BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(directory, filter="data")
    manifest = json.loads((directory / PACKAGE_MANIFEST).read_text(encoding="utf-8"))
    if manifest["task"] != config.task:
        raise DataError(f"the server federates a {manifest['task']} model; this site's config says {config.task}")
    learner = get_task(config.task).load(directory, manifest, config)
    module = local_learner(learner).module
    module.train()
    for p in module.parameters():
        p.requires_grad_(True)
    if isinstance(learner, TextClassifierLearner) and learner.spec.get("frozen_embeddings"):
        module.encoder.get_input_embeddings().weight.requires_grad_(False)
    return learner
