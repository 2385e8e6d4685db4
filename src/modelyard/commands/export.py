"""`modelyard export` and `modelyard distill`: one command, and a table of what it bought and what it cost."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelyard.commands.console import STATE, quiet_mode

err = Console(stderr=True)


class Format(StrEnum):
    onnx = "onnx"
    torch = "torch"


class Quantize(StrEnum):
    int8 = "int8"


def _table(report: dict[str, Any], names: tuple[str, str], title: str) -> None:
    """What an export or distillation bought and cost, side by side (a report: -q hides it)."""
    if STATE["quiet"]:
        return
    a, b = names
    table = Table(title=title)
    for column in ("", a, b):
        table.add_column(column, justify="right")
    lat = report["latency_ms"]
    table.add_row("size (MB)", f"{report['size_mb'][a]:.1f}", f"{report['size_mb'][b]:.1f}")
    metric = report["accuracy"].get("metric", "accuracy")
    split = report["parity"].get("split", "validation")
    table.add_row(f"{metric} ({split})", f"{report['accuracy'][a]:.4f}", f"{report['accuracy'][b]:.4f}")
    table.add_row(
        "latency p50 / p95 (ms, 1 input)",
        f"{lat[a]['p50']:.1f} / {lat[a]['p95']:.1f}",
        f"{lat[b]['p50']:.1f} / {lat[b]['p95']:.1f}",
    )
    table.add_row("throughput (samples/s, batched)", f"{report['throughput'][a]:.1f}", f"{report['throughput'][b]:.1f}")
    err.print(table)
    parity = report["parity"]
    err.print(
        f"agreement with the {a}: {parity['agreement']:.2%} over {parity['samples']} {split} inputs "
        f"({parity.get('compared', 'class probabilities')}); largest difference {parity['max_abs_diff']:.2e}"
    )


def export(
    model: Annotated[str, typer.Argument(help="bundle path or models:/NAME@ALIAS")],
    format_: Annotated[Format | None, typer.Option("--format", help="onnx (ONNX Runtime); default torch")] = None,
    quantize: Annotated[Quantize | None, typer.Option(help="int8 weights (ONNX: onnxruntime; torch: dynamic)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="new bundle folder")] = None,
    min_agreement: Annotated[
        float, typer.Option(min=0, max=1, help="fail below this share of agreeing outputs, a fraction (0.98 = 98%)")
    ] = 0.98,
    max_accuracy_drop: Annotated[
        float, typer.Option(min=0, max=100, help="fail if accuracy falls by more, in points (1 = 90% -> 89%)")
    ] = 1.0,
    max_error_increase: Annotated[
        float,
        typer.Option(
            min=0, max=100, help="forecasters, language models: fail if mae/perplexity rises by more, in % (2 = 2%)"
        ),
    ] = 2.0,
    force: Annotated[bool, typer.Option(help="keep the export even when it fails the parity check")] = False,
    latency_samples: Annotated[int, typer.Option(min=1, help="single inputs timed per model")] = 100,
) -> None:
    """Export a bundle (ONNX and/or int8) with a parity check on its validation split; prints the new bundle path.

    --output may name an earlier export or distillation of the same bundle (replaced), never another model's.

    The check (size, agreement, accuracy or the task's error metric, latency, throughput) is written to
    DIR/export.json; an export that changes predictions beyond the tolerance fails with exit code 1 unless --force.
    Agreement: classifiers, same top class; forecasters, values within 1%; language models, same next token.

    Example: modelyard export ./bundle --format onnx --quantize int8
    """
    from modelyard.export.exporter import export as run_export
    from modelyard.export.parity import Tolerance

    fmt = format_.value if format_ else "torch"
    result = run_export(
        model,
        fmt,
        quantize.value if quantize else None,
        output,
        Tolerance(min_agreement, max_accuracy_drop / 100, max_error_increase / 100),
        force,
        latency_samples,
    )
    _table(result.report, ("original", "exported"), f"export: {fmt}{' int8' if quantize else ''}")
    if not result.passed:
        err.print("[yellow]warning[/]: kept despite failing the parity check (--force)")
    print(result.path)


def distill(
    teacher: Annotated[str, typer.Argument(help="the teacher: bundle path or models:/NAME@ALIAS")],
    student: Annotated[
        str, typer.Option(help="the student's backbone: a neural text classifier (scratch-transformer, minilm-l6)")
    ] = "scratch-transformer",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="student bundle folder")] = None,
    temperature: Annotated[float, typer.Option(min=0.01, help="softens the teacher's probabilities")] = 2.0,
    alpha: Annotated[float, typer.Option(min=0, max=1, help="weight of the soft labels vs the true ones")] = 0.5,
    epochs: Annotated[int | None, typer.Option(min=1, help="default: the student's tuned default")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a student config key")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="as the global -q: no progress or table")] = False,
    latency_samples: Annotated[int, typer.Option(min=1, help="single inputs timed per model")] = 100,
) -> None:
    """Train a smaller student on a text classifier teacher's soft labels; prints the student bundle path.

    Teachers: neural text classifiers (not TF-IDF); other models get smaller through `modelyard export`.

    The comparison with the teacher (size, agreement, accuracy, latency, throughput) goes to DIR/distill.json.

    Example: modelyard distill ./bundle --student scratch-transformer --set model.hidden_size=128
    """
    from modelyard.export.distill import distill as run_distill

    quiet = quiet_mode(quiet)
    overrides = [*(set_ or []), *([f"train.epochs={epochs}"] if epochs else [])]
    result = run_distill(teacher, student, output, temperature, alpha, overrides, quiet, latency_samples)
    _table(result.report, ("teacher", "student"), f"distillation: {student}")
    print(result.path)
