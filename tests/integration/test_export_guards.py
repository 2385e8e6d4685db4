"""What export and distill refuse or write about the bundle they make: its own metrics and card, data changed since
training, an --output that holds another model, a teacher of a task distillation does not support."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import modelyard
from modelyard.errors import DataError, UserError
from modelyard.export.distill import distill
from modelyard.export.exporter import export
from modelyard.export.parity import Tolerance

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
LOOSE = Tolerance(min_agreement=0.5, max_accuracy_drop=0.5)  # two tiny epochs: near-tied classes may flip in int8


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> modelyard.Model:
    """A tiny scratch-transformer text classifier (4 intents, 30 rows each, two epochs: about ten seconds)."""
    folder = tmp_path_factory.mktemp("text")
    train, test = (pd.read_csv(EXAMPLES / "banking77" / f"{s}.csv") for s in ("train", "test"))
    intents = sorted(train["category"].unique())[:4]
    train[train["category"].isin(intents)].groupby("category").head(30).to_csv(folder / "train.csv", index=False)
    test[test["category"].isin(intents)].groupby("category").head(10).to_csv(folder / "test.csv", index=False)
    config = {
        "name": "guards-text",
        "task": "text_classification",
        "data": {"train": "train.csv", "test": "test.csv", "text_column": "text", "label_column": "category"},
        "model": {"backbone": "scratch-transformer", "hidden_size": 32, "layers": 1, "heads": 2, "vocab_size": 300},
        "train": {"epochs": 2, "batch_size": 16, "early_stopping": None},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    return modelyard.train(folder / "c.yaml", output=folder / "bundle", quiet=True, track=False)


@pytest.fixture(scope="module")
def table_model(tmp_path_factory) -> modelyard.Model:
    """A LightGBM credit model on 300 rows of the committed credit-default slice."""
    folder = tmp_path_factory.mktemp("table")
    rows = pd.read_csv(EXAMPLES / "credit_default" / "credit_default_2000.csv").head(300)
    rows.to_csv(folder / "credit.csv", index=False)
    config = {
        "name": "guards-table",
        "task": "tabular_classification",
        "data": {
            "train": "credit.csv",
            "target_column": "default.payment.next.month",
            "positive_label": "1",
            "split": {"validation": 0.2, "test": 0.2},
        },
        "model": {"backbone": "lightgbm"},
        "train": {"time_limit_s": 5},
    }
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    return modelyard.train(folder / "c.yaml", output=folder / "bundle", quiet=True, track=False)


@pytest.fixture(scope="module")
def int8(teacher, tmp_path_factory):
    return export(teacher.path, "torch", "int8", tmp_path_factory.mktemp("x") / "int8", LOOSE, latency_samples=2)


def test_an_export_scores_itself_and_keeps_the_source_numbers_under_exported_from(teacher, int8):
    metrics = json.loads((int8.path / "metrics.json").read_text())
    exported = modelyard.load(int8.path)
    test = exported.learner.evaluate(exported.task.prepare(exported.config).splits["test"])
    assert metrics["test"]["confusion_matrix"] == test["confusion_matrix"]
    source = json.loads((teacher.path / "metrics.json").read_text())
    kept = {"path": str(teacher.path), "validation": source["validation"], "test": source["test"]}
    assert metrics["exported_from"] == kept


def test_an_exported_model_card_names_its_runtime_and_source_and_shows_its_own_metrics(teacher, int8):
    card = (int8.path / "MODEL_CARD.md").read_text()
    assert f"export (torch, dynamic-int8) of the bundle `{teacher.path}`" in card
    accuracy = json.loads((int8.path / "metrics.json").read_text())["test"]["accuracy"]
    assert f"| accuracy | {metrics_row(int8.path, 'validation')} | {accuracy:.4f}" in card


def metrics_row(path: Path, split: str) -> str:
    return f"{json.loads((path / 'metrics.json').read_text())[split]['accuracy']:.4f}"


def test_exporting_again_to_the_same_folder_replaces_the_earlier_export(teacher, int8):
    again = export(teacher.path, "torch", "int8", int8.path, LOOSE, latency_samples=2)
    assert modelyard.load(again.path).manifest["export"]["source"]["path"] == str(teacher.path)


def test_an_export_over_another_trained_bundle_is_refused_and_leaves_it_alone(teacher, table_model, tmp_path):
    before = (table_model.path / "modelyard.json").read_text()
    with pytest.raises(UserError, match=r"holds another bundle .guards-table: tabular_classification") as refused:
        export(teacher.path, "torch", "int8", table_model.path, LOOSE, latency_samples=2)
    assert "delete it first" in refused.value.hint
    assert (table_model.path / "modelyard.json").read_text() == before
    with pytest.raises(UserError, match="not an earlier export or distillation of"):
        distill(teacher.path, output=table_model.path)


def test_export_and_distill_refuse_data_changed_since_training(table_model, teacher):
    for model in (table_model, teacher):
        data = Path(model.config.data.train)
        saved = data.read_bytes()
        frame = pd.read_csv(data)
        try:
            frame.iloc[::-1].iloc[: len(frame) * 2 // 3].to_csv(data, index=False)
            with pytest.raises(DataError, match=r"the data changed since this model was trained .*train \(") as found:
                if model is teacher:
                    distill(model.path, output=model.path.parent / "student")
                else:
                    export(model.path, "onnx", output=model.path.parent / "onnx")
            assert "restore the data" in found.value.hint
        finally:
            data.write_bytes(saved)
    assert not (teacher.path.parent / "student").exists() and not (table_model.path.parent / "onnx").exists()


@pytest.mark.parametrize("student", ["scratch-transformer", "mlp"])
def test_distilling_a_table_model_says_only_text_classifiers_teach(table_model, tmp_path, student):
    with pytest.raises(UserError, match=r"supports text classification teachers only.*tabular_classification") as found:
        distill(table_model.path, student, output=tmp_path / "student")
    assert "modelyard export" in found.value.hint and "student" not in found.value.hint


def test_a_distill_stopped_during_its_parity_check_leaves_no_student_and_a_rerun_writes_one(
    teacher, tmp_path, monkeypatch
):
    from modelyard.export import parity

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    tiny = ["model.hidden_size=32", "model.layers=1", "model.heads=2", "train.epochs=1"]
    with monkeypatch.context() as patched:
        patched.setattr(parity, "compare", killed)
        with pytest.raises(KeyboardInterrupt):
            distill(teacher.path, output=tmp_path / "student", overrides=tiny, quiet=True, latency_samples=2)
    assert not (tmp_path / "student").exists()  # never a student without its report and provenance
    student = modelyard.load(distill(teacher.path, output=tmp_path / "student", overrides=tiny, quiet=True).path)
    assert student.manifest["distilled_from"]["path"] == str(teacher.path)
    assert (student.path / "distill.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["student"]


@pytest.mark.parametrize(
    ("student", "said"),
    [("minilm-l6+few-shot", r"^'minilm-l6\+few-shot' is a few-shot"), ("auto", r"what --student auto chose")],
)
def test_a_few_shot_student_named_or_chosen_by_auto_is_refused_before_training(teacher, tmp_path, student, said):
    with pytest.raises(UserError, match=said) as found:  # 24 training rows per intent: auto picks few-shot
        distill(teacher.path, student, output=tmp_path / "student", quiet=True)
    assert "cannot learn from soft labels" in found.value.message and "--student minilm-l6" in found.value.hint
    assert not (tmp_path / "student").exists()


def test_the_student_trains_on_the_rows_its_teachers_label_noise_audit_kept(tmp_path, monkeypatch):
    from modelyard.export import distill as distilling

    train, test = (pd.read_csv(EXAMPLES / "banking77" / f"{s}.csv") for s in ("train", "test"))
    intents = sorted(train["category"].unique())[:4]
    rows = train[train["category"].isin(intents)].groupby("category").head(30).reset_index(drop=True)
    rows.loc[::10, "category"] = (
        rows["category"].iloc[::10].map(dict(zip(intents, intents[1:] + intents[:1], strict=True)))
    )
    rows.to_csv(tmp_path / "train.csv", index=False)
    test[test["category"].isin(intents)].groupby("category").head(10).to_csv(tmp_path / "test.csv", index=False)
    config = {
        "name": "noisy-teacher",
        "task": "text_classification",
        "data": {
            "train": "train.csv",
            "test": "test.csv",
            "label_column": "category",
            "label_noise": {"action": "drop"},
        },
        "model": {"backbone": "scratch-transformer", "hidden_size": 32, "layers": 1, "heads": 2, "vocab_size": 300},
        "train": {"epochs": 1, "batch_size": 16, "early_stopping": None},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    teacher = modelyard.train(tmp_path / "c.yaml", output=tmp_path / "teacher", quiet=True, track=False)
    fitted, fit = [], distilling.fit

    def counting(learner, config, data, **options):
        fitted.append(len(learner.dataset(data.splits["train"], True)))
        return fit(learner, config, data, **options)

    monkeypatch.setattr(distilling, "fit", counting)
    student = distill(teacher.path, output=tmp_path / "student", quiet=True, latency_samples=2).path
    taught, learned = (json.loads((p / "metrics.json").read_text()) for p in (teacher.path, student))
    audited = {k: v for k, v in taught["label_noise"].items() if k != "seconds"}
    assert audited["lines"] and {k: v for k, v in learned["label_noise"].items() if k != "seconds"} == audited
    split = json.loads((teacher.path / "data_report.json").read_text())["splits"]["train"]
    assert fitted == [split - len(taught["label_noise"]["lines"])]  # the rows the teacher kept, soft labels and all
