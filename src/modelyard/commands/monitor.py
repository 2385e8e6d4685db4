"""`modelyard monitor`, `feedback import` and `retrain`; the top-level app registers them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
report_out = Console()  # the monitor report is the command's output, on stdout as `models list` and `explain` print
feedback_app = typer.Typer(
    name="feedback",
    help="Labelled corrections from production, stored with their predictions.",
    no_args_is_help=True,
)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _number(value: float | None) -> str:
    """A statistic in the table; '-' for a test without it (table features report per feature)."""
    return "-" if value is None else f"{value:.4g}"


def _shown(value: Any) -> str:
    """A report value as the table prints it: '-' where there is none (no traffic yet), not Python's None."""
    return "-" if value is None else str(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value} ms"


def _drift_table(report: dict[str, Any]) -> None:
    drift = report["drift"]
    window = report["window"]
    latency = report["latency_ms"]
    report_out.print(
        f"[bold]{report['model']['name']}[/] requests {report['requests']}, window "
        f"{window['predictions']} ({_shown(window['from'])} .. {_shown(window['to'])}), versions "
        f"{', '.join(f'v{k}: {n}' for k, n in window['versions'].items()) or '-'}"
    )
    report_out.print(f"latency p50 {_ms(latency['p50'])}, p95 {_ms(latency['p95'])}")
    verdict = {True: "DETECTED", False: "none", None: "not judged"}[drift["detected"]]
    table = Table(title=f"drift: {verdict} ({drift['reason']})")
    for column in ("test", "method", "statistic", "threshold", "p-value", "drift"):
        table.add_column(column)
    for name, test in drift.items():
        if not isinstance(test, dict):
            continue
        if "skipped" in test:
            table.add_row(name, "-", "-", "-", "-", f"skipped: {test['skipped']}")
            continue
        table.add_row(
            name,
            test["method"],
            _number(test.get("statistic")),
            _number(test.get("threshold")),
            _number(test.get("p_value")),
            "yes" if test["detected"] else "no",
        )
    report_out.print(table)
    top = ", ".join(f"{k} {v:.0%}" for k, v in list(report["predicted_labels"].items())[:5])
    report_out.print(f"predicted labels: {top or '-'}")
    feedback = report["feedback"]
    of = f" of version {feedback['version']}" if feedback.get("version") is not None else ""
    report_out.print(f"feedback: {feedback['count']} labelled{of}, live accuracy {_shown(feedback['accuracy'])}")


