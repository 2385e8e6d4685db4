"""Tabular classification: credit scoring, fraud, churn; a label predicted from a table of mixed columns.

LightGBM and an MLP with categorical embeddings (and their ensemble), a WOE scorecard and LightGBM's defaults
beside every run, a threshold from costs or a recall target, calibrated probabilities and TreeSHAP reason codes.
"""

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
# modelyard config: tabular classification (credit scoring, fraud, churn)
name: my-scorecard
task: tabular_classification
data:
  train: data/applications.csv        # .csv .tsv .jsonl .parquet; relative paths start at this file's folder
  target_column: default
  positive_label: null                # the class scored as `probability`; null = 1/yes/true, else the minority
  column_types: {}                    # override inferred types, e.g. {branch: categorical, opened: date}
  drop_columns: []                    # never used as features (e.g. columns known only after the outcome)
  split: {validation: 0.1, test: 0.2, seed: 42, stratify: true, by: null}   # by: a date column = time-ordered
model:
  backbone: auto                      # auto (the best of candidates or an ensemble) | lightgbm | catboost | mlp
  candidates: [lightgbm, mlp]         # the families auto tries; add catboost for a third
  monotone: {}                        # e.g. {income: -1, past_defaults: 1}: direction of the risk score
  calibration: auto                   # auto | isotonic | platt | none
evaluation:
  costs: null                         # e.g. {false_positive: 1, false_negative: 20}: threshold of minimum cost
  target_recall: null                 # or a recall the threshold must reach
  groups: []                          # protected columns: answers per group and the gaps (docs/tabular.md)
train:
  time_limit_s: 300                   # budget for backbone auto
"""


@register_task("tabular_classification")
class TabularClassificationTask:
    DataConfig: ClassVar = common.TabularDataConfig
    ModelConfig: ClassVar = common.TabularModelConfig
    Input: ClassVar = dict[str, Any]  # one row: column -> value, checked against the training schema
    example_input: ClassVar = {}  # server warm-up: a row of missing values is still scored
    main_metric: ClassVar = "roc_auc"
    evaluation_keys: ClassVar = frozenset({"costs", "target_recall", "groups"})  # the `evaluation` keys it reads
    stopping_metric: ClassVar = "roc_auc"  # the MLP member stops on it; boosting on its own loss
    greater_is_better: ClassVar = True

    def validation_metrics_for(self, config: Config, data: PreparedData) -> tuple[str, ...]:
        """Two classes report more than several (pr_auc, ks, gini), so the names depend on the data's classes."""
        return TabularLearner.reported_metrics("binary" if len(data.report["classes"]) == 2 else "multiclass")

    def starter_config(self) -> str:
        return STARTER

    def prepare(self, config: Config) -> PreparedData:
        return common.prepare(config, "classification")

    def build(self, config: Config, data: PreparedData) -> TabularLearner:
        return common.build(config, data, "classification")

    def privacy_problems(self, config: Config) -> list[str]:
        return common.privacy_problems(config)

    def private_train_defaults(self, config: Config) -> dict[str, Any]:
        return common.private_train_defaults()

    def baselines(self, config: Config, data: PreparedData) -> dict[str, dict[str, Any]]:
        return common.baselines(config, data, "classification")

    def evaluation_rows(self, config: Config, path: str, labels: list[str]) -> tuple[pd.DataFrame, list[str]]:
        return common.evaluation_rows(config, path, labels)

    def inputs_from_frame(self, frame, config: Config) -> list[dict[str, Any]]:
        return common.inputs_from_frame(frame, config)

    def feedback_example(self, config: Config, value: Any, label: str) -> dict[str, Any] | None:
        return common.feedback_example(config, value, label)

    def retrain_layout(self, config: Config, report: dict[str, Any]) -> dict[str, Any]:
        return common.retrain_layout(config, report)

    def load(self, directory: Path, manifest: dict[str, Any], config: Config) -> TabularLearner:
        return common.load(directory, manifest)
