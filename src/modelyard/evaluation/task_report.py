"""Report sections for models other than classifiers, chosen by what the learner can do: sample generations
for generators, forecast-vs-actual plots for forecasters, metrics at several k for rankers."""

from __future__ import annotations

import re
from typing import Any

from modelyard.evaluation import plots
from modelyard.evaluation.sections import Figure, ReportContext, Section, Table, Text, fmt, provides
from modelyard.metrics import intervals

SAMPLES = 3
PROMPT_CHARS = 60
FORECAST_PLOTS = 3
AT_K = re.compile(r"^(?P<metric>.+)@(?P<k>\d+)$")


def _prompt(item: Any) -> Any | None:
    """A prompt from one test item: the start of a document, a prompt field, or a chat without its answer."""
    if isinstance(item, str):
        return item[:PROMPT_CHARS] if item.strip() else None
    if isinstance(item, dict) and "prompt" in item:
        return item["prompt"]
    if isinstance(item, dict) and isinstance(item.get("messages"), list):
        messages = item["messages"]
        return messages[:-1] if len(messages) > 1 and messages[-1].get("role") == "assistant" else messages
    return None


def _shown(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt)
    return str(prompt)


def _use(context: ReportContext, found: intervals.Intervals | None) -> None:
    if found is not None:
        context.intervals.update(found[0])
        context.interval_method = found[1]


@provides("generation", lambda model: hasattr(model.learner, "generate"))
def generation_sections(context: ReportContext) -> list[Section]:
    """Loss and perplexity per split, and what the model writes for a few prompts from the test split; nothing for
    a generator that measures neither (an assistant scores its retrieval, and its questions are no prompts)."""
    rows = [
        [split, fmt(m.get("loss")), fmt(m.get("perplexity")), fmt(m.get("tokens"))]
        for split in ("validation", "test")
        if (m := context.metrics.get(split)) and ("loss" in m or "perplexity" in m)
    ]
    blocks: list[Any] = [Table(["split", "loss", "perplexity", "tokens"], rows, "lower is better")] if rows else []
    _use(context, intervals.generation_intervals(context.model.learner, context.prepared.splits.get("test")))
    test = context.prepared.splits.get("test") or context.prepared.splits.get("validation") or []
    prompts = [p for p in (_prompt(item) for item in list(test)[:50]) if p][:SAMPLES]
    if prompts:
        outputs = context.model.predict(prompts)
        blocks.append(
            Table(
                ["prompt", "generated"],
                [
                    [_shown(p), str(o.get("text", o)) if isinstance(o, dict) else str(o)]
                    for p, o in zip(prompts, outputs, strict=True)
                ],
                "sample generations with the bundle's decoding settings",
            )
        )
        context.sample_inputs = prompts[:1]
    if not blocks:
        return []
    return [
        Section(
            "generation",
            "Generation",
            blocks,
            "how well the model predicts held-out text, and what it writes",
        )
    ]


@provides("forecasting", lambda model: hasattr(model.learner, "forecast_windows"))
def forecasting_sections(context: ReportContext) -> list[Section]:
    """The last test window of a few series: context, actual values and the forecast."""
    from modelyard.data.timeseries import window_origins
    from modelyard.metrics.forecast import naive_forecast, seasonal_naive_forecast

    learner = context.model.learner
    split = context.prepared.splits["test"]
    origins = window_origins(split, learner.context, learner.horizon)
    _use(context, intervals.forecast_intervals(learner, split))
    last: dict[int, tuple[int, int]] = {}
    for i, t in origins:
        last[i] = (i, t)
    chosen = list(last.values())[:FORECAST_PLOTS]
    blocks: list[Any] = []
    if chosen:
        forecasts = learner.forecast_windows(split, chosen)
        for (i, t), forecast in zip(chosen, forecasts, strict=True):
            series = split.series[i]
            past = series.values[:t]
            baselines = {
                "naive": naive_forecast(past, learner.horizon),
                "seasonal naive": seasonal_naive_forecast(past, learner.horizon, split.season),
            }
            blocks.append(
                Figure(
                    plots.forecast_plot(
                        series.values[t - learner.context : t],
                        series.values[t : t + learner.horizon],
                        forecast,
                        f"{series.key or 'the series'}: forecast from {series.times[t].date()}",
                        baselines,
                    ),
                    f"{series.key or 'the series'}: the last test window",
                )
            )
    else:
        blocks.append(Text("no complete test window to plot", tone="note"))
    per_step = context.metrics.get("test", {}).get("mae_by_step")
    if isinstance(per_step, list) and per_step:
        blocks.append(
            Table(
                ["step ahead", "MAE"],
                [[h + 1, fmt(v)] for h, v in enumerate(per_step)],
                "error by forecast step on the test split",
            )
        )
    return [Section("forecasting", "Forecasts against actual values", blocks, "the test period, plotted")]


def _at_k(metrics: dict[str, Any]) -> dict[str, dict[int, Any]]:
    table: dict[str, dict[int, Any]] = {}
    for key, value in metrics.items():
        match = AT_K.match(key)
        if match and isinstance(value, int | float):
            table.setdefault(match["metric"], {})[int(match["k"])] = value
    return table


@provides("assistant", lambda model: hasattr(model.learner, "question_outcomes"))
def assistant_sections(context: ReportContext) -> list[Section]:
    """No section of its own (the headline table holds an assistant's metrics): its test intervals, recomputed."""
    test = context.prepared.splits.get("test") if context.prepared is not None else None
    _use(context, intervals.assistant_intervals(context.model.learner, test))
    return []


@provides("ranking", lambda model: model.learner is not None and not hasattr(model.learner, "predict_proba"))
def ranking_sections(context: ReportContext) -> list[Section]:
    """Metrics named `name@k` (recall, ndcg, hit rate, coverage) as one table: a row per k."""
    test = context.prepared.splits.get("test") if context.prepared is not None else None
    _use(context, intervals.ranking_intervals(context.model.learner, test))
    sections = []
    for split in ("test", "validation"):
        table = _at_k(context.metrics.get(split, {}))
        if not table:
            continue
        ks = sorted({k for per_k in table.values() for k in per_k})
        rows = [[k, *(fmt(table[m].get(k)) for m in table)] for k in ks]
        blocks: list[Any] = [Table(["k", *table], rows, f"{split} split")]
        for name, result in context.metrics.get("baselines", {}).items():
            base = _at_k(result.get(split, {}))
            if base:
                blocks.append(
                    Table(
                        ["k", *base],
                        [
                            [k, *(fmt(base[m].get(k)) for m in base)]
                            for k in sorted({k for v in base.values() for k in v})
                        ],
                        f"baseline {name}, {split} split",
                    )
                )
        sections.append(
            Section(
                f"at-k-{split}",
                f"Metrics at several k ({split})",
                blocks,
                "ranking quality and catalogue coverage as the list grows",
            )
        )
        break
    return sections