def monitor(
    model: Annotated[str, typer.Argument(help="bundle path or models:/NAME@ALIAS")],
    since: Annotated[str | None, typer.Option(help="only traffic since: 30m, 2h, 7d or an ISO date")] = None,
    window: Annotated[int, typer.Option(min=1, help="most recent predictions judged for drift")] = 1000,
    json_: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Traffic, latency, predicted labels, drift against the training data, feedback and live accuracy.

    Example: modelyard monitor models:/banking-intents@champion --since 24h --json
    """
    from modelyard.monitoring.monitor import monitor as run_monitor

    report = run_monitor(model, since, window)
    if json_:
        _print_json(report)
    else:
        _drift_table(report)


@feedback_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="a .csv/.tsv (header prediction_id,label) or .jsonl file")],
    model: Annotated[str, typer.Option("--model", help="bundle path or models:/NAME@ALIAS")],
) -> None:
    """Attach true labels to logged predictions; unknown prediction ids reject the whole file.

    A chat model takes JSONL: {"prediction_id", "rating": "up"|"down", "corrected"} or preference pairs
    {"prompt" or "messages", "chosen", "rejected"} (docs/preference_tuning.md). A multi-label model takes a label
    set per row ("joy|love" or a JSON list), an entity extractor a JSON list of {start, end, label} spans.

    Example: modelyard feedback import corrections.csv --model models:/banking-intents@champion
    """
    from modelyard.monitoring.feedback import import_feedback

    result = import_feedback(file, model)
    pairs = f" ({result['ratings']} ratings, {result['pairs']} preference pairs)" if "pairs" in result else ""
    console.print(f"imported {result['imported']} feedback labels for {result['model']}{pairs}")


def _model_name(side: dict[str, Any]) -> str:
    """A model of a retrain decision: its registry version, else (a bundle path given) its path."""
    return f"v{side['version']}" if side.get("version") is not None else str(side["path"])


def _preference_summary(decision: dict[str, Any]) -> None:
    for side in ("champion", "challenger"):
        d = decision[side]
        won = f", wins {d['win_rate']:.0%} of held-out pairs" if "win_rate" in d else ""
        console.print(
            f"[bold]{side}[/] {_model_name(d)}: preference margin {d['preference_margin']:.4f}, preference accuracy "
            f"{d['preference_accuracy']:.4f}{won}, test loss {d['loss']:.4f}"
        )
    pref = decision["preference"]
    console.print(f"DPO on {pref['used_for_training']} pairs, {pref['held_out_scored']} held out")
    if "assistant" in decision:  # an assistant's chat model, tuned on the grounded prompts it saw
        chat = decision["assistant"]
        console.print(
            f"assistant chat model: from {chat['started_from']}, loss on {chat['loss_questions']} labelled questions, "
            f"{pref['not_generated']} rated answers not generated (declines, hand-overs)"
        )
    verdict = "[green]promoted[/]" if decision["promoted"] else "[yellow]not promoted[/]"
    console.print(f"{verdict}: {decision['reason']}")
    print(json.dumps({"promoted": decision["promoted"], "reason": decision["reason"]}))


def retrain(
    config: Annotated[
        Path, typer.Argument(help="the YAML config the champion was trained from, or (without --model) the champion")
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="the champion: models:/NAME@ALIAS or a bundle path")
    ] = None,
    margin: Annotated[float, typer.Option(help="the challenger must beat the champion by more than this")] = 0.0,
    guard_class: Annotated[
        list[str] | None, typer.Option("--guard-class", help="a class whose F1 must not drop (repeatable)")
    ] = None,
    alias: Annotated[str, typer.Option(help="the alias a winning challenger takes")] = "champion",
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a config key")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="challenger bundle folder")] = None,
    json_: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
    beta: Annotated[float, typer.Option(min=0.001, help="chat models: DPO's beta")] = 0.1,
    loss_tolerance: Annotated[
        float, typer.Option(min=0.0, help="chat models: allowed relative rise of the test loss")
    ] = 0.05,
) -> None:
    """Train a challenger on the training data plus feedback; promote it only if it beats the champion.

    A chat model is tuned with DPO on preference pairs from its rated and corrected answers.

    An assistant's chat model too, on the prompts it saw (passages and question), in a new assistant bundle.

    Without --model, CONFIG is the champion itself (a bundle or models:/NAME@ALIAS) and its own config is used.

    Example: modelyard retrain examples/quickstart.yaml --model models:/banking-intents@champion
    Example: modelyard retrain models:/helpdesk@champion --set train.max_steps=20
    """
    from modelyard.monitoring.retrain import retrain as run_retrain

    decision = run_retrain(
        config, model, margin, guard_class or [], set_ or [], output, alias, beta=beta, loss_tolerance=loss_tolerance
    )
    if json_:
        _print_json(decision)
        return
    if "preference" in decision:
        _preference_summary(decision)
        return
    for side in ("champion", "challenger"):
        d = decision[side]
        console.print(
            f"[bold]{side}[/] {_model_name(d)}: {decision['metric']} {d[decision['metric']]:.4f}, "
            + (f"accuracy {d['accuracy']:.4f}, " if "accuracy" in d else "")
            + f"feedback {d['feedback']}"
        )
    if left_out := decision["feedback"]["in_test_split"]:
        console.print(f"left out {left_out} feedback rows whose text is in the frozen test split")
    verdict = "[green]promoted[/]" if decision["promoted"] else "[yellow]not promoted[/]"
    console.print(f"{verdict}: {decision['reason']}")
    print(json.dumps({"promoted": decision["promoted"], "reason": decision["reason"]}))
