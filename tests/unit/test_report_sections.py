"""How tasks plug sections into the report: their own hook first, else the providers for what the model can do."""

from __future__ import annotations

from types import SimpleNamespace

from modelyard.evaluation import task_report  # noqa: F401  (registers the providers)
from modelyard.evaluation.sections import ReportContext, Section, Table, Tokens, task_sections


def context_for(task, learner) -> ReportContext:
    model = SimpleNamespace(task=task, learner=learner, labels=None)
    return ReportContext(
        model, metrics={"test": {"recall@5": 0.2, "recall@10": 0.3, "coverage@10": 0.5}}, history=[], data_report={}
    )


def test_a_task_hook_supplies_its_own_sections():
    hook = SimpleNamespace(report_sections=lambda model, context: [Section("mine", "Mine")])
    sections = task_sections(context_for(hook, SimpleNamespace()))
    assert [s.id for s in sections] == ["mine"]


def test_metrics_at_several_k_become_one_table_with_a_row_per_k():
    sections = task_sections(context_for(SimpleNamespace(), SimpleNamespace()))
    table = sections[0].blocks[0]
    assert table.columns == ["k", "recall", "coverage"]
    assert [row[0] for row in table.rows] == [5, 10]


def test_a_failing_provider_costs_its_section_not_the_report():
    def broken(model, context):
        raise RuntimeError("boom")

    sections = task_sections(context_for(SimpleNamespace(report_sections=broken), SimpleNamespace()))
    assert sections[0].id == "task-failed" and "boom" in sections[0].blocks[0].text


def test_token_shades_scale_with_the_strongest_attribution():
    shaded = Tokens("t", ["a", "b", "c"], [1.0, -0.5, 0.0]).shaded
    assert shaded[0][1] == "rgba(220,38,38,1.00)"
    assert shaded[1][1] == "rgba(37,99,235,0.50)"
    assert shaded[2][1].endswith(",0.00)")


def test_text_from_the_data_is_escaped_in_the_page():
    from modelyard.evaluation.report import page

    model = SimpleNamespace(path="/b", manifest={"name": "<b>n</b>", "task": "t", "backbone": "x", "created": ""})
    html = page(model, [Section("s", "S", [Table(["input"], [["<script>alert(1)</script>"]])])])
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>n</b>" not in html


def test_a_generator_without_loss_or_prompts_gets_no_empty_generation_section():
    """An assistant generates, but its metrics are retrieval rates and its test items questions, not prompts."""
    context = context_for(SimpleNamespace(), SimpleNamespace(generate=lambda prompt: "", predict_proba=None))
    context.metrics = {"test": {"balanced_accuracy": 1.0}, "validation": {"balanced_accuracy": 0.9}}
    context.prepared = SimpleNamespace(splits={"test": [{"question": "Who?", "answers": [], "answerable": False}]})
    assert task_sections(context) == []


def test_the_data_table_reads_a_split_size_given_in_a_tasks_own_units():
    from modelyard.evaluation.report import _data

    model = SimpleNamespace(manifest={"data": {"train": {"sha256": "ab"}}})
    context = ReportContext(model, {}, [], {"splits": {"train": {"points": 101, "windows": 72}, "test": 12}})
    table = _data(context).blocks[0]
    assert table.rows[0][:2] == ["train", "101 points, 72 windows"] and table.rows[1][:2] == ["test", "12"]
