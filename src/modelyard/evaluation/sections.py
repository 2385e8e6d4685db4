"""What a report is made of: sections of simple blocks, and the registry that lets each kind of model add
its own. A provider is registered for a capability (a predicate on the loaded model, e.g. "has class
probabilities"), so the report never names a task; a task can also contribute sections directly with
an optional `report_sections(model, context)` method, which takes precedence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from modelyard.errors import UserError


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    kind: str = "table"


@dataclass
class Figure:
    src: str  # a data: URI
    caption: str
    kind: str = "figure"


@dataclass
class Text:
    text: str
    kind: str = "text"
    tone: str = "plain"  # plain | note | warning


@dataclass
class Tokens:
    """One explained input: tokens shaded by attribution (red pushes towards the label, blue away from it)."""

    title: str
    tokens: list[str]
    attributions: list[float]
    kind: str = "tokens"

    @property
    def shaded(self) -> list[tuple[str, str, float]]:
        scale = max((abs(a) for a in self.attributions), default=0.0) or 1.0
        out = []
        for token, value in zip(self.tokens, self.attributions, strict=True):
            alpha = min(1.0, abs(value) / scale)
            rgb = "220,38,38" if value >= 0 else "37,99,235"
            out.append((token, f"rgba({rgb},{alpha:.2f})", value))
        return out


@dataclass
class Html:
    html: Markup
    kind: str = "html"


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any] = field(default_factory=list)
    summary: str = ""


@dataclass
class ReportContext:
    """What every provider reads (the bundle's files, the loaded model) and what they leave for the generic
    sections: intervals for the headline table, sample inputs for the latency measurement."""

    model: Any
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    data_report: dict[str, Any]
    prepared: Any = None  # the task's PreparedData, re-read from the config
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)
    interval_method: str = "percentile bootstrap over test examples, 1,000 resamples"
    sample_inputs: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Provider = Callable[[ReportContext], list[Section]]
_PROVIDERS: list[tuple[str, Callable[[Any], bool], Provider]] = []
_EXCLUSIVE: set[str] = set()


def provides(name: str, applies: Callable[[Any], bool], exclusive: bool = False) -> Callable[[Provider], Provider]:
    """Register a section provider for the models `applies(model)` accepts; an `exclusive` one, when it
    applies, replaces the general ones (e.g. tables: the generic classification sections expect text or images)."""

    def wrap(fn: Provider) -> Provider:
        _PROVIDERS.append((name, applies, fn))
        if exclusive:
            _EXCLUSIVE.add(name)
        return fn

    return wrap


def _applicable(model: Any) -> list[tuple[str, Provider]]:
    found = [(name, provider) for name, applies, provider in _PROVIDERS if applies(model)]
    return [entry for entry in found if entry[0] in _EXCLUSIVE] or found


def task_sections(context: ReportContext) -> list[Section]:
    """The task's own hook if it has one, else every registered provider that applies to this model.
    A provider that fails costs its section, never the report."""
    hook = getattr(context.model.task, "report_sections", None)
    providers: list[tuple[str, Provider]] = (
        [("task", lambda c: hook(c.model, c))] if hook is not None else _applicable(context.model)
    )
    sections: list[Section] = []
    for name, provider in providers:
        try:
            sections.extend(provider(context))
        except UserError as error:
            sections.append(_failed(name, error.message))
        except Exception as error:  # one task's section must not take the whole report down
            sections.append(_failed(name, f"{type(error).__name__}: {error}"))
    return sections


def _failed(name: str, message: str) -> Section:
    return Section(
        f"{name}-failed", f"{name} (not available)", [Text(f"could not be computed: {message}", "text", "warning")]
    )


def fmt(value: Any) -> str:
    """Numbers as people read them in a table: 4 significant decimals, thousands separators for counts."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def metric_table(metrics: dict[str, Any], caption: str = "") -> Table:
    """Any metric dict as a table of its scalar entries (nested dicts flattened one level), so the report can
    show the numbers of any task without knowing them."""
    rows = []
    for key, value in metrics.items():
        if isinstance(value, int | float | str | bool):
            rows.append([key, fmt(value)])
        elif isinstance(value, dict):
            rows.extend([f"{key}.{k}", fmt(v)] for k, v in value.items() if isinstance(v, int | float | str))
    return Table(["metric", "value"], rows, caption)
