"""`modelyard report`: one self-contained HTML file a person can judge a model from.

Generic sections (headline metrics beside the baselines, learning curves, data, cost, model card) come from
the bundle's files and a fresh measurement; task-specific ones from the providers in `sections` (or a task's
own `report_sections` hook). Pictures are embedded, CSS is inline, nothing is fetched when the file is opened.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from markdown_it import MarkdownIt
from markupsafe import Markup

from modelyard import loader
from modelyard.bundle import environment
from modelyard.data.jsonl import json_lines
from modelyard.data.splits import changed_splits
from modelyard.errors import UserError
from modelyard.evaluation import (
    answer_quality_report,
    classification_report,
    detection_report,
    entity_report,
    label_noise_report,
    model_card,
    multilabel_report,
    multimodal_report,
    plots,
    speech_report,
    tabular_report,
    task_report,
)
from modelyard.evaluation.redaction import redact_sections, report_redactor
from modelyard.evaluation.sections import (
    Figure,
    Html,
    ReportContext,
    Section,
    Table,
    Text,
    fmt,
    metric_table,
    task_sections,
)
from modelyard.fsutil import atomic_write_text
from modelyard.metrics import cost
from modelyard.protocols import ChangedAfterTraining

# imported for their @provides registrations
PROVIDERS = (
    answer_quality_report,
    classification_report,
    tabular_report,
    task_report,
    speech_report,
    multilabel_report,
    multimodal_report,
    entity_report,
    detection_report,
)
SKIP = {"samples", "per_class", "per_label", "confusion_matrix", "warning"}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in json_lines(path.read_text(encoding="utf-8")) if line.strip()]


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool) and k not in SKIP
    }


def _cell(value: Any, interval: dict[str, float] | None = None) -> str:
    if value is None:
        return ""
    return fmt(value) + (f" [{fmt(interval['low'])}, {fmt(interval['high'])}]" if interval else "")


def _headline(context: ReportContext) -> Section:
    """Validation and test beside every baseline; test with bootstrap 95% intervals where computed."""
    metrics, intervals = context.metrics, context.intervals
    test = {**_scalars(metrics.get("test", {})), **{k: v["value"] for k, v in intervals.items()}}
    validation = _scalars(metrics.get("validation", {}))
    keys = list(dict.fromkeys([*test, *validation]))
    rows = [
        ["this model", "validation", *(_cell(validation.get(k)) for k in keys)],
        ["this model", "test", *(_cell(test.get(k), intervals.get(k)) for k in keys)],
    ]
    for name, result in metrics.get("baselines", {}).items():
        for split in ("validation", "test"):
            if result.get(split):
                rows.append([f"baseline: {name}", split, *(_cell(result[split].get(k)) for k in keys)])
    main = context.model.task.main_metric
    blocks: list[Any] = []
    if main in test:
        better = "higher" if context.model.task.greater_is_better else "lower"
        ci = intervals.get(main)
        text = f"On the test split the model scores {main} {test[main]:.4f}"
        text += f" (95% bootstrap interval {ci['low']:.4f} to {ci['high']:.4f})" if ci else ""
        base = {n: r["test"][main] for n, r in metrics.get("baselines", {}).items() if main in r.get("test", {})}
        text += "".join(f"; baseline {n}: {v:.4f}" for n, v in base.items()) + f" ({better} is better)."
        blocks.append(Text(text))
        bars = [("this model", test[main], (ci["low"], ci["high"]) if ci else None)]
        bars += [(f"baseline {n}", v, None) for n, v in base.items()]
        caption = f"{main} on the test split" + ("; whiskers: 95% interval" if ci else "")
        blocks.append(Figure(plots.metric_bars(bars, main), caption))
    blocks.append(
        Table(
            ["model", "split", *keys],
            rows,
            f"intervals: {context.interval_method}" if intervals else "",
        )
    )
    for note in context.notes:
        blocks.append(Text(note, tone="warning"))
    return Section("headline", "Headline metrics", blocks, "the numbers to judge the model by, beside simple baselines")


def _learning(context: ReportContext) -> Section:
    history = context.history
    learner = context.model.learner
    kept = learner.kept_after_training() if isinstance(learner, ChangedAfterTraining) else None
    figure = plots.learning_curves(history, context.model.task.main_metric)
    before = " (of the weights before the change noted below)" if kept else ""
    blocks: list[Any] = (
        [Figure(figure, f"training loss and validation metrics per evaluation{before}")]
        if figure
        else [Text("one evaluation only (e.g. a model fitted in one pass): no curve to draw")]
    )
    keys = list(dict.fromkeys(k for h in history for k in h.get("validation", {}) if k not in SKIP))
    rows = [
        [
            h.get("epoch"),
            h.get("step"),
            _cell(h.get("train_loss")),
            *(_cell(h.get("validation", {}).get(k)) for k in keys),
        ]
        for h in history
    ]
    if kept:  # the curve's last point is not the model kept: its validation scores differ from the headline's
        validation = context.metrics.get("validation", {})
        rows.append(["kept model", "", "", *(_cell(validation.get(k)) for k in keys)])
        blocks.append(
            Text(
                f"{kept}: the evaluations above are of the fine-tuned weights before it; the model kept (and scored "
                "in the headline) is the last row."
            )
        )
    blocks.append(Table(["epoch", "step", "train loss", *(f"validation {k}" for k in keys)], rows))
    return Section("learning", "Learning curves", blocks, "from history.jsonl: did training converge or overfit?")


def _federation(context: ReportContext) -> list[Section]:
    """A federated bundle's rounds: the global model's validation metric and each site's rows and loss."""
    settings = context.data_report.get("federation")
    if not settings:
        return []
    main = context.model.task.main_metric
    seen = [x["site"] for h in context.history for x in [*h.get("clients", []), *h.get("dropped", [])]]
    names = settings.get("sites") or list(dict.fromkeys(seen))

    def cell(entry: dict[str, Any], site: str) -> str:
        """A site's rows and loss in a round, or why the round went on without it."""
        for c in entry.get("clients", []):
            if c["site"] == site:
                return f"{c['samples']} rows, loss {_cell(c.get('train_loss'))}"
        return next((f"dropped: {d['reason']}" for d in entry.get("dropped", []) if d["site"] == site), "–")

    rows = [
        [
            h.get("round"),
            _cell(h.get("validation", {}).get(main)),
            _cell(h.get("train_loss")),
            *(cell(h, n) for n in names),
        ]
        for h in context.history
    ]
    shown = {k: v for k, v in settings.items() if k not in ("label_counts", "sites")}
    blocks: list[Any] = [Text(", ".join(f"{k}: {v}" for k, v in shown.items()))]
    blocks.append(Table(["round", f"validation {main}", "train loss", *names], rows))
    if settings.get("label_counts"):
        counts = settings["label_counts"]
        labels = sorted({label for c in counts for label in c})
        per_site = [[n, *(c.get(x, 0) for x in labels)] for n, c in zip(names, counts, strict=True)]
        blocks.append(Table(["site", *labels], per_site, "rows per label at each site (the partition's skew)"))
    return [Section("federation", "Federation", blocks, "one global model trained by sites that kept their rows")]


