"""The results table train prints: one row per metric, one column per split or baseline that has scores."""

from modelyard.commands.console import metrics_table

SCORES = {"accuracy": 0.75, "macro_f1": 0.7, "samples": 24, "per_class": {}}


def test_without_a_test_split_the_table_shows_the_validation_metrics(capsys):
    metrics_table({"validation": SCORES, "test": {}, "train": {"seconds": 1.0, "steps": 3}})
    printed = capsys.readouterr().err
    assert "validation" in printed
    assert "accuracy" in printed and "0.7500" in printed
    assert "macro_f1" in printed and "0.7000" in printed


def test_with_a_test_split_its_metrics_name_the_rows(capsys):
    metrics_table({"validation": SCORES, "test": {**SCORES, "accuracy": 0.5}, "train": {"seconds": 1.0, "steps": 3}})
    printed = capsys.readouterr().err
    assert "0.5000" in printed and "0.7500" in printed


def test_a_metric_a_baseline_does_not_have_is_an_empty_dash_not_nan(capsys):
    """Token classification's tag baseline has no entity counts; the tf-idf multi-label baseline no macro_precision."""
    model = {"entity_f1": 0.8, "entities": 42, "sentences": 10}
    baseline = {"entity_f1": 0.5}
    metrics_table({"test": model, "baselines": {"most_frequent_tag": {"test": baseline}}, "train": {"steps": 3}})
    printed = capsys.readouterr().err
    assert "nan" not in printed
    rows = {line.split("│")[1].strip(): line.split("│")[2:4] for line in printed.splitlines() if line.count("│") == 4}
    assert [cell.strip() for cell in rows["entities"]] == ["42", "–"]
    assert [cell.strip() for cell in rows["entity_f1"]] == ["0.8000", "0.5000"]
