"""Splitting JSON Lines text into its lines."""

from __future__ import annotations


def json_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text, split at "\\n" only (one "\\r" before it dropped), as the format says:
    `str.splitlines` also splits at U+2028, U+2029, U+0085 and other characters that `json.dumps(...,
    ensure_ascii=False)` leaves raw inside strings, cutting a valid record in two."""
    return [line.removesuffix("\r") for line in text.split("\n")]