def _size(value: Any) -> str:
    """A split's size: a count, or the counts a task reports in its own units ("101 points, 72 windows")."""
    if isinstance(value, dict):
        return ", ".join(f"{fmt(count)} {unit}" for unit, count in value.items())
    return fmt(value)


def _data(context: ReportContext) -> Section:
    report, manifest = context.data_report, context.model.manifest
    blocks: list[Any] = []
    prints = manifest.get("data", {})
    splits = report.get("splits", {})
    blocks.append(
        Table(
            ["split", "rows", "sha256 fingerprint"],
            [
                [
                    s,
                    _size(splits.get(s, prints.get(s, {}).get("rows"))),
                    str(prints.get(s, {}).get("sha256", "")),
                ]
                for s in dict.fromkeys([*splits, *prints])
            ],
            "split sizes and data fingerprints",
        )
    )
    files = report.get("files", {})
    if files:
        blocks.append(
            Table(
                ["split", "file", "cleaning"],
                [[s, f.get("read", {}).get("file", ""), f.get("summary", "")] for s, f in files.items()],
                "cleaning report",
            )
        )
    if report.get("labels"):
        blocks.append(Figure(plots.label_distribution(report["labels"]), "rows per class in each split"))
    shown_elsewhere = {"files", "labels", "splits", "warnings", "split_notes", "label_noise"}
    facts = {k: v for k, v in report.items() if k not in shown_elsewhere}
    if facts:
        blocks.append(
            Table(
                ["fact", "value"],
                [[k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)] for k, v in facts.items()],
                "what the data check found",
            )
        )
    for note in report.get("split_notes", []):
        blocks.append(Text(note, tone="note"))
    for warning in report.get("warnings", []):
        blocks.append(Text(warning, tone="warning"))
    return Section("data", "Data", blocks, "what the model learnt from and was tested on")


def _sample_inputs(context: ReportContext) -> list[Any]:
    """Python-API inputs to time: from the test split, else the learner's example request, parsed as the
    server parses it."""
    if context.sample_inputs:
        return context.sample_inputs
    learner = context.model.learner
    example = getattr(learner, "example_input", None)
    example = example() if callable(example) else example
    if example is None:
        return []
    parse = getattr(learner, "parse_input", None)
    return [parse(example) if parse else example]


