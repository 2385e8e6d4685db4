"""The report's "Suspected label errors" section: the training rows `data.label_noise` flagged and what train did."""

from __future__ import annotations

from typing import Any

from modelyard.evaluation.sections import ReportContext, Section, Table, Text

SHOWN = 100  # rows listed in the page; data_report.json holds all


def sections(context: ReportContext) -> list[Section]:
    found = context.data_report.get("label_noise")
    if not found:
        return []
    rows: list[dict[str, Any]] = found.get("rows_affected", [])
    done = {"drop": "dropped from training", "weight": "down-weighted in training", "report": "kept (action: report)"}
    blocks: list[Any] = [
        Text(
            f"{len(rows)} of {found['rows']} training rows look mislabelled ({found['method']} out-of-fold "
            f"probabilities, confident learning; estimated noise rate {found['estimated_noise_rate']:.1%}); "
            f"they were {done[found['action']]}."
        )
    ]
    if rows:
        blocks.append(
            Table(
                ["rank", "line", "text", "given label", "suggested label", "confidence"],
                [
                    [r["rank"], r["line"], r["text"], r["given_label"], r["suggested_label"], f"{r['confidence']:.2f}"]
                    for r in rows[:SHOWN]
                ],
                f"most suspicious first{f'; the first {SHOWN} of {len(rows)}' if len(rows) > SHOWN else ''}; "
                "line = line in the training file",
            )
        )
    return [Section("label-noise", "Suspected label errors", blocks, "rows whose given label the data contradicts")]
