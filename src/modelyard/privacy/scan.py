"""Which columns of a table hold personal data, and in how many rows: what `modelyard validate` reports."""

from __future__ import annotations

from typing import Any

from modelyard.privacy.redact import Redactor, from_config, is_env_salt, scanned_text

SCAN_ROWS = 20_000  # rows per split; beyond this a seeded sample is scanned and the report says so


def scan_frame(frame: Any, redactor: Redactor, limit: int = SCAN_ROWS) -> dict[str, Any]:
    """`{"rows": scanned, "of": total, "columns": {column: {kind: rows}}, "holding": {column: rows}}` over the text
    and integer columns of a pandas DataFrame; a row counts once per kind however many findings it holds, and once
    in `holding` whatever kinds it holds (a column of e-mails and phones, half each, is personal in every row)."""
    total = len(frame)
    sample = frame.sample(n=limit, random_state=0) if total > limit else frame
    columns: dict[str, dict[str, int]] = {}
    holding: dict[str, int] = {}
    for column in sample.columns:
        values = sample[column].tolist()
        texts = [text for text in map(scanned_text, values) if text is not None]
        counts: dict[str, int] = {}
        found = redactor.find_many(texts) if texts else []
        for spans in found:
            for kind in {span.kind for span in spans}:
                counts[kind] = counts.get(kind, 0) + 1
        if counts:
            columns[str(column)] = dict(sorted(counts.items()))
            holding[str(column)] = sum(1 for spans in found if spans)
    return {"rows": len(sample), "of": total, "columns": columns, "holding": holding}


def summary(found: dict[str, dict[str, Any]], names: dict[str, str]) -> list[str]:
    """One line per column holding personal data, e.g. "split train, column 'note': email in 12 of 800 rows";
    `names` maps the task's column names back to the user's (text -> utterance)."""
    lines = []
    for split, result in found.items():
        sampled = f" (a sample of {result['rows']} of {result['of']} rows)" if result["rows"] < result["of"] else ""
        for column, counts in result["columns"].items():
            kinds = ", ".join(f"{kind} in {n} of {result['rows']} rows" for kind, n in counts.items())
            lines.append(f"split {split}, column '{names.get(column, column)}': {kinds}{sampled}")
    return lines


def add_pii_report(config: Any, data: Any) -> None:
    """`validate`'s PII check: scan every table split of the prepared data with the config's detectors, put the
    counts under `report["pii"]` and one warning per column that holds personal data."""
    section = config.privacy
    if not section.detectors:
        return
    redactor = from_config(section)
    found = {
        split: scan_frame(frame, redactor)
        for split, frame in data.splits.items()
        if hasattr(frame, "columns") and len(frame)
    }
    data.report["pii"] = found
    names = {
        key.removesuffix("_column"): value
        for key, value in config.data.model_dump().items()
        if key.endswith("_column") and isinstance(value, str)
    }
    where = ", ".join(section.redact) if section.redact else "nowhere (privacy.redact is empty)"
    data.warnings.extend(f"personal data: {line}; redacted in: {where}" for line in summary(found, names))


def warn_literal_salt(config: Any, data: Any) -> None:
    """A literal `privacy.hash_salt` travels in the bundle's config.yaml: `validate` and `train` both say so."""
    salt = config.privacy.hash_salt
    if salt and not is_env_salt(salt):
        data.warnings.append(
            "privacy.hash_salt is written in the config, so it travels in the bundle's config.yaml: "
            "use hash_salt: ${NAME} to read it from an environment variable instead"
        )
