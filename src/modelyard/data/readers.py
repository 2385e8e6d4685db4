"""Readers for .csv .tsv .jsonl .parquet .txt files into pandas DataFrames, with row-level problem reports.

Malformed rows are skipped and reported by line number (never silently); undecodable bytes and missing files stop
with a message naming the file and line. Delimited files stream line by line, so memory stays bounded by the
parsed rows, not the raw file.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from modelyard.config import FormatOptions
from modelyard.errors import DataError

SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"}
MAX_REPORTED = 20
MAX_RECORD_LINES = 50  # a malformed record spanning more lines than this is an unclosed quote, not a long text
csv.field_size_limit(sys.maxsize)


@dataclass
class ReadReport:
    """What a reader skipped and why; `problems` holds at most MAX_REPORTED examples."""

    file: str
    rows: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    nul_bytes: int = 0

    def skip(self, line: int, why: str) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(f"line {line}: {why}")

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "rows": self.rows,
            "skipped": self.skipped,
            "problems": self.problems,
            "nul_bytes": self.nul_bytes,
        }


def _decoded_lines(path: Path, encoding: str, report: ReadReport) -> Iterator[str]:
    """Yield decoded lines; an undecodable byte stops with the file and line number."""
    name = codecs.lookup(encoding).name
    if name == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark is tolerated, never part of the first column name
    if name.startswith(("utf-16", "utf-32")):
        with open(path, encoding=encoding, newline="") as f:
            yield from f
        return
    first = True
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode(encoding if first else encoding.replace("-sig", ""))
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}: line {lineno}: bytes that are not valid {encoding.replace('-sig', '')} "
                    f"({err.reason} at byte {err.start})",
                    "save the file as UTF-8, or set data.format.encoding (e.g. gb18030, latin-1)",
                ) from None
            first = False
            if "\x00" in text:
                report.nul_bytes += text.count("\x00")
                text = text.replace("\x00", "")
            yield text


def read_delimited(path: Path, fmt: FormatOptions, sep: str) -> tuple[pd.DataFrame, ReadReport]:
    report = ReadReport(str(path))
    quoting = csv.QUOTE_NONE if fmt.quoting == "none" else csv.QUOTE_MINIMAL
    reader = csv.reader(
        _decoded_lines(path, fmt.encoding, report),
        delimiter=sep,
        quotechar=fmt.quotechar,
        quoting=quoting,
        strict=False,
    )
    header: list[str] | None = fmt.names
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    try:
        previous = 0
        for fields in reader:
            line, start = reader.line_num, previous + 1
            previous = line
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if header is None:
                header = [h.strip() for h in fields]
                continue
            if len(fields) != len(header):
                if line - start > MAX_RECORD_LINES:
                    raise DataError(
                        f"{path}: line {start}: a quote opened here is never closed; it swallows lines {start}-{line}",
                        "close the quote, or set data.format.quoting: none",
                    )
                report.skip(start, f"expected {len(header)} fields, found {len(fields)}")
                continue
            rows.append(fields)
            line_numbers.append(line)
    except csv.Error as err:
        raise DataError(f"{path}: line {reader.line_num}: {err}", "check quoting or set data.format.sep") from None
    if header is None:
        raise DataError(f"{path}: the file is empty", "a data file needs a header row and at least one row")
    if len(set(header)) != len(header):
        raise DataError(f"{path}: duplicate column names in the header: {header}")
    if report.skipped and report.skipped > len(rows):
        raise DataError(
            f"{path}: {report.skipped} of {report.skipped + len(rows)} rows have the wrong number of fields "
            f"(first: {report.problems[0]})",
            f"is the separator right? it is {sep!r}; set data.format.sep",
        )
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame.index = pd.Index(line_numbers, name="line")
    report.rows = len(frame)
    return frame, report


def read_jsonl(path: Path, fmt: FormatOptions) -> tuple[pd.DataFrame, ReadReport]:
    report = ReadReport(str(path))
    records, lines = [], []
    for lineno, text in enumerate(_decoded_lines(path, fmt.encoding, report), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            report.skip(lineno, f"not valid JSON ({err.msg})")
            continue
        if not isinstance(record, dict):
            report.skip(lineno, "expected a JSON object")
            continue
        records.append(record)
        lines.append(lineno)
    if report.skipped and report.skipped > len(records):
        raise DataError(f"{path}: {report.skipped} lines are not JSON objects (first: {report.problems[0]})")
    frame = pd.DataFrame.from_records(records)
    frame.index = pd.Index(lines, name="line")
    report.rows = len(frame)
    return frame, report


def read_text_lines(path: Path, fmt: FormatOptions) -> tuple[pd.DataFrame, ReadReport]:
    report = ReadReport(str(path))
    texts, lines = [], []
    for lineno, text in enumerate(_decoded_lines(path, fmt.encoding, report), 1):
        if text.strip():
            texts.append(text.rstrip("\r\n"))
            lines.append(lineno)
    frame = pd.DataFrame({"text": texts}, index=pd.Index(lines, name="line"))
    report.rows = len(frame)
    return frame, report


def read_parquet(path: Path) -> tuple[pd.DataFrame, ReadReport]:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame, ReadReport(str(path), rows=len(frame))


def read_table(
    path: str | Path, fmt: FormatOptions | None = None, max_rows: int | None = None
) -> tuple[pd.DataFrame, ReadReport]:
    """Read one data file by its extension; the index holds the source line (or row) number."""
    fmt = fmt or FormatOptions()
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}", "check data.train / data.test in the config")
    if path.is_dir():
        raise DataError(f"{path} is a folder; this task reads a file ({', '.join(sorted(SUFFIXES))})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        sep = fmt.sep or ("\t" if suffix == ".tsv" else ",")
        frame, report = read_delimited(path, fmt, sep)
    elif suffix in (".jsonl", ".json"):
        frame, report = read_jsonl(path, fmt)
    elif suffix == ".parquet":
        frame, report = read_parquet(path)
    elif suffix == ".txt":
        frame, report = read_text_lines(path, fmt)
    elif fmt.sep:
        frame, report = read_delimited(path, fmt, fmt.sep)
    else:
        raise DataError(
            f"{path}: unknown file type '{suffix}'",
            f"use one of {', '.join(sorted(SUFFIXES))}, or set data.format.sep for delimited text",
        )
    if max_rows is not None:
        frame = frame.iloc[:max_rows]
        report.rows = len(frame)
    return frame, report


def require_columns(frame: pd.DataFrame, columns: dict[str, str], path: str) -> None:
    """`columns` maps config key -> column name; a missing one is an error that lists what the file has."""
    for key, column in columns.items():
        if column not in frame.columns:
            raise DataError(
                f"{path}: no column '{column}' (data.{key}); the file has: {', '.join(map(str, frame.columns))}",
                f"set data.{key} to one of those columns",
            )
