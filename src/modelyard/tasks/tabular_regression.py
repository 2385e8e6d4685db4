"""Tabular regression: a number (loss amount, price, demand) predicted from a table of mixed columns, with
split-conformal prediction intervals beside each value."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from modelyard.config import Config
from modelyard.learners.tabular import TabularLearner
from modelyard.protocols import PreparedData
from modelyard.tasks import _tabular as common
from modelyard.tasks import register_task

if TYPE_CHECKING:  # pandas loads with the data, not with the config a server reads
    import pandas as pd

STARTER = """\
# modelyard config: tabular regression (amounts, prices, durations)
name: my-regressor
task: tabular_regression
data:
  train: data/loans.csv               # .csv .tsv .jsonl .parquet; relative paths start at this file's folder
  target_column: amount
  column_types: {}                    # override inferred types, e.g. {region: categorical}
  drop_columns: []
  split: {validation: 0.1, test: 0.2, seed: 42, stratify: false, by: null}   # by: a date column = time-ordered
model:
  backbone: auto                      # auto (the best of candidates or an ensemble) | lightgbm | catboost | mlp
  candidates: [lightgbm, mlp]         # the families auto tries; add catboost for a third
  monotone: {}                        # e.g. {area: 1}
train:
  time_limit_s: 300
"""


@register_task("tabular_regression")
class TabularRegressionTask:
    DataConfig: ClassVar = common.TabularDataConfig
    ModelConfig: ClassVar = common.TabularModelConfig
    Input: ClassVar = dict[str, Any]
    example_input: ClassVar = {}
    main_metric: ClassVar = "rmse"
    evaluation_keys: ClassVar = frozenset({"groups"})  # the `evaluation` keys it reads
    stopping_metric: ClassVar = "rmse"  # the MLP member stops on it; boosting on its own loss
    greater_is_better: ClassVar = False

    def validation_metrics_for(self, config: Config, data: PreparedData) -> tuple[str, ...]:
        """Errors and the conformal interval's coverage, as the learner's evaluate reports them."""
        return TabularLearner.reported_metrics("regression")

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        return common.prepare(config, "regression")

    def build(self, config: Config, data: PreparedData) -> TabularLearner:
        return common.build(config, data, "regression")

    def privacy_problems(self, config: Config) -> list[str]:
        return common.privacy_problems(config)

    def private_train_defaults(self, config: Config) -> dict[str, Any]:
        return common.private_train_defaults()

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        return common.baselines(config, data, "regression")

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
        return common.evaluation_rows(config, path, labels)

    def inputs_from_frame(self, frame, config: Config) -> list[dict[str, Any]]:
        return common.inputs_from_frame(frame, config)

    def feedback_example(self, config: Config, value: Any, label: str) -> dict[str, Any] | None:
        return common.feedback_example(config, value, label, "regression")

    def feedback_label(self, config: Config, label: Any) -> float:
        return common.number_label(config, label)

    def retrain_layout(self, config: Config, report: dict[str, Any]) -> dict[str, Any]:
        return common.retrain_layout(config, report)

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> TabularLearner:
        return common.load(directory, manifest)
