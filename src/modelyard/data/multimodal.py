"""Rows that carry an image and a text: a CSV/JSONL with an image path column (relative to the file), a text
column and a label column. Every row must be usable: a missing or undecodable image, a blank text or a blank label
is an error naming the file and line, because silently dropping half of a row's evidence would bias the
per-modality comparison."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.config import FormatOptions, SplitConfig
from modelyard.data.blank import is_blank
from modelyard.data.categories import category_text
from modelyard.data.images import check_file
from modelyard.data.readers import read_table, require_columns
from modelyard.data.splits import fingerprint, make_splits
from modelyard.errors import DataError

MAX_NAMED = 5
COLUMNS = ["path", "file", "text", "label", "sha256", "width", "height"]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or is_blank(str(value))


def read_rows(
    path: str | Path, columns: dict[str, str], fmt: FormatOptions, max_rows: int | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One file -> rows (path, file, text, label, sha256, width, height); `columns` maps the config keys
    image_column, text_column, label_column to the file's column names."""
    frame, read = read_table(path, fmt, max_rows)
    require_columns(frame, columns, str(path))
    image_col, text_col, label_col = columns["image_column"], columns["text_column"], columns["label_column"]
    base = Path(path).parent
    problems, rows = [], []
    for line, image, text, label in zip(frame.index, frame[image_col], frame[text_col], frame[label_col], strict=True):
        blank = [
            key for key, v in (("image_column", image), ("text_column", text), ("label_column", label)) if _blank(v)
        ]
        if blank:
            problems.append(f"line {line}: empty {', '.join(columns[k] for k in blank)}")
            continue
        given = Path(str(image).strip()).expanduser()
        full = (given if given.is_absolute() else base / given).resolve()  # a table may name any file it likes
        rows.append(
            {
                "line": line,
                "path": str(full),
                "file": given.as_posix(),
                "text": str(text).strip(),
                "label": category_text(label),
            }
        )
    with ThreadPoolExecutor(max_workers=2) as pool:  # Pillow decodes without the GIL
        checks = list(pool.map(lambda r: _check(Path(r["path"])), rows))
    for row, check in zip(rows, checks, strict=True):
        if isinstance(check, str):
            problems.append(f"line {row['line']}: image '{row['file']}' {check}")
        else:
            row.update(check)
    if problems:
        more = f" (and {len(problems) - MAX_NAMED} more)" if len(problems) > MAX_NAMED else ""
        raise DataError(
            f"{path}: {len(problems)} unusable rows: {'; '.join(problems[:MAX_NAMED])}{more}",
            "every row needs a readable image file (a path relative to this file), a text and a label",
        )
    result = pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)
    return result, {"file": str(path), "rows": len(result), "skipped_lines": read.as_dict().get("skipped", 0)}


def input_rows(frame: pd.DataFrame, image_col: str, text_col: str, source: str) -> list[dict[str, str]]:
    """`predict --input FILE`'s rows as {"image": path, "text"}, checked as training rows are: an empty cell, a
    missing or undecodable image is a DataError naming the file and each such row (by the reader's line)."""
    base = Path(source).parent
    found: list[tuple[int, str]] = []
    rows = []
    for line, image, text in zip(frame.index, frame[image_col], frame[text_col], strict=True):
        blank = [column for column, v in ((image_col, image), (text_col, text)) if _blank(v)]
        if blank:
            found.append((line, f"line {line}: empty {', '.join(blank)}"))
            continue
        given = Path(str(image).strip()).expanduser()
        rows.append({"line": line, "file": given.as_posix(), "image": str(base / given), "text": str(text).strip()})
    with ThreadPoolExecutor(max_workers=2) as pool:
        checks = list(pool.map(lambda r: _check(Path(r["image"]).resolve()), rows))
    for row, check in zip(rows, checks, strict=True):
        if isinstance(check, str):
            found.append((row["line"], f"line {row['line']}: image '{row['file']}' {check}"))
    problems = [message for _, message in sorted(found)]
    if problems:
        more = f" (and {len(problems) - MAX_NAMED} more)" if len(problems) > MAX_NAMED else ""
        raise DataError(
            f"{source}: {len(problems)} unusable rows, nothing was predicted: {'; '.join(problems[:MAX_NAMED])}{more}",
            "every row needs a readable image file (a path relative to this file) and a text; fix or remove them",
        )
    return [{"image": r["image"], "text": r["text"]} for r in rows]


def _check(path: Path) -> dict[str, Any] | str:
    """The image facts the report needs, or the reason it cannot be used."""
    try:
        found = check_file(path, path.parent)
    except ValueError as err:
        return str(err)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    return {k: found[k] for k in ("sha256", "width", "height")}


def load_splits(
    sources: dict[str, str | None],
    columns: dict[str, str],
    split: SplitConfig,
    fmt: FormatOptions,
    max_rows: int | None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Read the configured files (train, maybe validation and test) and carve the missing splits from train."""
    frames, files = {}, {}
    for name, location in sources.items():
        if location:
            frames[name], files[name] = read_rows(location, columns, fmt, max_rows)
    if frames["train"].empty:
        raise DataError(f"{sources['train']}: no rows", "the training file needs a header and at least one row")
    splits, notes = make_splits(frames["train"], frames.get("validation"), frames.get("test"), split, "label")
    return splits, {"files": files, "split_notes": notes}


def fingerprints(splits: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """sha256 over the sorted (relative image path, image sha256, text, label) rows of each split."""
    return {
        name: fingerprint(frame.sort_values(["file", "text"]), ["file", "sha256", "text", "label"])
        for name, frame in splits.items()
    }
