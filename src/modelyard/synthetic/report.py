"""The synthesis report as one self-contained HTML page (the JSON beside it holds every number)."""

from __future__ import annotations

import html
from typing import Any


def _row(*cells: Any, head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"


def _table(rows: list[str]) -> str:
    return "<table>" + "".join(rows) + "</table>"


def _shade(value: float) -> str:
    level = int(255 * (1 - min(1.0, abs(value) / 0.3)))  # 0.3 and more: full red
    return f"background:rgb(255,{level},{level})"


def render(report: dict[str, Any]) -> str:
    fid, priv = report["fidelity"], report["privacy"]
    util, corr = fid["utility"], fid["correlations"]
    metric = util["metric"]
    utility_rows = [_row("trained on", "rows", *[k for k in util["train_on_real"] if k != "rows"], head=True)]
    for name in ("train_on_real", "train_on_synthetic"):
        scores = util[name]
        utility_rows.append(_row(name.replace("_", " "), *scores.values()))
    column_rows = [_row("column", "metric", "distance", "missing real", "missing synthetic", head=True)]
    for name, entry in fid["columns"].items():
        column_rows.append(
            _row(name, entry["metric"], entry["distance"], entry["missing_real"], entry["missing_synthetic"])
        )
    names = corr["columns"]
    heat = ["<tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"]
    for i, name in enumerate(names):
        cells = []
        for j in range(len(names)):
            diff = corr["real"][i][j] - corr["synthetic"][i][j]
            cells.append(f'<td style="{_shade(diff)}">{diff:+.2f}</td>')
        heat.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    dcr = priv["dcr"]
    privacy_rows = [_row("rows", "median DCR", "5th percentile", "minimum", head=True)]
    for name in ("synthetic", "real_holdout"):
        privacy_rows.append(_row(name.replace("_", " "), *dcr[name].values()))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report["notes"])
    title = f"synthetic data: {html.escape(report['name'])}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right}}th{{background:#f4f4f4}}</style>
</head><body><h1>Synthetic data: {html.escape(report["name"])}</h1>
<p>{report["rows"]} synthetic rows by <b>{html.escape(report["method"])}</b>, learnt from {report["real_rows"]} real
rows; {util["test_rows"]} real rows held out. Written to {html.escape(report["output"])}.</p>
<h2>Usefulness: train on synthetic, test on real</h2>
<p>{html.escape(util["model"])}, scored on the real holdout; gap in {metric}: <b>{util.get("gap", "n/a")}</b>
(train-on-real minus train-on-synthetic).</p>{_table(utility_rows)}
<h2>Privacy</h2><p>Exact copies of real rows: <b>{priv["exact_copies"]}</b>
({priv["copies_replaced"]} generated copies were replaced by fresh samples, {priv["rows_dropped"]} dropped).
Distance to the closest real training record (DCR); synthetic rows should be no closer than real rows the
generator never saw. Share of synthetic rows closer than the holdout's 5th percentile:
<b>{dcr["share_closer_than_holdout_p05"]}</b> (about 0.05 when nothing is memorised).</p>{_table(privacy_rows)}
<h2>Columns</h2><p>KS statistic for numbers and dates, total variation distance for categories (0 = same
distribution, 1 = disjoint).</p>{_table(column_rows)}
<h2>Correlations</h2><p>Spearman, real minus synthetic; mean absolute difference {corr["mean_abs_difference"]},
largest {corr["max_abs_difference"]} ({html.escape(" / ".join(corr["worst_pair"]))}).</p>{_table(heat)}
<h2>Notes</h2><ul>{notes}</ul></body></html>
"""
