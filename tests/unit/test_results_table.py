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
