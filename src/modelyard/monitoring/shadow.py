"""The shadow log: the silent challenger's answers beside the champion's, written by the server's rollout and
summarised by `monitor`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.monitoring.prediction_log import open_log

SHADOW_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadow_predictions (
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    champion_version TEXT NOT NULL,
    challenger_version TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    champion TEXT NOT NULL,       -- JSON of the champion's answer (the one the client got)
    challenger TEXT NOT NULL,     -- JSON of the challenger's silent answer
    agree INTEGER NOT NULL
);
"""


def shadow_summary(name: str, since: float | None = None, directory: Path | None = None) -> dict[str, Any] | None:
    """How often the silent challenger agreed with the champion (for `monitor`); None if never shadowed."""
    conn = open_log(directory)
    try:
        conn.ensure(SHADOW_SCHEMA)
        total, agree = conn.execute(
            "SELECT count(*), coalesce(sum(agree), 0) FROM shadow_predictions WHERE model = ? AND ts >= ?",
            (name, since or 0.0),
        ).fetchone()
    finally:
        conn.close()
    if not total:
        return None
    return {"compared": total, "disagreements": total - agree, "agreement": round(agree / total, 4)}
