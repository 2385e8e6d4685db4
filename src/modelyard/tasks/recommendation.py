"""Recommendation: rank items for a user from past interactions (views, purchases, ratings).

Implicit feedback (ratings at or above a threshold are positives), a leave-last-out split per user, matrix
factorisation trained with BPR or sampled softmax against a popularity baseline, and "more like this" by item
similarity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from modelyard.config import Config, DataConfig, ModelConfig
from modelyard.data.categories import id_text
from modelyard.data.interactions import all_targets, implicit_feedback, leave_last_out
from modelyard.data.readers import read_table, require_columns
from modelyard.data.splits import fingerprint
from modelyard.errors import BundleError, ConfigError, DataError
from modelyard.learners.recommender import RecommenderLearner, RecommendInput, popularity_baseline
from modelyard.metrics.ranking import KS
from modelyard.protocols import PreparedData, validate_input
from modelyard.tasks import register_task

# what validation reports, so what early stopping can watch
METRICS = tuple(f"{name}@{k}" for k in KS for name in ("recall", "ndcg", "hit_rate", "coverage"))

STARTER = """\
# modelyard config: recommendation (what should this user see next?)
name: my-recommender
task: recommendation
data:
  train: data/interactions.csv      # one row per interaction; relative paths start at this file's folder
  user_column: user
  item_column: item
  rating_column: null               # optional; with it, rating_threshold decides what counts as a positive
  rating_threshold: null            # e.g. 4 on a 1-5 scale; null = every interaction is positive
  time_column: null                 # optional; each user's latest items are held out (random without it)
model:
  backbone: mf                      # matrix factorisation (two-tower id embeddings)
  dim: 64
  loss: bpr                         # bpr | sampled_softmax
  negatives: 16                     # sampled negative items per positive
train:
  epochs: null                      # null = the model's tuned default (printed when training starts)
  early_stopping: {patience: 3, metric: recall@10}