def _cost(context: ReportContext, price: float) -> Section:
    train = context.metrics.get("train", {})
    size = cost.bundle_size(context.model.path)
    module = getattr(context.model.learner, "module", None)
    rows = [
        ["training time", f"{fmt(train.get('seconds'))} s (whole run {fmt(train.get('wall_seconds'))} s)"],
        ["training CPU time", f"{fmt(train.get('cpu_seconds'))} CPU-seconds"],
        [
            "training speed",
            f"{fmt(train.get('samples_per_second'))} samples/s ({train.get('precision', '')}, "
            f"{train.get('processes', 1)} process(es))",
        ],
        ["model size on disk", f"{size / 1e6:.1f} MB"],
    ]
    if module is not None:
        rows.append(["parameters", fmt(sum(p.numel() for p in module.parameters()))])
    measured = cost.measure(context.model.predict, _sample_inputs(context), price)
    blocks: list[Any] = [Table(["", "value"], rows, "training (from metrics.json) and size")]
    if measured:
        blocks.append(
            Table(
                ["measured now on this machine", "value"],
                [
                    [
                        "single-input latency p50 / p95",
                        f"{measured['latency_p50_ms']:.1f} ms / "
                        f"{measured['latency_p95_ms']:.1f} ms ({measured['latency_calls']} calls)",
                    ],
                    [
                        "batched throughput",
                        f"{measured['throughput_per_second']:.1f} predictions/s (batches of {measured['batch_size']})",
                    ],
                    ["threads used", f"{measured['threads']} of {measured['cpu_count']} CPUs"],
                    [
                        f"cost per 1,000 predictions at ${price:g}/CPU-hour",
                        f"${measured['cost_per_1000_batched']:.6f} batched, "
                        f"${measured['cost_per_1000_single']:.6f} one at a time",
                    ],
                ],
                "cost = seconds per prediction x threads / 3600 x price per CPU-hour",
            )
        )
    else:
        blocks.append(Text("no example input to time this model with", tone="note"))
    return Section("cost", "Cost", blocks, "what training took and what serving it costs")


def _card(model: Any) -> Section:
    path = model.path / model_card.CARD
    text = path.read_text(encoding="utf-8") if path.is_file() else model_card.render(model.path, model.manifest)
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    note = [] if path.is_file() else [Text("this bundle has no MODEL_CARD.md; generated now", tone="note")]
    return Section("model-card", "Model card", [*note, Html(Markup(html))], "MODEL_CARD.md from the bundle")


def _prepare(model: Any, context: ReportContext) -> None:
    """Re-read the bundle's data (fingerprint-checked) so per-example results can be computed now."""
    try:
        context.prepared = model.task.prepare(model.config)
    except UserError as error:
        context.notes.append(f"the training data could not be re-read ({error.message}): no per-example analysis")
        return
    if "test" in changed_splits(model.manifest.get("data", {}), context.prepared.fingerprints):
        context.notes.append(
            "the test split differs from the one the bundle was evaluated on at train time; "
            "intervals and per-example sections use the data as it is now"
        )


def render(model: Any, price_per_cpu_hour: float = 0.05) -> str:
    """The report's HTML for a loaded model (`loader.load`)."""
    context = ReportContext(
        model,
        _read_json(model.path / "metrics.json"),
        _history(model.path / "history.jsonl"),
        _read_json(model.path / "data_report.json"),
    )
    _prepare(model, context)
    specific = task_sections(context) if context.prepared is not None else []
    if not specific:
        tables = [metric_table(context.metrics[s], s) for s in ("validation", "test") if context.metrics.get(s)]
        specific = [Section("metrics", "All metrics", tables)]
    data, noise = _data(context), label_noise_report.sections(context)
    redact_sections([*specific, data, *noise], report_redactor(model))  # the sections that show values from the data
    sections = [
        _headline(context),
        *specific,
        _learning(context),
        *_federation(context),
        data,
        *noise,
        _cost(context, price_per_cpu_hour),
        _card(model),
    ]
    return page(model, sections)


def page(model: Any, sections: list[Section]) -> str:
    """The HTML page around the sections; everything from the data is escaped (texts, labels, file names)."""
    env = Environment(loader=PackageLoader("modelyard.evaluation", "templates"), autoescape=True)
    return env.get_template("report.html.j2").render(
        model=model,
        manifest=model.manifest,
        sections=sections,
        versions=environment(),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_report(model_ref: str | Path, output: str | Path | None = None, price_per_cpu_hour: float = 0.05) -> Path:
    """Write the report; by default `<model name>-report.html` here (the sealed bundle stays as it is)."""
    model = loader.load(model_ref)
    path = Path(output) if output else Path(f"{model.name}-report.html")
    atomic_write_text(path, render(model, price_per_cpu_hour))
    return path