"""


class RecDataConfig(DataConfig):
    user_column: str = "user"
    item_column: str = "item"
    rating_column: str | None = None
    rating_threshold: float | None = Field(None, description="ratings at or above it are positives")
    time_column: str | None = Field(None, description="orders each user's interactions for leave-last-out")


class RecModelConfig(ModelConfig):
    backbone: Literal["mf"] = "mf"
    dim: int = Field(64, ge=2, le=1024)
    loss: Literal["bpr", "sampled_softmax"] = "bpr"
    negatives: int = Field(16, ge=1, le=1000)
    l2: float = Field(1e-3, ge=0, description="penalty on the embeddings each batch touches")


@register_task("recommendation")
class RecommendationTask:
    DataConfig: ClassVar = RecDataConfig
    ModelConfig: ClassVar = RecModelConfig
    Input: ClassVar = RecommendInput
    main_metric: ClassVar = "recall@10"
    validation_metrics: ClassVar = METRICS
    example_input: ClassVar = {"user": "warm-up", "k": 10}  # server warm-up (a cold-start answer)
    greater_is_better: ClassVar = True

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        data: RecDataConfig = config.data
        if data.validation or data.test:
            raise ConfigError(
                "recommendation holds out each user's last items itself: leave data.validation and data.test empty",
                "put every interaction in data.train",
            )
        if data.rating_threshold is not None and not data.rating_column:
            raise ConfigError("data.rating_threshold needs data.rating_column")
        frame, read = read_table(data.train, data.format, data.max_rows)
        columns = {"user_column": data.user_column, "item_column": data.item_column}
        columns |= {k: getattr(data, k) for k in ("rating_column", "time_column") if getattr(data, k)}
        require_columns(frame, columns, data.train)
        interactions, report = implicit_feedback(
            frame,
            data.user_column,
            data.item_column,
            data.rating_column,
            data.time_column,
            data.rating_threshold,
            data.train,
        )
        if data.split.validation == 0 and data.split.test == 0:
            splits, split_report = all_targets(interactions)
        else:
            splits, split_report = leave_last_out(interactions, data.split.seed, timed=bool(data.time_column))
        if split_report["evaluated_users"] == 0:
            raise DataError(
                f"{data.train}: no user has 3 or more positive interactions, so nothing can be held out",
                "leave-last-out needs users with at least 3 positives; lower data.rating_threshold",
            )
        warnings = []
        if read.skipped:
            warnings.append(f"{data.train}: {read.skipped} malformed rows skipped (first: {read.problems[0]})")
        if report["dropped_incomplete"]:
            warnings.append(
                f"{report['dropped_incomplete']} rows without user, item, a finite rating or time dropped "
                f"({', '.join(report['dropped_examples'])})"
            )
        if report["odd_ratings"]:
            warnings.append(
                f"{report['odd_ratings']} ratings far outside the scale of the others, kept "
                f"({', '.join(report['odd_rating_examples'])}); check data.rating_column"
            )
        if report["duplicates_kept_latest"]:
            warnings.append(f"{report['duplicates_kept_latest']} repeated (user, item) pairs: the latest kept")
        if split_report["train_only_users"]:
            warnings.append(
                f"{split_report['train_only_users']} users have fewer than 3 positives: "
                "used for training only, not evaluated"
            )
        if split_report["no_positive_users"]:
            warnings.append(
                f"{split_report['no_positive_users']} users have no positive interaction ({report['rule']}; e.g. "
                f"{', '.join(split_report['no_positive_examples'])}): not trained on nor evaluated; they get popular "
                "items, never one they have rated"
            )
        report = {
            "read": read.as_dict(),
            "interactions": report,
            "split": split_report,
            "density": report["interactions"] / max(1, report["users"] * report["items"]),
        }
        prints = {n: fingerprint(s.targets, ["user", "item"]) for n, s in splits.items()}
        return PreparedData(splits=splits, report=report, fingerprints=prints, warnings=warnings)

    def build(self, config: Config, data: PreparedData) -> RecommenderLearner:
        data.report["backbone"] = {
            "name": "mf",
            "why": f"matrix factorisation with {config.model.loss} loss; popularity runs beside it as the baseline",
        }
        return RecommenderLearner.build(config.model, data.splits)

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        return {"popularity": popularity_baseline(data.splits)}

    def inputs_from_frame(self, frame: pd.DataFrame, config: Config) -> list[RecommendInput]:
        """`predict --input`: one request per row: a `user` (or the data's user column) or an `item`, and `k`."""
        user = "user" if "user" in frame.columns else config.data.user_column
        item = "item" if "item" in frame.columns else config.data.item_column
        if user not in frame.columns and item not in frame.columns:
            raise DataError(
                f"a recommendation input file needs a '{user}' column (or an '{item}' column for similar items)",
                'write one request per row, e.g. JSON Lines {"user": "196", "k": 10}',
            )
        source = f"{frame.attrs['source']}: " if "source" in frame.attrs else ""
        present = [f"'{c}'" for c in (user, item) if c in frame.columns]
        blank = " and ".join(present) + (" are both empty" if len(present) > 1 else " is empty")
        requests = []
        for line, row in zip(frame.index, frame.to_dict("records"), strict=True):
            # an empty cell (CSV "", a JSON Lines key another row has) is absent, so `k` keeps its default
            ids = {"user": id_text(row.get(user)), "item": id_text(row.get(item)), "k": id_text(row.get("k"))}
            where = f"{source}line {line}: not a recommendation request"
            if ids["user"] is None and ids["item"] is None:  # one blank row: name its column, not pydantic's model
                raise DataError(
                    f"{where}: {blank}",
                    "give each row a user (or an item, for similar items), or remove the row",
                )
            try:
                requests.append(validate_input(RecommendInput, {k: v for k, v in ids.items() if v is not None}))
            except DataError as err:
                raise DataError(f"{where}: {err.message}") from None
        return requests

    def feedback_label(self, config: Config, label: Any) -> Any:
        """Feedback is a true label, scored right or wrong; a ranking of items has none, so it is refused where it
        arrives (`/v1/feedback`: 422, `feedback import`) rather than counted as wrong by `monitor` and the bandit."""
        raise DataError(
            "this model's answers are not labels (a ranking of items), so feedback cannot score them",
            "score rankings against later interactions with `modelyard evaluate` on a file of them",
        )

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> RecommenderLearner:
        if not (directory / "recommender.json").is_file():
            raise BundleError(f"{directory}: no recommender.json; not a recommendation bundle")
        return RecommenderLearner.load(directory)
